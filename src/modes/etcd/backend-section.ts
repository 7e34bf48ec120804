// flannel's "Backend" object of the network config, as the runtime's backend registry reads it.
import type { NetworkConfig } from '../../lease/network-config.ts';

export function backendSection(c: NetworkConfig): Readonly<Record<string, unknown>> {
  // The network config keeps the section raw (Type included); the backend registry parses it.
  return c.backend.raw;
}

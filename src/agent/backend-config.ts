// A control plane's Backend section (etcd mode: the network config keeps it raw, with its
// Type) as the data plane takes it: the raw object, which the backend registry
// (src/dataplane/index.ts) parses and validates. Structural, so the agent needs no lease import.
import { parseBackendConfig, type BackendConfig } from '../dataplane/index.ts';
import { WeftError } from '../errors.ts';

/** Any section that carries flannel's Backend object as written (src/lease's BackendSection fits). */
export interface BackendSection {
  readonly raw: Readonly<Record<string, unknown>>;
}

/** What createBackend(nl, node, section, deps) takes. */
export function backendSection(b: BackendSection): Readonly<Record<string, unknown>> {
  return b.raw;
}

/** Validates the section at config time (before any device exists); throws WEFT_INVALID_CONFIG naming the field. */
export function checkBackendSection(b: BackendSection): { config: BackendConfig; warnings: string[] } {
  const parsed = parseBackendConfig(b.raw);
  if (!parsed.ok) throw new WeftError('WEFT_INVALID_CONFIG', parsed.error);
  return parsed;
}

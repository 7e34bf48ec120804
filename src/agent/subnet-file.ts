// subnet.env as the runtime uses it: what the last run left (its Network tells which routes
// can only be a bad peer's), whether the file is still what we wrote (an operator or a
// cleanup job may delete it; pods cannot start without it), and the write itself.
import { readFileSync } from 'node:fs';
import { formatCidr, parseCidr } from '../net/cidr.ts';
import { firstAddressOf, formatSubnetEnv, readSubnetEnv, writeSubnetEnv, type PodLink, type SubnetEnvInput } from '../subnet/subnet-env.ts';
import type { SubnetFile } from './runtime.ts';

/** subnet.env is a few lines; anything longer is not ours. */
const MAX_BYTES = 4096;

/**
 * A routed podLink is written as WEFT_POD_LINK, so the CNI server and a standalone plugin link
 * pods alike; bridge (the plugin's default) is left out, so the file stays flanneld's exactly.
 */
export function subnetFileAt(path: string, ipMasq: boolean, podLink: PodLink = 'bridge'): SubnetFile {
  let written: string | undefined;
  return {
    previous() {
      try {
        const env = readSubnetEnv(path);
        return { networks: env.networks.map(formatCidr), subnet: env.subnet ? formatCidr(env.subnet) : undefined };
      } catch {
        return undefined;
      }
    },
    intact() {
      if (written === undefined) return true;
      try {
        const text = readFileSync(path, 'utf8');
        return text.length <= MAX_BYTES && text === written;
      } catch {
        return false;
      }
    },
    write(network, subnet, mtu) {
      const input: SubnetEnvInput = { network: parseCidr(network), subnet: firstAddressOf(parseCidr(subnet)), mtu, ipMasq, ...(podLink === 'routed' ? { podLink } : {}) };
      writeSubnetEnv(path, input);
      written = formatSubnetEnv(input);
    },
  };
}

// The subnet this node held before (its last subnet.env), to ask for again first: a restart
// keeps its pods' addresses. Shared by the modes that hand out one subnet per node.
import { readSubnetEnv } from '../subnet/subnet-env.ts';
import { formatCidr } from '../net/cidr.ts';

export function previousSubnet(path: string): string | undefined {
  try {
    const env = readSubnetEnv(path);
    return env.subnet ? formatCidr(env.subnet) : undefined;
  } catch {
    return undefined;
  }
}

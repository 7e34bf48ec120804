// The Ipam contract (ipam-contract.ts) against the in-memory implementation.
import { ipamContract } from './ipam-contract.ts';
import { memoryIpamFactory } from './memory-ipam.ts';

ipamContract({ name: 'memory', open: () => ({ factory: memoryIpamFactory(), dataDir: '' }) });

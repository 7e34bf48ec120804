// The Ipam contract (ipam-contract.ts) against host-local's disk store, in a scratch directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostLocalIpamFactory } from './allocator.ts';
import { ipamContract } from './ipam-contract.ts';

ipamContract({
  name: 'host-local disk store',
  open(t) {
    const dataDir = mkdtempSync(join(tmpdir(), 'weft-ipam-contract-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    return { factory: hostLocalIpamFactory, dataDir };
  },
});

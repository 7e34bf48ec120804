// The control-plane contract (src/agent/control-plane-contract.ts) for etcd mode on a real
// etcd, over both APIs: what the unit suite proves on the in-memory store, proven on the
// real clients and server. Runs in a scratch network namespace (see support/etcd.ts).
import { after, before, describe } from 'node:test';
import { controlPlaneContract } from '../../src/agent/control-plane-contract.ts';
import { etcdContractCluster } from '../../src/modes/etcd/contract-cluster.ts';
import { openLeaseStore } from '../../src/lease/open-store.ts';
import { enterScratchNetns, etcdPrerequisiteProblem, startEtcd, type EtcdServer } from './support/etcd.ts';
import { rand } from './support/sandbox.ts';

const skip = etcdPrerequisiteProblem();
if (!skip) await enterScratchNetns();

const b64 = (x: string): string => Buffer.from(x).toString('base64');

async function writeConfig(etcd: EtcdServer, api: 'v2' | 'v3', key: string, value: string | null): Promise<void> {
  const res = api === 'v3'
    ? await fetch(`${etcd.endpoint}/v3/kv/${value === null ? 'deleterange' : 'put'}`, { method: 'POST', body: JSON.stringify(value === null ? { key: b64(key) } : { key: b64(key), value: b64(value) }) })
    : await fetch(`${etcd.endpoint}/v2/keys${key}`, value === null ? { method: 'DELETE' } : { method: 'PUT', body: new URLSearchParams({ value }) });
  if (!res.ok && !(value === null && res.status === 404)) throw new Error(`writing ${key} (${api}): ${res.status} ${await res.text()}`);
}

describe('etcd mode on a real etcd', { skip }, () => {
  let etcd: EtcdServer;
  before(async () => { etcd = await startEtcd(); });
  after(async () => { await etcd?.close(); });
  for (const api of ['v3', 'v2'] as const) {
    controlPlaneContract(`etcd ${api}`, async () => {
      const prefix = `/weft-cp-${rand()}/network`;
      const config = JSON.stringify({ Network: '10.16.0.0/16', SubnetLen: 24, Backend: { Type: 'host-gw' } });
      await writeConfig(etcd, api, `${prefix}/config`, config);
      const store = await openLeaseStore({ api, endpoints: [etcd.endpoint], prefix });
      return etcdContractCluster(store, (c) => writeConfig(etcd, api, `${prefix}/config`, c), () => store.close(), prefix);
    });
  }
});

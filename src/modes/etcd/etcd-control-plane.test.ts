// etcd mode's control plane over the in-memory store (the real lease policy behind the
// LeaseStore seam); test/e2e/control-plane-etcd.test.ts runs the same contract on a real etcd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { controlPlaneContract, Recorder } from '../../agent/control-plane-contract.ts';
import { silentLogger } from '../../log/logger.ts';
import { MemoryLeaseStore } from '../../lease/memory/memory-store.ts';
import { delegateStore } from '../../lease/testing.ts';
import { etcdContractCluster } from './contract-cluster.ts';
import { EtcdControlPlane } from './etcd-control-plane.ts';

controlPlaneContract('etcd mode over the in-memory store', async () => {
  const store = new MemoryLeaseStore({ config: JSON.stringify({ Network: '10.16.0.0/16', SubnetLen: 24, Backend: { Type: 'host-gw' } }) });
  return etcdContractCluster(store, async (c) => store.setConfig(c), async () => undefined);
});

test('start-up lists the leases once: the same listing serves the VTEP MAC lookup, the acquisition and the first peer snapshot', async (t) => {
  const store = new MemoryLeaseStore({ config: JSON.stringify({ Network: '10.16.0.0/16', SubnetLen: 24, Backend: { Type: 'host-gw' } }) });
  let listings = 0;
  const counting = delegateStore(store, { listLeases: () => { listings++; return store.listLeases(); } });
  const cp = new EtcdControlPlane({
    openStore: async () => counting, endpoints: ['memory'], prefix: '/coreos.com/network', previousSubnet: undefined,
    ttlSeconds: 60, renewMarginSeconds: 10, configPollMs: 60_000, log: silentLogger,
  });
  t.after(() => cp.stop());
  const events = new Recorder();
  await cp.open(events);
  await cp.previousBackendData('192.0.2.10');
  await cp.acquire({ publicIp: '192.0.2.10', backendType: 'host-gw', backendData: undefined });
  await cp.start();
  assert.equal(events.snapshots.length, 1);
  assert.equal(listings, 1);
});

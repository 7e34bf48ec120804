// etcd mode's control plane over the in-memory store (the real lease policy behind the
// LeaseStore seam); test/e2e/control-plane-etcd.test.ts runs the same contract on a real etcd.
import { controlPlaneContract } from '../../agent/control-plane-contract.ts';
import { MemoryLeaseStore } from '../../lease/memory/memory-store.ts';
import { etcdContractCluster } from './contract-cluster.ts';

controlPlaneContract('etcd mode over the in-memory store', async () => {
  const store = new MemoryLeaseStore({ config: JSON.stringify({ Network: '10.16.0.0/16', SubnetLen: 24, Backend: { Type: 'host-gw' } }) });
  return etcdContractCluster(store, async (c) => store.setConfig(c), async () => undefined);
});

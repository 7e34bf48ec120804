// Test support: a control-plane contract cluster for etcd mode over any LeaseStore (the
// in-memory one in unit tests, a real etcd in test/e2e). Not used by the agent.
import type { ContractCluster } from '../../agent/control-plane-contract.ts';
import { silentLogger } from '../../log/logger.ts';
import { formatLeaseValue } from '../../lease/lease.ts';
import { delegateStore } from '../../lease/testing.ts';
import type { LeaseStore } from '../../lease/store.ts';
import { EtcdControlPlane } from './etcd-control-plane.ts';

export function etcdContractCluster(store: LeaseStore, writeConfig: (c: string | null) => Promise<void>, close: () => Promise<void>, prefix = '/coreos.com/network'): ContractCluster {
  const config = (network = '10.16.0.0/16', backendType = 'host-gw'): string => JSON.stringify({ Network: network, SubnetLen: 24, Backend: { Type: backendType } });
  let next = 100;
  const byIp = new Map<string, string>();
  const shared = delegateStore(store, { close: async () => undefined });
  const put = async (ip: string, subnet: string): Promise<string> => {
    const key = `subnets/${subnet.replace('/', '-')}`;
    await store.put(key, formatLeaseValue({ publicIp: ip, publicIpv6: null, backendType: 'host-gw', backendData: undefined, backendV6Data: undefined }), 60);
    byIp.set(ip, key);
    return subnet;
  };
  let current = { network: '10.16.0.0/16', backendType: 'host-gw' };
  return {
    network: '10.16.0.0/16',
    controlPlane: () => new EtcdControlPlane({
      openStore: async () => shared, endpoints: ['memory'], prefix, previousSubnet: undefined,
      ttlSeconds: 60, renewMarginSeconds: 10, configPollMs: 50, retryDelayMs: 20, log: silentLogger,
    }),
    addPeer: (ip) => put(ip, `10.16.${next++}.0/24`),
    addHostilePeer: (ip) => put(ip, `10.200.${next++}.0/24`),
    removePeer: async (ip) => {
      const key = byIp.get(ip);
      if (key) await store.delete(key);
    },
    revokeOwn: async (ip) => {
      for (const l of (await store.listLeases()).leases) {
        if ((JSON.parse(l.value) as { PublicIP?: string }).PublicIP === ip) await store.delete(l.key);
      }
    },
    changeConfig: async (c) => {
      current = { network: c.network ?? current.network, backendType: c.backendType ?? current.backendType };
      await writeConfig(config(current.network, current.backendType));
    },
    withholdConfig: () => writeConfig(null),
    provideConfig: () => writeConfig(config()),
    close,
  };
}


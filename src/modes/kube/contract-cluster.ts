// Test support: a control-plane contract cluster for kube mode over weft's stand-in API server
// (src/kube/standin: real HTTP, through the real client library). Not used by the agent.
import type { ContractCluster } from '../../agent/control-plane-contract.ts';
import { silentLogger, type Logger } from '../../log/logger.ts';
import { KubeStandin, type StandinOptions } from '../../kube/standin/server.ts';
import { connectSession } from './mode.ts';
import { claimLease } from './claims.ts';
import { announcementAnnotations } from './peers.ts';
import { KubeControlPlane, NET_CONF_KEY } from './kube-control-plane.ts';
import { parseCidr } from '../../net/cidr.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const NAMESPACE = 'weft';
export const CONFIG_MAP = 'weft-cfg';
export const PREFIX = 'flannel.alpha.coreos.com';

export const netConf = (network = '10.16.0.0/16', backendType = 'host-gw'): string => JSON.stringify({ Network: network, SubnetLen: 24, Backend: { Type: backendType } });

export interface KubeTestCluster {
  standin: KubeStandin;
  kubeconfig: string;
  /** A control plane for the named Node (registered first if it is not). */
  controlPlane(node: string, o?: { previousSubnet?: string; orphanGraceMs?: number; log?: Logger }): KubeControlPlane;
  putConfig(text: string | null): void;
  close(): Promise<void>;
}

/** gc false: a cluster whose garbage collector never runs (the agents' own sweep must do its work). */
export async function kubeTestCluster(config: string | null = netConf(), o: { gc?: boolean; watchLagMs?: StandinOptions['watchLagMs'] } = {}): Promise<KubeTestCluster> {
  const standin = await KubeStandin.start({ gcDelayMs: o.gc === false ? -1 : 20, ...(o.watchLagMs === undefined ? {} : { watchLagMs: o.watchLagMs }) });
  const dir = mkdtempSync(join(tmpdir(), 'weft-kube-'));
  const kubeconfig = join(dir, 'kubeconfig');
  standin.writeKubeconfig(kubeconfig);
  if (!standin.get('namespaces', undefined, NAMESPACE)) standin.create('namespaces', { metadata: { name: NAMESPACE } });
  const putConfig = (text: string | null): void => {
    const existing = standin.get('configmaps', NAMESPACE, CONFIG_MAP);
    if (text === null) {
      if (existing) standin.delete('configmaps', NAMESPACE, CONFIG_MAP);
      return;
    }
    const body = { metadata: { name: CONFIG_MAP, namespace: NAMESPACE }, data: { [NET_CONF_KEY]: text } };
    if (existing) standin.update('configmaps', body);
    else standin.create('configmaps', body);
  };
  putConfig(config);
  return {
    standin, kubeconfig, putConfig,
    controlPlane: (node, o = {}) => {
      if (!standin.get('nodes', undefined, node)) standin.addNode(node, { internalIP: '192.0.2.250' });
      const log = o.log ?? silentLogger;
      return new KubeControlPlane({
        connect: () => connectSession({ kubeconfigFile: kubeconfig, kubeApiUrl: undefined }, log),
        nodeName: node, namespace: NAMESPACE, configMap: CONFIG_MAP, annotationPrefix: PREFIX,
        previousSubnet: o.previousSubnet, configPollMs: 50, retryDelayMs: 20, orphanGraceMs: o.orphanGraceMs ?? 200, log,
      });
    },
    close: async () => {
      await standin.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The contract's view of a kube cluster: nodes known by name, the contract's "other node" by its IP. */
export async function kubeContractCluster(o: { watchLagMs?: StandinOptions['watchLagMs'] } = {}): Promise<ContractCluster> {
  const c = await kubeTestCluster(netConf(), o);
  let next = 100;
  const nodeByIp = new Map<string, string>();
  let current = { network: '10.16.0.0/16', backendType: 'host-gw' };
  const addNode = (ip: string, subnet: string): string => {
    const name = `peer-${ip.replaceAll('.', '-')}`;
    const node = c.standin.addNode(name, { internalIP: ip }) as { metadata: { uid: string } };
    c.standin.update('nodes', { ...node, metadata: { ...node.metadata, annotations: announcementAnnotations(PREFIX, { publicIp: ip, backendType: 'host-gw', backendData: undefined }) } });
    c.standin.create('leases', claimLease(NAMESPACE, parseCidr(subnet), { name, uid: node.metadata.uid }));
    nodeByIp.set(ip, name);
    return subnet;
  };
  return {
    network: '10.16.0.0/16',
    controlPlane: (other) => c.controlPlane(other ? `node-${other.publicIp.replaceAll('.', '-')}` : 'me'),
    addPeer: async (ip) => addNode(ip, `10.16.${next++}.0/24`),
    addHostilePeer: async (ip) => addNode(ip, `10.200.${next++}.0/24`),
    removePeer: async (ip) => {
      const name = nodeByIp.get(ip);
      if (name) c.standin.delete('nodes', undefined, name);
    },
    revokeOwn: async () => {
      for (const l of c.standin.list('leases', NAMESPACE) as { metadata: { name: string }; spec?: { holderIdentity?: string } }[]) {
        if (l.spec?.holderIdentity === 'me') c.standin.delete('leases', NAMESPACE, l.metadata.name);
      }
    },
    changeConfig: async (change) => {
      current = { network: change.network ?? current.network, backendType: change.backendType ?? current.backendType };
      c.putConfig(netConf(current.network, current.backendType));
    },
    withholdConfig: async () => c.putConfig(null),
    provideConfig: async () => c.putConfig(netConf()),
    close: () => c.close(),
  };
}

// The agent serves the node's CNI requests itself (the weft-cni front end's fast path), so a
// node runs one weft process. Each request is reported to `onRequest` (the metrics). Pod
// addresses come from host-local's disk store over subnet.env's subnet, or from the `ipam`
// the mode gives (mesh mode: block IPAM over the blocks this node owns).
import type { Logger } from '../log/logger.ts';
import type { IpamFactory } from '../ipam/ipam.ts';
import { BridgeOperations, type BridgeOperationsOptions } from '../cni/bridge-plugin.ts';
import { iptablesPodMasquerade } from '../cni/pod-masq.ts';
import { startCniServer, type CniServerOptions } from '../cni/server.ts';

export interface AgentCniServer {
  stop(): Promise<void>;
  /** Pod addresses used and free in the node's range; undefined until a request named the network. */
  usage(): { used: number; free: number } | undefined;
}

export interface AgentCniOptions {
  onRequest?: CniServerOptions['onRequest'];
  /** The pod address allocator; default host-local's disk store. */
  ipam?: IpamFactory;
  /** Routed pods attached and removed (the fast path's maps follow them). */
  onPodAttached?: BridgeOperationsOptions['onPodAttached'];
  onPodsChanged?: BridgeOperationsOptions['onPodsChanged'];
}

/** The third argument is the options, or (the older form) only onRequest. */
export async function startAgentCniServer(socket: string, log: Logger, options: AgentCniOptions | CniServerOptions['onRequest'] = {}): Promise<AgentCniServer> {
  const o: AgentCniOptions = typeof options === 'function' ? { onRequest: options } : options;
  const { onRequest, ipam } = o;
  const ops = new BridgeOperations({
    log, masquerade: iptablesPodMasquerade(), ...(ipam ? { ipam } : {}),
    ...(o.onPodAttached ? { onPodAttached: o.onPodAttached } : {}),
    ...(o.onPodsChanged ? { onPodsChanged: o.onPodsChanged } : {}),
  });
  const server = await startCniServer({ socket, ops, log, ...(onRequest ? { onRequest } : {}) });
  return {
    usage: () => ops.usage(),
    stop: () => new Promise<void>((resolve) => server.close(() => {
      ops.close();
      resolve();
    })),
  };
}

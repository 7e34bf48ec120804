// The agent serves the node's CNI requests itself (the weft-cni front end's fast path), so a
// node runs one weft process. Each request is reported to `onRequest` (the metrics).
import type { Logger } from '../log/logger.ts';
import { BridgeOperations } from '../cni/bridge-plugin.ts';
import { iptablesPodMasquerade } from '../cni/pod-masq.ts';
import { startCniServer, type CniServerOptions } from '../cni/server.ts';

export interface AgentCniServer {
  stop(): Promise<void>;
  /** Pod addresses used and free in the node's range; undefined until a request named the network. */
  usage(): { used: number; free: number } | undefined;
}

export async function startAgentCniServer(socket: string, log: Logger, onRequest?: CniServerOptions['onRequest']): Promise<AgentCniServer> {
  const ops = new BridgeOperations({ log, masquerade: iptablesPodMasquerade() });
  const server = await startCniServer({ socket, ops, log, ...(onRequest ? { onRequest } : {}) });
  return {
    usage: () => ops.usage(),
    stop: () => new Promise<void>((resolve) => server.close(() => {
      ops.close();
      resolve();
    })),
  };
}

// The agent serves the node's CNI requests itself (the weft-cni front end's fast path), so a
// node runs one weft process. Each request is reported to `onRequest` (the metrics).
import type { Logger } from '../log/logger.ts';
import { BridgeOperations } from '../cni/bridge-plugin.ts';
import { iptablesPodMasquerade } from '../cni/pod-masq.ts';
import { startCniServer, type CniServerOptions } from '../cni/server.ts';

export async function startAgentCniServer(socket: string, log: Logger, onRequest?: CniServerOptions['onRequest']): Promise<{ stop(): Promise<void> }> {
  const ops = new BridgeOperations({ log, masquerade: iptablesPodMasquerade() });
  const server = await startCniServer({ socket, ops, log, ...(onRequest ? { onRequest } : {}) });
  return {
    stop: () => new Promise<void>((resolve) => server.close(() => {
      ops.close();
      resolve();
    })),
  };
}

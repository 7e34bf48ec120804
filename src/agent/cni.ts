// The agent serves the node's CNI requests itself (the weft-cni front end's fast path), so a
// node runs one weft process.
import type { Logger } from '../log/logger.ts';
import { BridgeOperations } from '../cni/bridge-plugin.ts';
import { iptablesPodMasquerade } from '../cni/pod-masq.ts';
import { startCniServer } from '../cni/server.ts';

export async function startAgentCniServer(socket: string, log: Logger): Promise<{ stop(): Promise<void> }> {
  const ops = new BridgeOperations({ log, masquerade: iptablesPodMasquerade() });
  const server = await startCniServer({ socket, ops, log });
  return {
    stop: () => new Promise<void>((resolve) => server.close(() => {
      ops.close();
      resolve();
    })),
  };
}

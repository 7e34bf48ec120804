// The modes' one retry loop for a store that is not there yet (etcd down, the API server
// unreachable, the config missing): retry while the error is WEFT_NOT_READY, and say each new
// reason once, both in the log and as the runtime's waiting phase.
import { isWeftError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import type { ControlPlaneWait } from '../agent/control-plane.ts';

export interface UntilReadyOptions {
  delayMs: number;
  log: Logger;
  stopped(): boolean;
  /** The phase the wait is in now (it can depend on how far the attempt got). */
  phase(): ControlPlaneWait;
  onPhase?(phase: ControlPlaneWait, reason: string): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function untilReady<T>(o: UntilReadyOptions, attempt: () => Promise<T>): Promise<T> {
  let last = '';
  for (;;) {
    try {
      return await attempt();
    } catch (e) {
      if (!isWeftError(e, 'WEFT_NOT_READY') || o.stopped()) throw e;
      const phase = o.phase();
      // gRPC and some servers put a timestamp into messages: compare without it.
      const reason = e.message.replace(/\(?\d{4}-\d\d-\d\dT[\d:.]+Z\)?/g, '').trim();
      if (reason !== last) o.log.warn({ err: e.message }, `${phase}: not ready yet; retrying every ${o.delayMs / 1000}s`);
      last = reason;
      o.onPhase?.(phase, e.message);
      await sleep(o.delayMs);
    }
  }
}

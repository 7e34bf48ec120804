// One connectivity probe: ICMP echo from inside a namespace, by the shared probe code that
// `weft probe` runs in clusters (src/probe/icmp.ts), entered through nsenter.
import { WeftError } from '../errors.ts';
import { icmpProbe } from '../probe/icmp.ts';
import { netnsPath } from './netns.ts';

export { parsePingRtt } from '../probe/icmp.ts';

export interface PingOptions {
  /** Tries before the probe counts as failed. */
  attempts?: number;
  /** Seconds to wait for each reply (ping -W). */
  waitSeconds?: number;
}

export interface PingResult {
  ok: boolean;
  rttMs: number | null;
  attempts: number;
}

export async function pingFrom(ns: string, address: string, o: PingOptions = {}): Promise<PingResult> {
  try {
    const r = await icmpProbe(address, { ...o, argvPrefix: ['nsenter', `--net=${netnsPath(ns)}`, '--'], throwIfUnrunnable: true });
    return { ok: r.ok, rttMs: r.ok ? (r.rttMs ?? null) : null, attempts: r.attempts };
  } catch (e) {
    throw new WeftError('WEFT_LAB', `${e instanceof Error ? e.message : String(e)}; is it installed?`, { cause: e });
  }
}

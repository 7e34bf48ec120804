// One connectivity probe: `ping -c 1` from inside a namespace, retried, because the first
// packet to a fresh neighbour may be dropped or delayed while ARP resolves.
import { execInNetns } from './netns.ts';

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
  const attempts = o.attempts ?? 3;
  for (let i = 1; i <= attempts; i++) {
    const r = await execInNetns(ns, ['ping', '-n', '-c', '1', '-W', String(o.waitSeconds ?? 1), address]);
    const rtt = parsePingRtt(r.stdout);
    if (r.code === 0 && rtt !== undefined) return { ok: true, rttMs: rtt, attempts: i };
  }
  return { ok: false, rttMs: null, attempts };
}

/** The round-trip time in ms from iputils ping output: the reply line's time=, else the rtt summary. */
export function parsePingRtt(stdout: string): number | undefined {
  const reply = /\btime[=<]([\d.]+) ?ms\b/.exec(stdout);
  if (reply?.[1] !== undefined) return Number(reply[1]);
  const summary = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(stdout);
  return summary?.[1] === undefined ? undefined : Number(summary[1]);
}

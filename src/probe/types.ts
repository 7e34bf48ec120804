// What one probe is and what it found: the shapes `weft probe` prints and both `weft lab check`
// and `weft check` read. Plain data only, so a report can cross a process or a pod log.

export const PROBE_METHODS = ['icmp', 'tcp', 'udp'] as const;
export type ProbeMethod = (typeof PROBE_METHODS)[number];

export function isProbeMethod(s: string): s is ProbeMethod {
  return (PROBE_METHODS as readonly string[]).includes(s);
}

/** One probe to run: icmp ignores the port; tcp and udp need one (a `weft probe serve` there). */
export interface ProbeTarget {
  method: ProbeMethod;
  address: string;
  port?: number;
}

export interface ProbeOutcome {
  ok: boolean;
  /** Round trip in ms of the try that passed: the echo reply (icmp), the handshake (tcp), the answer (udp). */
  rttMs?: number;
  /** Why it failed, in a few words (bounded: see MAX_ERROR_CHARS). */
  error?: string;
  /** tcp and udp against `weft probe serve`: the source address the responder saw (SNAT shows here). */
  seen?: string;
  /** udp: the nonce sent, so a responder's own record of what arrived can be matched to this probe. */
  nonce?: string;
  /** Tries made. */
  attempts: number;
}

/** One line of `weft probe --json`'s `results`. */
export interface ProbeRecord {
  method: ProbeMethod;
  address: string;
  port: number | null;
  ok: boolean;
  rtt_ms: number | null;
  error: string | null;
  seen: string | null;
  nonce: string | null;
  attempts: number;
}

/** What `weft probe --json` prints: one JSON object on one line. */
export interface ProbeReport {
  weft_probe: 1;
  results: ProbeRecord[];
  passed: number;
  failed: number;
}

export const MAX_ERROR_CHARS = 200;
/** Targets one `weft probe` takes (each may be probed by up to three methods). */
export const MAX_TARGETS = 2048;
/** The port `weft probe serve` listens on unless told otherwise, and the one `weft check` uses. */
export const DEFAULT_PROBE_PORT = 6785;

export function boundedError(message: string): string {
  const oneLine = message.replace(/\s+/g, ' ').trim();
  return oneLine.length <= MAX_ERROR_CHARS ? oneLine : `${oneLine.slice(0, MAX_ERROR_CHARS - 1)}…`;
}

/** A round trip in ms, kept to microseconds (what the JSON shows). */
export function roundRtt(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

// The pod-outside probe, which checks masquerading for real: a UDP echo in the outside host
// reports the source address each datagram arrived with, and the probe passes only when a
// pod got an answer and the outside host saw the pod's node address (not the pod's own). The
// pod's side is `weft probe`'s udp probe; the echo speaks its protocol (src/probe/wire.ts). The
// outside host has no route to the cluster network, so an unmasqueraded datagram still
// arrives (and is reported, as `source_seen`) but its answer cannot come back.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../errors.ts';
import { parseProbeReport } from '../probe/report.ts';
import { roundRtt } from '../probe/types.ts';
import { execInNetns, netnsPath } from './netns.ts';
import { WEFT_BIN } from './paths.ts';

export const UDP_ECHO_SCRIPT = fileURLToPath(new URL('./udp-echo.ts', import.meta.url));
const NODE = [process.execPath, '--disable-warning=ExperimentalWarning'];

export interface OutsideEcho {
  address: string;
  port: number;
  /** Source address the echo saw, by nonce. */
  seen: Map<string, string>;
  stop(): Promise<void>;
}

/** Starts the echo in the outside host's namespace; it ends with stop(), or by itself when this process ends. */
export async function startOutsideEcho(ns: string, address: string, maxSeconds = 600): Promise<OutsideEcho> {
  const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', ...NODE, UDP_ECHO_SCRIPT, 'serve', address, String(maxSeconds)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const seen = new Map<string, string>();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.on('error', (e) => reject(new WeftError('WEFT_LAB', `cannot start the UDP echo in ${ns}: ${e.message}`)));
    void exited.then(() => reject(new WeftError('WEFT_LAB', `the UDP echo in ${ns} exited before it listened: ${stderr.trim()}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [word, a, b] = line.split(' ');
      if (word === 'port') resolve(Number(a));
      else if (word === 'seen' && a !== undefined && b !== undefined) seen.set(a, b);
    });
  });
  return {
    address,
    port,
    seen,
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface OutsideProbeResult {
  ok: boolean;
  rttMs: number | null;
  /** The source address the outside host saw (null: nothing arrived). */
  sourceSeen: string | null;
}

/** One probe from a pod, by `weft probe --kinds udp` (the code `weft check` runs in clusters): ok when the echo answered and saw `expectSource`. */
export async function probeOutside(echo: OutsideEcho, podNs: string, expectSource: string, o: { attempts?: number; waitSeconds?: number } = {}): Promise<OutsideProbeResult> {
  const attempts = o.attempts ?? 3;
  const waitMs = (o.waitSeconds ?? 1) * 1000;
  const r = await execInNetns(podNs, [WEFT_BIN, 'probe', '--json', '--kinds', 'udp', '--to', `${echo.address}:${echo.port}`, '--attempts', String(attempts), '--timeout', `${waitMs}ms`], {
    timeoutMs: attempts * waitMs + 10_000,
  });
  // No report: the probe process failed; count it as unanswered.
  const reply = parseProbeReport(r.stdout)?.results[0];
  const sourceSeen = reply?.seen ?? (reply?.nonce == null ? null : (echo.seen.get(reply.nonce) ?? null));
  const answered = reply?.ok === true && reply.rtt_ms !== null;
  return { ok: answered && sourceSeen === expectSource, rttMs: answered ? roundRtt(reply.rtt_ms ?? 0) : null, sourceSeen };
}

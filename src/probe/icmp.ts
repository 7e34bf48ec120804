// ICMP echo through the `ping` binary (iputils): Node cannot open raw or ICMP sockets, and
// ping has the privilege (CAP_NET_RAW or net.ipv4.ping_group_range) where Node has none.
// One `ping -c 1` per try, retried, because the first packet to a fresh neighbour may be
// dropped or delayed while ARP resolves.
import { spawn } from 'node:child_process';
import { boundedError, type ProbeOutcome } from './types.ts';

export interface IcmpOptions {
  /** Tries before the probe counts as failed (default 3). */
  attempts?: number;
  /** Seconds to wait for each reply (ping -W; default 1). */
  waitSeconds?: number;
  /**
   * Runs ping through this argv prefix, e.g. ['nsenter', '--net=/run/netns/x', '--']: the lab
   * probes from its namespaces this way, with the same ping line and parsing.
   */
  argvPrefix?: readonly string[];
  /** Throw, instead of reporting a failed probe, when the command cannot be run at all (the lab: a broken setup is an error, not a path that failed). */
  throwIfUnrunnable?: boolean;
}

const MAX_OUTPUT_BYTES = 16 * 1024;

interface PingRun {
  code: number | null;
  output: string;
  spawnError?: string;
}

function runPing(argv: readonly string[], killAfterMs: number): Promise<PingRun> {
  const [cmd, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: killAfterMs, killSignal: 'SIGKILL' });
    let output = '';
    const take = (b: Buffer): void => {
      if (output.length < MAX_OUTPUT_BYTES) output += b.toString('utf8');
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (e) => resolve({ code: null, output, spawnError: `cannot run ${cmd}: ${e.message}${cmd === 'ping' ? ' (install iputils-ping)' : ''}` }));
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The round-trip time in ms from iputils ping output: the reply line's time=, else the rtt summary. */
export function parsePingRtt(stdout: string): number | undefined {
  const reply = /\btime[=<]([\d.]+) ?ms\b/.exec(stdout);
  if (reply?.[1] !== undefined) return Number(reply[1]);
  const summary = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(stdout);
  return summary?.[1] === undefined ? undefined : Number(summary[1]);
}

/** Why a try failed, from ping's own words when it said something specific (permission, unreachable). */
function pingFailure(run: PingRun, waitSeconds: number): string {
  if (run.spawnError !== undefined) return run.spawnError;
  const said = run.output.split('\n').map((l) => l.trim()).find((l) => /unreachable|not permitted|denied|invalid|unknown|cannot|error/i.test(l));
  return said ?? `no echo reply within ${waitSeconds} s`;
}

export async function icmpProbe(address: string, o: IcmpOptions = {}): Promise<ProbeOutcome> {
  const attempts = o.attempts ?? 3;
  const waitSeconds = o.waitSeconds ?? 1;
  let error = 'no try made';
  for (let i = 1; i <= attempts; i++) {
    const run = await runPing([...(o.argvPrefix ?? []), 'ping', '-n', '-c', '1', '-W', String(waitSeconds), address], waitSeconds * 1000 + 10_000);
    const rtt = parsePingRtt(run.output);
    if (run.code === 0 && rtt !== undefined) return { ok: true, rttMs: rtt, attempts: i };
    error = pingFailure(run, waitSeconds);
    if (run.spawnError !== undefined) {
      if (o.throwIfUnrunnable === true) throw new Error(run.spawnError);
      return { ok: false, error: boundedError(error), attempts: i };
    }
  }
  return { ok: false, error: boundedError(error), attempts };
}

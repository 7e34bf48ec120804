// One measurement each, between two hosts of a lab, each tool exec'd inside its host's namespace
// (nsenter --net) so the traffic never leaves the lab: iperf3 TCP throughput (1 stream pinned to
// one core, or N separate processes: iperf3 3.12 runs all streams of a process on one thread),
// iperf3 UDP packet rate, and sockperf ping-pong latency.
import { spawn } from 'node:child_process';
import { inNs, mustRun, runCmd, sleep, track } from './common.ts';
import type { Host } from './labs.ts';

export interface Throughput {
  gbps: number;
  retransmits: number;
  /** iperf3's own CPU accounting (% of one CPU, user+system) for the sender and the receiver; summed over processes. */
  cpuSender: number;
  cpuReceiver: number;
}

/** argv under `taskset -c cpu` when a core is given. */
const pinned = (cpu: number | undefined, argv: readonly string[]): string[] => (cpu === undefined ? [...argv] : ['taskset', '-c', String(cpu), ...argv]);

let port = 5201;
const nextPort = (): number => {
  const p = port++;
  if (port > 5299) port = 5201;
  return p;
};

/** A server (started here, stopped by PID) for the length of fn. */
async function withServer<T>(argv: readonly string[], what: string, ready: (output: string) => boolean, fn: (output: () => string) => Promise<T>): Promise<T> {
  const srv = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = track(srv, what);
  let out = '';
  srv.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  srv.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  try {
    for (let waited = 0; !ready(out); waited += 50) {
      if (srv.exitCode !== null || srv.signalCode !== null) throw new Error(`${what} exited: ${out.slice(0, 300)}`);
      if (waited > 10_000) throw new Error(`${what} not ready after 10 s: ${out.slice(0, 300)}`);
      await sleep(50);
    }
    return await fn(() => out);
  } finally {
    if (srv.exitCode === null && srv.signalCode === null) process.kill(pid, 'SIGTERM');
  }
}

/** Runs one iperf3 test from client to server (`-s -1`: the server serves one test and exits); its JSON. */
async function iperfJson(client: Host, server: Host, args: readonly string[], seconds: number, cpu?: number): Promise<unknown> {
  const p = nextPort();
  const srv = inNs(server.ns, pinned(cpu, ['iperf3', '-s', '-1', '-B', server.address, '-p', String(p)]));
  // iperf3 3.12 prints nothing when it listens; a short wait, and a retry on "refused", cover that.
  return withServer(srv, `iperf3 server in ${server.ns}`, () => true, async (srvOut) => {
    for (let attempt = 1; ; attempt++) {
      await sleep(attempt === 1 ? 200 : 500);
      const r = await runCmd(inNs(client.ns, pinned(cpu, ['iperf3', '-c', server.address, '-p', String(p), '-t', String(seconds), '-J', '--connect-timeout', '3000', ...args])), (seconds + 30) * 1000);
      if (r.code === 0) {
        const j = JSON.parse(r.stdout) as { error?: string; end?: unknown };
        // iperf3 can exit 0 with a JSON error (a server that ended the test early): refuse it here.
        if (j.error === undefined && typeof j.end === 'object' && j.end !== null && Object.keys(j.end).length > 0) return j;
        throw new Error(`iperf3 ${client.ns} → ${server.address}:${p} ${args.join(' ')}: no result (${j.error ?? 'empty end'}) ${srvOut().slice(0, 300)}`);
      }
      if (attempt >= 3 || !/refused|connect/i.test(r.stdout + r.stderr)) {
        throw new Error(`iperf3 ${client.ns} → ${server.address}:${p} ${args.join(' ')} failed (${r.signal ?? `exit ${r.code}`}): ${(r.stdout + r.stderr).slice(0, 400)} server: ${srvOut().slice(0, 300)}`);
      }
    }
  });
}

interface TcpEnd { end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number }; cpu_utilization_percent?: { host_total: number; remote_total: number } } }

/** One TCP stream, client and server both on `cpu` when given; receiver-side bit rate. */
export async function tcp(client: Host, server: Host, seconds: number, cpu?: number): Promise<Throughput> {
  const j = (await iperfJson(client, server, [], seconds, cpu)) as TcpEnd;
  return {
    gbps: j.end.sum_received.bits_per_second / 1e9,
    retransmits: j.end.sum_sent.retransmits ?? 0,
    cpuSender: j.end.cpu_utilization_percent?.host_total ?? NaN,
    cpuReceiver: j.end.cpu_utilization_percent?.remote_total ?? NaN,
  };
}

/** `n` TCP streams as n iperf3 client/server processes at once, unpinned; the sum of their receiver-side rates. */
export async function tcpProcesses(client: Host, server: Host, n: number, seconds: number): Promise<Throughput> {
  const runs = await Promise.all(Array.from({ length: n }, () => tcp(client, server, seconds)));
  const sum = (f: (t: Throughput) => number): number => runs.reduce((a, t) => a + f(t), 0);
  return { gbps: sum((t) => t.gbps), retransmits: sum((t) => t.retransmits), cpuSender: sum((t) => t.cpuSender), cpuReceiver: sum((t) => t.cpuReceiver) };
}

export interface PacketRate {
  /** Datagrams the server received per second. */
  rxPps: number;
  txPps: number;
  /** Fraction of the sent datagrams that never arrived. */
  loss: number;
}

interface UdpSum { seconds: number; packets: number; lost_packets: number }

/** UDP as fast as the sender can (`-b 0`), `bytes`-byte datagrams, client and server on `cpu` when given. */
export async function udpRate(client: Host, server: Host, seconds: number, bytes: number, cpu?: number): Promise<PacketRate> {
  const j = (await iperfJson(client, server, ['-u', '-b', '0', '-l', String(bytes)], seconds, cpu)) as { end: { sum_sent: UdpSum; sum_received: UdpSum } };
  const rx = j.end.sum_received;
  const tx = j.end.sum_sent;
  if (!(rx.seconds > 0) || !(tx.seconds > 0)) throw new Error(`iperf3 UDP ${client.ns} → ${server.address}: no duration in its report`);
  return { rxPps: (rx.packets - rx.lost_packets) / rx.seconds, txPps: tx.packets / tx.seconds, loss: rx.packets > 0 ? rx.lost_packets / rx.packets : NaN };
}

export interface Latency {
  /** One-way latency (sockperf's: half the round trip), µs. */
  p50: number;
  p99: number;
  observations: number;
}

let sockperfPort = 11111;

/** sockperf ping-pong over UDP for `seconds` (after its own warm-up), server `sockperf sr`; both on `cpu` when given. */
export async function latency(client: Host, server: Host, seconds: number, cpu?: number): Promise<Latency> {
  const p = sockperfPort++;
  if (sockperfPort > 11199) sockperfPort = 11111;
  const srv = inNs(server.ns, pinned(cpu, ['sockperf', 'sr', '-i', server.address, '-p', String(p)]));
  return withServer(srv, `sockperf server in ${server.ns}`, (out) => /using \w+\(\) to block|Warmup stage/.test(out), async () => {
    const r = await runCmd(inNs(client.ns, pinned(cpu, ['sockperf', 'pp', '-i', server.address, '-p', String(p), '-t', String(seconds)])), (seconds + 30) * 1000);
    const text = r.stdout + r.stderr;
    const at = (pct: string): number => Number(new RegExp(`percentile ${pct.replace('.', '\\.')} =\\s*([\\d.]+)`).exec(text)?.[1]);
    const observations = Number(/Total (\d+) observations/.exec(text)?.[1]);
    const result = { p50: at('50.000'), p99: at('99.000'), observations };
    if (r.code !== 0 || !Number.isFinite(result.p50) || !(observations > 0)) {
      throw new Error(`sockperf ${client.ns} → ${server.address}:${p} failed (${r.signal ?? `exit ${r.code}`}): ${text.slice(-400)}`);
    }
    return result;
  });
}

export interface LinkCounters { txPackets: number; txBytes: number; rxPackets: number; rxBytes: number }

export async function counters(ns: string, dev: string): Promise<LinkCounters> {
  const j = JSON.parse(await mustRun(['ip', '-n', ns, '-j', '-s', 'link', 'show', dev])) as { stats64: { tx: { packets: number; bytes: number }; rx: { packets: number; bytes: number } } }[];
  const s = j[0]!.stats64;
  return { txPackets: s.tx.packets, txBytes: s.tx.bytes, rxPackets: s.rx.packets, rxBytes: s.rx.bytes };
}

/** The offload flags that matter for a tunnel path, as `ethtool -k` shows them. */
export async function offloads(ns: string, dev: string): Promise<string> {
  const r = await runCmd(inNs(ns, ['ethtool', '-k', dev]));
  if (r.code !== 0) return `${dev}: ethtool unavailable`;
  const want = ['tx-checksumming', 'scatter-gather', 'tcp-segmentation-offload', 'generic-segmentation-offload', 'generic-receive-offload', 'tx-udp_tnl-segmentation', 'tx-udp_tnl-csum-segmentation', 'rx-udp-gro-forwarding'];
  const short: Record<string, string> = {
    'tx-checksumming': 'tx-csum', 'scatter-gather': 'sg', 'tcp-segmentation-offload': 'tso', 'generic-segmentation-offload': 'gso',
    'generic-receive-offload': 'gro', 'tx-udp_tnl-segmentation': 'udp_tnl-seg', 'tx-udp_tnl-csum-segmentation': 'udp_tnl-csum-seg', 'rx-udp-gro-forwarding': 'udp-gro-fwd',
  };
  const flags = r.stdout.split('\n').map((l) => /^\s*([\w-]+): (on|off)/.exec(l)).filter((m): m is RegExpExecArray => m !== null && want.includes(m[1]!));
  return `${dev}: ${flags.map((m) => `${short[m[1]!]} ${m[2]}`).join(', ')}`;
}

/** A reversible change in a lab's node namespaces, to find out what a gap is made of. */
export interface Tweak {
  name: string;
  what: string;
  apply(nodeNs: string): Promise<void>;
  revert(nodeNs: string): Promise<void>;
}

const ipt = (ns: string, args: string[]): Promise<string> => mustRun(inNs(ns, ['iptables', '-w', '5', ...args]));
const sysctl = (ns: string, kv: string): Promise<string> => mustRun(inNs(ns, ['sysctl', '-qw', kv]));

/** Does this kernel have br_netfilter (bridged frames sent through iptables)? Checked in a node. */
export async function bridgeNetfilter(ns: string): Promise<string | undefined> {
  const r = await runCmd(inNs(ns, ['sysctl', '-n', 'net.bridge.bridge-nf-call-iptables']));
  return r.code === 0 ? r.stdout.trim() : undefined;
}

export const TWEAKS: Record<string, Tweak> = {
  notrack: {
    name: 'notrack',
    what: 'conntrack bypassed in the nodes (raw PREROUTING/OUTPUT -j NOTRACK; the agents\' masquerade rules stay, they just never see a new connection)',
    apply: async (ns) => {
      await ipt(ns, ['-t', 'raw', '-I', 'PREROUTING', '-m', 'comment', '--comment', 'weft-bench', '-j', 'NOTRACK']);
      await ipt(ns, ['-t', 'raw', '-I', 'OUTPUT', '-m', 'comment', '--comment', 'weft-bench', '-j', 'NOTRACK']);
    },
    revert: async (ns) => {
      await ipt(ns, ['-t', 'raw', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'weft-bench', '-j', 'NOTRACK']);
      await ipt(ns, ['-t', 'raw', '-D', 'OUTPUT', '-m', 'comment', '--comment', 'weft-bench', '-j', 'NOTRACK']);
    },
  },
  'no-bridge-nf': {
    name: 'no-bridge-nf',
    what: 'br_netfilter off for cni0 (net.bridge.bridge-nf-call-iptables=0 in the nodes): frames entering cni0 skip the extra iptables pass',
    apply: (ns) => sysctl(ns, 'net.bridge.bridge-nf-call-iptables=0').then(() => undefined),
    revert: (ns) => sysctl(ns, 'net.bridge.bridge-nf-call-iptables=1').then(() => undefined),
  },
  gro: {
    name: 'gro',
    what: 'GRO on for the nodes\' eth0 (veth; off by default) and rx-udp-gro-forwarding on',
    apply: async (ns) => void (await mustRun(inNs(ns, ['ethtool', '-K', 'eth0', 'gro', 'on', 'rx-udp-gro-forwarding', 'on']))),
    revert: async (ns) => void (await mustRun(inNs(ns, ['ethtool', '-K', 'eth0', 'gro', 'off', 'rx-udp-gro-forwarding', 'off']))),
  },
};

/** Applies a tweak to every node of a lab, runs fn, and always reverts. */
export async function withTweak<T>(tweak: Tweak, nodes: readonly string[], fn: () => Promise<T>): Promise<T> {
  const applied: string[] = [];
  try {
    for (const ns of nodes) {
      await tweak.apply(ns);
      applied.push(ns);
    }
    return await fn();
  } finally {
    for (const ns of applied) await tweak.revert(ns).catch((e: Error) => process.stderr.write(`bench:dataplane: could not revert ${tweak.name} in ${ns}: ${e.message}\n`));
  }
}


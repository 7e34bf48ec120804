// One measurement each: iperf3 TCP throughput and ping RTTs between two hosts of a lab, each
// tool exec'd inside its host's namespace (nsenter --net), so the traffic never leaves the lab.
import { spawn } from 'node:child_process';
import { inNs, mustRun, percentile, runCmd, sleep, track } from './common.ts';
import type { Host } from './labs.ts';

export interface Throughput {
  gbps: number;
  retransmits: number;
  /** iperf3's own CPU accounting (% of one CPU, user+system) for the sender and the receiver. */
  cpuSender: number;
  cpuReceiver: number;
}

let port = 5201;

/** iperf3 -c from client to server for `seconds`, `streams` parallel TCP streams; receiver-side bit rate. */
export async function iperf(client: Host, server: Host, streams: number, seconds: number): Promise<Throughput> {
  const p = port++;
  if (port > 5299) port = 5201;
  const argv = inNs(server.ns, ['iperf3', '-s', '-1', '-B', server.address, '-p', String(p)]);
  const srv = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  const pid = track(srv, `iperf3 server in ${server.ns}`);
  let srvErr = '';
  srv.stderr?.on('data', (b: Buffer) => (srvErr += b.toString()));
  try {
    for (let attempt = 1; ; attempt++) {
      await sleep(attempt === 1 ? 200 : 500);
      const r = await runCmd(inNs(client.ns, ['iperf3', '-c', server.address, '-p', String(p), '-t', String(seconds), '-P', String(streams), '-J', '--connect-timeout', '3000']), (seconds + 30) * 1000);
      if (r.code === 0) {
        const j = JSON.parse(r.stdout) as {
          end: { sum_received: { bits_per_second: number }; sum_sent: { retransmits?: number }; cpu_utilization_percent?: { host_total: number; remote_total: number } };
        };
        return {
          gbps: j.end.sum_received.bits_per_second / 1e9,
          retransmits: j.end.sum_sent.retransmits ?? 0,
          cpuSender: j.end.cpu_utilization_percent?.host_total ?? NaN,
          cpuReceiver: j.end.cpu_utilization_percent?.remote_total ?? NaN,
        };
      }
      if (attempt >= 3 || !/refused|connect/i.test(r.stdout + r.stderr)) {
        throw new Error(`iperf3 ${client.ns} → ${server.address}:${p} failed: ${(r.stdout + r.stderr).slice(0, 400)} ${srvErr.slice(0, 200)}`);
      }
    }
  } finally {
    if (srv.exitCode === null && srv.signalCode === null) process.kill(pid, 'SIGTERM');
  }
}

export interface Rtt { p50: number; p99: number; loss: number }

/** `count` pings at `intervalS`; RTT percentiles in ms (nearest rank). */
export async function ping(from: Host, to: Host, count: number, intervalS: number): Promise<Rtt> {
  const r = await runCmd(inNs(from.ns, ['ping', '-n', '-c', String(count), '-i', String(intervalS), '-W', '1', to.address]), count * intervalS * 1000 + 30_000);
  const rtts = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (rtts.length === 0) throw new Error(`ping ${from.ns} → ${to.address}: no replies (${r.stdout.slice(-300)} ${r.stderr})`);
  return { p50: percentile(rtts, 50), p99: percentile(rtts, 99), loss: 1 - rtts.length / count };
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


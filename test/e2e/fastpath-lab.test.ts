// The fast path in a lab (root only): agents with --pod-link routed --fast-path ebpf, in etcd
// mode over host-gw and over VXLAN, and in mesh mode. Each lab passes every `lab check` probe,
// and the agents' counters show pod-to-pod TCP really took the fast path. A Service-like DNAT
// (a ClusterIP rule as kube-proxy writes it, on the client's node) works with the fast path on,
// because its replies are handed to conntrack (pass_nat grows) instead of being redirected past
// it; so does a pod reaching itself through that "Service" (kube-proxy's hairpin masquerade).
// And a node whose programs cannot be loaded says so (a status note; /readyz shows the same
// notes, src/agent/status.test.ts) and runs on
// the normal path. Labs are removed by `lab down` in after hooks registered before they exist.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { AgentStatus } from '../../src/agent/status.ts';
import type { CheckReport, LabStatus } from '../../src/lab/index.ts';
import { ETCD_BIN } from '../../src/lab/etcd.ts';
import { netnsPath } from '../../src/lab/netns.ts';
import { WEFT_BIN, WEFT_CNI_PLUGIN } from '../../src/lab/paths.ts';
import { run, type RunResult } from '../../src/lab/run.ts';
import { parseProbeReport } from '../../src/probe/report.ts';

const missing = process.getuid?.() !== 0
  ? 'needs root: the lab creates network namespaces'
  : !(await access(WEFT_CNI_PLUGIN).then(() => true, () => false))
    ? 'build/weft-cni is not built'
    : !(await access(ETCD_BIN).then(() => true, () => false)) ? `${ETCD_BIN} is not installed` : false;

const weft = (args: string[], env: NodeJS.ProcessEnv = process.env): Promise<RunResult> => run([WEFT_BIN, ...args], { timeoutMs: 240_000, env });
const inNs = (ns: string, ...argv: string[]): Promise<RunResult> => run(['nsenter', `--net=${netnsPath(ns)}`, '--', ...argv], { timeoutMs: 60_000 });
const mustInNs = async (ns: string, ...argv: string[]): Promise<string> => {
  const r = await inNs(ns, ...argv);
  assert.equal(r.code, 0, `${argv.join(' ')} in ${ns}: ${r.stderr}`);
  return r.stdout;
};

const responders: ChildProcessWithoutNullStreams[] = [];
after(() => {
  for (const r of responders) if (r.exitCode === null && r.pid !== undefined) process.kill(r.pid, 'SIGKILL');
});

function serveIn(ns: string): Promise<number> {
  const child = spawn('nsenter', [`--net=${netnsPath(ns)}`, '--', WEFT_BIN, 'probe', 'serve', '--port', '0', '--json', '--exit-after', '10m'], { stdio: ['pipe', 'pipe', 'pipe'] });
  responders.push(child);
  return new Promise((resolve, reject) => {
    child.on('close', (code) => reject(new Error(`weft probe serve in ${ns} exited (${code}) before it listened`)));
    createInterface({ input: child.stdout }).once('line', (line) => {
      const port = (JSON.parse(line) as { listening?: { port?: unknown } }).listening?.port;
      if (typeof port === 'number') resolve(port);
      else reject(new Error(`unexpected first line from weft probe serve: ${line}`));
    });
  });
}

/** `weft probe` over TCP from a pod; returns the source address the responder saw. */
async function tcpProbe(ns: string, to: string): Promise<string | undefined> {
  // Generous: these machines are shared; the question is whether it connects, not how fast.
  const r = await inNs(ns, WEFT_BIN, 'probe', '--json', '--kinds', 'tcp', '--attempts', '3', '--timeout', '5s', '--to', to);
  const report = parseProbeReport(r.stdout);
  assert.ok(report, `no report from weft probe in ${ns}: ${r.stdout} ${r.stderr}`);
  const failed = report.results.filter((x) => !x.ok).map((x) => `${x.address}: ${x.error}`);
  assert.deepEqual(failed, [], `tcp from ${ns} to ${to}`);
  return report.results[0]?.seen ?? undefined;
}

async function agentStatus(lab: string, node: string): Promise<AgentStatus> {
  const r = await weft(['lab', 'exec', '--name', lab, node, '--', WEFT_BIN, 'status', '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as AgentStatus;
}

async function stats(lab: string, node: string): Promise<Record<string, number>> {
  const s = await agentStatus(lab, node);
  assert.equal(s.fastPath?.active, true, `${node}: the fast path is not active: ${s.fastPath?.reason ?? 'no fastPath in the status'}`);
  return s.fastPath.stats ?? assert.fail(`${node}: no fast path counters`);
}

const grew = (before: Record<string, number>, now: Record<string, number>, key: string): number => (now[key] ?? 0) - (before[key] ?? 0);

interface Lab { name: string; status: LabStatus; pod(node: string, i: number): { ns: string; ip: string } }

async function fastLab(prefix: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Lab> {
  const name = `${prefix}${randomBytes(2).toString('hex')}`;
  after(async () => void (await weft(['lab', 'down', '--name', name])));
  const up = await weft(['lab', 'up', '--name', name, '--pod-link', 'routed', '--fast-path', 'ebpf', '--pods-per-node', '2', '--json', ...args], env);
  assert.equal(up.code, 0, up.stderr);
  const status = JSON.parse(up.stdout) as LabStatus;
  return {
    name, status,
    pod(node, i) {
      const p = status.nodes.find((n) => n.name === node)?.pods[i] ?? assert.fail(`no pod ${i} on ${node}`);
      return { ns: p.ns, ip: p.addresses[0]?.split('/')[0] ?? assert.fail(`${p.name} has no address`) };
    },
  };
}

async function checkPasses(lab: string): Promise<void> {
  const check = await weft(['lab', 'check', '--name', lab, '--json']);
  const report = JSON.parse(check.stdout) as CheckReport;
  assert.deepEqual(report.probes.filter((p) => !p.ok).map((p) => `${p.kind} ${p.from} → ${p.to}: ${JSON.stringify(p)}`), []);
  assert.equal(check.code, 0);
}

/** Pod-to-pod TCP across nodes and on one node took the fast path on both ends. */
async function provesFastPath(lab: Lab): Promise<void> {
  const [client, local, remote] = [lab.pod('n1', 0), lab.pod('n1', 1), lab.pod('n2', 0)];
  const [localPort, remotePort] = [await serveIn(local.ns), await serveIn(remote.ns)];
  const [b1, b2] = [await stats(lab.name, 'n1'), await stats(lab.name, 'n2')];
  assert.equal(await tcpProbe(client.ns, `${remote.ip}:${remotePort}`), client.ip, 'pod to pod is not masqueraded');
  assert.equal(await tcpProbe(client.ns, `${local.ip}:${localPort}`), client.ip);
  const [a1, a2] = [await stats(lab.name, 'n1'), await stats(lab.name, 'n2')];
  assert.ok(grew(b1, a1, 'tx_remote') + grew(b1, a1, 'tx_remote_neigh') > 0, `n1 sent nothing to n2 on the fast path: ${JSON.stringify(a1)}`);
  assert.ok(grew(b2, a2, 'rx_redirect') > 0, `n2 redirected nothing into its pod: ${JSON.stringify(a2)}`);
  assert.ok(grew(b1, a1, 'rx_redirect') > 0, `n1 redirected none of n2's replies into its pod: ${JSON.stringify(a1)}`);
  assert.ok(grew(b1, a1, 'tx_local') > 0, `n1 moved nothing between its own pods: ${JSON.stringify(a1)}`);
}

test('etcd, host-gw, fast path on: every probe passes, pod-to-pod TCP takes the fast path, a ClusterIP-style DNAT and its hairpin work', { skip: missing, timeout: 600_000 }, async () => {
  const lab = await fastLab('fph', ['--store', 'etcd', '--backend', 'host-gw', '--nodes', '3']);
  await checkPasses(lab.name);
  await provesFastPath(lab);

  // A "Service" 10.96.0.10:80 on n1 → a server pod on n2 (and one on n1), as kube-proxy's DNAT rules.
  const [client, server, sameNode] = [lab.pod('n1', 0), lab.pod('n2', 1), lab.pod('n1', 1)];
  const [serverPort, localPort, clientPort] = [await serveIn(server.ns), await serveIn(sameNode.ns), await serveIn(client.ns)];
  const n1 = lab.status.nodes.find((n) => n.name === 'n1')?.ns ?? assert.fail('no n1');
  const dnat = (vip: string, to: string): Promise<string> =>
    mustInNs(n1, 'iptables', '-w', '-t', 'nat', '-A', 'PREROUTING', '-d', `${vip}/32`, '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', to);
  await dnat('10.96.0.10', `${server.ip}:${serverPort}`);
  await dnat('10.96.0.11', `${sameNode.ip}:${localPort}`);
  await dnat('10.96.0.12', `${client.ip}:${clientPort}`);
  // kube-proxy masquerades a pod reaching itself through its own Service (KUBE-MARK-MASQ on the hairpin).
  await mustInNs(n1, 'iptables', '-w', '-t', 'nat', '-A', 'POSTROUTING', '-s', `${client.ip}/32`, '-d', `${client.ip}/32`, '-p', 'tcp', '-j', 'MASQUERADE');
  const before = await stats(lab.name, 'n1');
  assert.equal(await tcpProbe(client.ns, '10.96.0.10:80'), client.ip, 'the remote server saw the client pod itself');
  assert.equal(await tcpProbe(client.ns, '10.96.0.11:80'), client.ip, 'the same-node server saw the client pod itself');
  assert.notEqual(await tcpProbe(client.ns, '10.96.0.12:80'), undefined, 'the hairpin answered');
  const now = await stats(lab.name, 'n1');
  assert.ok(grew(before, now, 'pass_nat') > 0, `no DNAT reply was handed to conntrack on n1: ${JSON.stringify(now)}`);
});

test('etcd, vxlan across two zones, fast path on: every probe passes and pod-to-pod TCP takes the fast path through flannel.1', { skip: missing, timeout: 600_000 }, async () => {
  const lab = await fastLab('fpv', ['--store', 'etcd', '--backend', 'vxlan', '--nodes', '2']);
  const s = await agentStatus(lab.name, 'n1');
  assert.deepEqual(s.fastPath?.uplinks.sort(), ['eth0', 'flannel.1'].sort());
  await checkPasses(lab.name);
  await provesFastPath(lab);

  // weft uninstall on a stopped node takes the programs off every interface and unpins the maps.
  const stop = await weft(['lab', 'node', 'stop', '--name', lab.name, 'n2']);
  assert.equal(stop.code, 0, stop.stderr);
  const un = await weft(['lab', 'exec', '--name', lab.name, 'n2', '--', WEFT_BIN, 'uninstall', '--json']);
  assert.equal(un.code, 0, un.stderr);
  const removed = (JSON.parse(un.stdout) as { fastPath: { detached: string[]; pins: boolean } }).fastPath;
  assert.ok(removed.detached.includes('eth0') && removed.detached.includes('flannel.1'), `detached from ${removed.detached.join(', ')}`);
  assert.ok(removed.detached.some((d) => d.startsWith('veth')), 'and from the pods\' host veths');
  assert.equal(removed.pins, true);
  const n2 = lab.status.nodes.find((n) => n.name === 'n2')?.ns ?? assert.fail('no n2');
  const links = JSON.parse(await mustInNs(n2, 'ip', '-j', 'link', 'show')) as { ifname: string }[];
  for (const { ifname } of links) {
    assert.equal((await mustInNs(n2, 'tc', 'filter', 'show', 'dev', ifname, 'ingress')).trim(), '', `a filter is left on ${ifname}`);
  }
});

test('mesh, fast path on: every probe passes, pod-to-pod TCP takes the fast path, also while the agent is SIGKILLed, and a restart keeps the maps', { skip: missing, timeout: 600_000 }, async () => {
  const lab = await fastLab('fpm', ['--store', 'mesh', '--nodes', '2']);
  await checkPasses(lab.name);
  await provesFastPath(lab);

  // The programs stay attached and the maps pinned without the agent: n2 still redirects.
  const [client, server] = [lab.pod('n1', 0), lab.pod('n2', 0)];
  const port = await serveIn(server.ns);
  const before = await stats(lab.name, 'n2');
  const kill = await weft(['lab', 'node', 'stop', '--name', lab.name, '--kill', 'n2']);
  assert.equal(kill.code, 0, kill.stderr);
  assert.equal(await tcpProbe(client.ns, `${server.ip}:${port}`), client.ip, 'pod to pod works with n2\'s agent dead');
  const start = await weft(['lab', 'node', 'start', '--name', lab.name, '--no-pods', 'n2']);
  assert.equal(start.code, 0, start.stderr);
  const after = await stats(lab.name, 'n2');
  assert.ok(grew(before, after, 'rx_redirect') > 0, `n2 redirected nothing while its agent was down: ${JSON.stringify(before)} → ${JSON.stringify(after)}`);
  // The restarted agent reused the pinned maps (the counters went on) and put its own programs in place.
  assert.ok((after.rx_redirect ?? 0) >= (before.rx_redirect ?? 0));
  assert.equal(await tcpProbe(client.ns, `${server.ip}:${port}`), client.ip);
  await checkPasses(lab.name);
});

test('programs the kernel cannot load: the agents say why (a status note), stay ready, and pods use the normal path', { skip: missing, timeout: 600_000 }, async () => {
  const bogus = join(tmpdir(), `weft-not-bpf-${randomBytes(3).toString('hex')}.o`);
  await writeFile(bogus, 'this is not a BPF object\n');
  const lab = await fastLab('fpf', ['--store', 'etcd', '--nodes', '2'], { ...process.env, WEFT_BPF_OBJECT: bogus });
  const s = await agentStatus(lab.name, 'n1');
  assert.equal(s.ready, true);
  assert.equal(s.fastPath?.active, false);
  assert.match(s.fastPath?.reason ?? '', /could not be loaded.*normal path/);
  assert.ok((s.notes ?? []).some((n) => /fast path/.test(n)), `no note: ${JSON.stringify(s.notes)}`);
  await checkPasses(lab.name);
});

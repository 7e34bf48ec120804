// End-to-end tests of `weft lab up --store etcd` (root only): a real etcd in the lab's etcd
// namespace, a real `weft agent` per node, every probe kind, and a down that leaves nothing.
// Every test uses its own lab name and registers `lab down` before it creates anything.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { listNetns, PROBE_KINDS, type CheckReport, type LabState, type LabStatus } from '../../src/lab/index.ts';
import { ETCD_BIN } from '../../src/lab/etcd.ts';
import { REPO_ROOT, WEFT_CNI_PLUGIN } from '../../src/lab/paths.ts';
import { isAlive } from '../../src/lab/processes.ts';
import { run, type RunResult } from '../../src/lab/run.ts';

const WEFT = `${REPO_ROOT}/bin/weft`;
const missing = process.getuid?.() !== 0
  ? 'needs root: the lab creates network namespaces'
  : !(await access(WEFT_CNI_PLUGIN).then(() => true, () => false))
    ? 'build/weft-cni is not built'
    : !(await access(ETCD_BIN).then(() => true, () => false)) ? `${ETCD_BIN} is not installed` : false;

const weft = (...args: string[]): Promise<RunResult> => run([WEFT, ...args], { timeoutMs: 120_000 });
const uniqueName = (): string => `e${randomBytes(4).toString('hex')}`;
const labNamespaces = async (name: string): Promise<string[]> => (await listNetns()).filter((ns) => ns.startsWith(`weft-${name}-`));

function downAfter(name: string): void {
  after(async () => void (await weft('lab', 'down', '--name', name)));
}

async function readLabState(name: string): Promise<LabState> {
  return JSON.parse(await readFile(`/run/weft/lab/${name}/state.json`, 'utf8')) as LabState;
}

/** PIDs of etcd and the agents, from the state file: they must all be gone after down. */
async function daemonPids(name: string): Promise<number[]> {
  return Object.values((await readLabState(name)).daemonPids).map((d) => d.pid);
}

async function assertGone(name: string, pids: number[]): Promise<void> {
  assert.deepEqual(await labNamespaces(name), []);
  await assert.rejects(access(`/run/weft/lab/${name}`), 'state dir removed');
  for (const pid of pids) assert.equal(await isAlive(pid), false, `pid ${pid} stopped`);
}

async function checkJson(name: string, ...args: string[]): Promise<{ code: number | null; report: CheckReport }> {
  const r = await weft('lab', 'check', '--name', name, '--json', ...args);
  return { code: r.code, report: JSON.parse(r.stdout) as CheckReport };
}

/** etcdctl inside the lab's etcd member, with the given API. */
async function etcdctl(name: string, api: 'v2' | 'v3', ...args: string[]): Promise<string> {
  const r = await weft('lab', 'exec', '--name', name, 'etcd', '--', 'env', `ETCDCTL_API=${api.slice(1)}`, 'etcdctl', '--endpoints=http://172.31.1.5:2379', ...args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** The root namespace's links, addresses, routes, forwarding and firewall: agents run iptables, but only in their nodes. */
async function rootSnapshot(): Promise<string> {
  const outputs = await Promise.all([
    run(['ip', '-o', 'link']),
    run(['ip', '-o', 'addr']),
    run(['ip', 'route', 'show', 'table', 'all']),
    run(['sysctl', '-n', 'net.ipv4.ip_forward']),
    run(['iptables-save']),
    run(['nft', 'list', 'ruleset']),
  ]);
  return outputs.map((r) => r.stdout.replace(/qlen \d+|state \w+|mtu \d+|^#.*$|\[\d+:\d+\]/gm, '')).join('\n');
}

type Backend = 'vxlan' | 'host-gw' | 'auto';

/** up 3 nodes x 2 pods with the etcd store, status, etcd contents, check (all 78 probes pass), down. */
async function etcdCycle(api: 'v2' | 'v3', backend: Backend, extra?: (name: string, status: LabStatus) => Promise<void>): Promise<void> {
  const name = uniqueName();
  downAfter(name);
  const up = await weft('lab', 'up', '--name', name, '--nodes', '3', '--store', 'etcd', '--etcd-api', api, '--backend', backend, '--json');
  assert.equal(up.code, 0, up.stderr);
  const status = JSON.parse(up.stdout) as LabStatus;
  const pids = await daemonPids(name);
  assert.equal(pids.length, 4, 'etcd and three agents');

  assert.equal(status.phase, 'ready');
  assert.equal(status.store, 'etcd');
  assert.equal(status.etcd?.healthy, true);
  assert.deepEqual([status.etcd?.api, status.etcd?.backend], [api, backend]);
  // host-gw needs one L2 segment, so by default its nodes all go to zone a.
  assert.deepEqual(status.nodes.map((n) => n.zone), backend === 'host-gw' ? ['a', 'a', 'a'] : ['a', 'b', 'a']);
  const leases = status.nodes.map((n) => n.agent?.lease);
  assert.equal(new Set(leases).size, 3, `distinct leases: ${leases.join(' ')}`);
  for (const n of status.nodes) {
    assert.equal(n.daemon?.kind, 'agent');
    assert.equal(n.daemon?.alive, true);
    assert.equal(n.agent?.ready, true);
    assert.match(n.agent?.lease ?? '', /^10\.16\.\d+\.0\/24$/);
    assert.equal(n.podSubnet, n.agent?.lease);
    assert.equal(n.agent?.backend, backend);
    assert.equal(n.agent?.peers, 2);
    for (const p of n.pods) assert.ok(p.addresses[0]?.startsWith((n.agent?.lease ?? 'x').replace(/0\/24$/, '')), `${p.name} ${p.addresses[0]} in ${n.agent?.lease}`);
  }
  const paths: (Record<string, number> | undefined)[] = status.nodes.map((n) => n.agent?.peerPaths);
  const direct = paths.map((p) => [p?.['direct'] ?? 0, p?.['vxlan'] ?? 0]);
  if (backend === 'vxlan') assert.deepEqual(paths, [{ vxlan: 2 }, { vxlan: 2 }, { vxlan: 2 }]);
  if (backend === 'host-gw') assert.deepEqual(paths, [{ direct: 2 }, { direct: 2 }, { direct: 2 }]);
  if (backend === 'auto') {
    // n1 and n3 share zone a (a direct route), n2 is in zone b (VXLAN).
    assert.deepEqual(direct, [[1, 1], [0, 2], [1, 1]]);
  }

  // The agent, not the lab, wrote subnet.env: its lease, masquerading on.
  const n2 = status.nodes[1];
  assert.ok(n2?.agent?.lease);
  const env = await readFile(`/run/weft/lab/${name}/n2/subnet.env`, 'utf8');
  assert.match(env, new RegExp(`^FLANNEL_SUBNET=${n2.agent.lease.replace(/0\/24$/, '1/24').replace(/\./g, '\\.')}$`, 'm'));
  assert.match(env, /^FLANNEL_IPMASQ=true$/m);

  // The config and the three leases live in the chosen API's key space.
  if (api === 'v3') {
    assert.match(await etcdctl(name, 'v3', 'get', '/coreos.com/network/config', '--print-value-only'), new RegExp(`"Type":"${backend}"`));
    const keys = (await etcdctl(name, 'v3', 'get', '--prefix', '--keys-only', '/coreos.com/network/subnets/')).split('\n').filter(Boolean);
    assert.equal(keys.length, 3, keys.join(' '));
  } else {
    assert.match(await etcdctl(name, 'v2', 'get', '/coreos.com/network/config'), new RegExp(`"Type":"${backend}"`));
    const keys = (await etcdctl(name, 'v2', 'ls', '/coreos.com/network/subnets')).split('\n').filter(Boolean);
    assert.equal(keys.length, 3, keys.join(' '));
  }

  const { code, report } = await checkJson(name);
  assert.equal(code, 0, JSON.stringify(report.probes.filter((p) => !p.ok)));
  // 3 nodes x 2 pods: 6+6+6+6 same-node, 24 pod pairs across nodes, 12+12 to/from remote nodes, 6 outside.
  // Routed pods (the second e2e pass) have a link-local gateway that nothing answers: no pod-gateway probes.
  const routed = status.podLink === 'routed';
  const expected = routed ? 72 : 78;
  assert.deepEqual({ probes: report.probes.length, passed: report.passed, failed: report.failed }, { probes: expected, passed: expected, failed: 0 });
  const kinds = new Set(report.probes.map((p) => p.kind));
  assert.deepEqual(kinds, new Set(PROBE_KINDS.filter((k) => (backend !== 'host-gw' || k !== 'pod-pod-other-zone') && (!routed || k !== 'pod-gateway'))));
  const outside = report.probes.filter((p) => p.kind === 'pod-outside');
  assert.equal(outside.length, 6);
  for (const p of outside) {
    const node = status.nodes.find((n) => p.from.startsWith(`${n.name}-`));
    assert.equal(p.expected_source, node?.address);
    assert.equal(p.source_seen, node?.address, `${p.from}: outside saw its node's address`);
  }

  await extra?.(name, status);

  const down = await weft('lab', 'down', '--name', name, '--json');
  assert.equal(down.code, 0, down.stderr);
  const report2 = JSON.parse(down.stdout) as { deleted: string[]; stoppedPids: number[] };
  assert.equal(report2.deleted.length, 6, 'CNI DEL through the agents for every pod');
  for (const pid of pids) assert.ok(report2.stoppedPids.includes(pid), `down stopped ${pid}`);
  await assertGone(name, pids);
}

test('etcd v3, vxlan: up 3 nodes, every probe passes, unmasqueraded traffic is caught, status, down leaves nothing', { skip: missing }, async () => {
  const rootBefore = await rootSnapshot();
  await etcdCycle('v3', 'vxlan', async (name, status) => {
    assert.equal(await rootSnapshot(), rootBefore, 'the root namespace is unchanged while the agents run');
    // Skip the agent's masquerade for traffic to the outside host on n1 (an ACCEPT ahead of
    // its chain): n1's pods now reach outside with their own address, and the check says so.
    const rule = ['-t', 'nat', '-I', 'POSTROUTING', '1', '-d', '203.0.113.2', '-j', 'ACCEPT'];
    assert.equal((await weft('lab', 'exec', '--name', name, 'n1', '--', 'iptables', ...rule)).code, 0);
    const { code, report } = await checkJson(name, '--kinds', 'pod-outside');
    assert.equal(code, 1);
    const n1Pods = status.nodes[0]?.pods ?? [];
    const failed = report.probes.filter((p) => !p.ok);
    assert.deepEqual(failed.map((p) => p.from).sort(), n1Pods.map((p) => p.name).sort());
    for (const p of failed) assert.equal(p.source_seen, n1Pods.find((q) => q.name === p.from)?.addresses[0]?.split('/')[0], 'outside saw the pod address');
    assert.equal(report.passed, 4);
    const human = await weft('lab', 'check', '--name', name, '--kinds', 'pod-outside');
    assert.equal(human.code, 1);
    assert.match(human.stdout, /✗ n1-p1 → outside \(pod-outside\): outside saw source 10\.16\.\d+\.\d+, not the node's 172\.31\.1\.11 \(not masqueraded\)/);
    rule[2] = '-D';
    rule.splice(4, 1);
    assert.equal((await weft('lab', 'exec', '--name', name, 'n1', '--', 'iptables', ...rule)).code, 0);

    const text = await weft('lab', 'status', '--name', name);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /store etcd \(v3 API, backend vxlan\)/);
    assert.match(text.stdout, /^etcd\s+weft-\w+-etcd\s+172\.31\.1\.5\s+http:\/\/172\.31\.1\.5:2379, pid \d+ healthy$/m);
    assert.match(text.stdout, /^n2\s+\S+\s+172\.31\.2\.12\s+zone b, pods 10\.16\.\d+\.0\/24, vxlan, 2 peers \(vxlan 2\), agent pid \d+ alive$/m);
  });
  assert.equal(await rootSnapshot(), rootBefore, 'the root namespace is unchanged after down');
});

test('etcd v2, vxlan: up 3 nodes, every probe passes, down leaves nothing', { skip: missing }, async () => {
  await etcdCycle('v2', 'vxlan');
});

test('etcd v2, host-gw (all nodes in zone a): up 3 nodes, every probe passes, down leaves nothing', { skip: missing }, async () => {
  await etcdCycle('v2', 'host-gw');
});

test('etcd v3, auto (direct in a zone, VXLAN across): up 3 nodes, every probe passes, down leaves nothing', { skip: missing }, async () => {
  await etcdCycle('v3', 'auto');
});

test('host-gw across two zones: up warns, the agents report the peers unreachable, check fails exactly the cross-zone pod paths', { skip: missing }, async () => {
  const name = uniqueName();
  downAfter(name);
  const up = await weft('lab', 'up', '--name', name, '--nodes', '2', '--pods-per-node', '1', '--store', 'etcd', '--backend', 'host-gw', '--zones', '2', '--json');
  assert.equal(up.code, 0, up.stderr);
  assert.match(up.stderr, /warning: host-gw .* needs all nodes on one L2 segment/);
  const status = JSON.parse(up.stdout) as LabStatus;
  assert.deepEqual(status.nodes.map((n) => [n.zone, n.agent?.peerPaths]), [['a', { unreachable: 1 }], ['b', { unreachable: 1 }]]);
  assert.ok(status.nodes.every((n) => n.agent?.errors.some((e) => /host-gw cannot reach/.test(e))), JSON.stringify(status.nodes.map((n) => n.agent?.errors)));

  const { code, report } = await checkJson(name);
  assert.equal(code, 1);
  const failed = report.probes.filter((p) => !p.ok).map((p) => `${p.kind} ${p.from}>${p.to}`).sort();
  assert.deepEqual(failed, ['node-remote-pod n1>n2-p1', 'node-remote-pod n2>n1-p1', 'pod-pod-other-zone n1-p1>n2-p1', 'pod-pod-other-zone n2-p1>n1-p1']);
  // Node addresses and the outside host stay reachable: the router forwards, and the nodes masquerade.
  assert.ok(report.probes.filter((p) => p.kind === 'pod-remote-node' || p.kind === 'pod-outside').every((p) => p.ok));
});

test('kill -9 of `lab up --store etcd` once agents run, then down stops etcd and the agents and removes everything', { skip: missing }, async () => {
  const name = uniqueName();
  downAfter(name);
  const up = spawn(WEFT, ['lab', 'up', '--name', name, '--nodes', '3', '--store', 'etcd'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ended = new Promise<NodeJS.Signals | null>((resolve) => up.on('close', (_code, signal) => resolve(signal)));
  up.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    if (/^node /m.test(chunk)) up.kill('SIGKILL');
  });
  assert.equal(await ended, 'SIGKILL', 'up was killed before it finished');
  const pids = await daemonPids(name);
  assert.ok(pids.length >= 2, 'etcd and at least one agent were running');
  for (const pid of pids) assert.equal(await isAlive(pid), true);

  const down = await weft('lab', 'down', '--name', name);
  assert.equal(down.code, 0, down.stderr);
  await assertGone(name, pids);
});

test('etcd-store flags: clear errors, nothing created', { skip: missing }, async () => {
  const name = uniqueName();
  downAfter(name);
  const noStore = await weft('lab', 'up', '--name', name, '--backend', 'host-gw');
  assert.notEqual(noStore.code, 0);
  assert.match(noStore.stderr, /run only with --store etcd/);
  const noDaemon = await weft('lab', 'up', '--name', name, '--store', 'etcd', '--no-daemon');
  assert.notEqual(noDaemon.code, 0);
  assert.match(noDaemon.stderr, /--no-daemon cannot go with --store etcd/);
  const ttl = await weft('lab', 'up', '--name', name, '--store', 'etcd', '--lease-ttl', '5s');
  assert.notEqual(ttl.code, 0);
  assert.match(ttl.stderr, /--lease-ttl must be a duration longer than/);
  for (const r of [noStore, noDaemon, ttl]) assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.deepEqual(await labNamespaces(name), []);
});

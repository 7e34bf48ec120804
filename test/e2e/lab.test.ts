// End-to-end tests of `weft lab` (root only): real namespaces, real CNI plugins, the real CLI.
// Every test uses its own lab name and registers `lab down` before it creates anything.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access, readFile, rm } from 'node:fs/promises';
import { CROSS_NODE_KINDS, labDown, labStatus, labUp, listNetns, netnsPids, SAME_NODE_KINDS, type CheckReport, type LabStatus } from '../../src/lab/index.ts';
import { weftLauncher } from '../../src/lab/launcher.ts';
import { readState } from '../../src/lab/state.ts';
import { ETCD_BIN } from '../../src/lab/etcd.ts';
import { REPO_ROOT, WEFT_CNI_PLUGIN } from '../../src/lab/paths.ts';
import { isAlive } from '../../src/lab/processes.ts';
import { run, type RunResult } from '../../src/lab/run.ts';

const WEFT = `${REPO_ROOT}/bin/weft`;
const notRoot = process.getuid?.() !== 0 ? 'needs root: the lab creates network namespaces' : false;
const weftPlugin = await access(WEFT_CNI_PLUGIN).then(() => true, () => false);

const weft = (...args: string[]): Promise<RunResult> => run([WEFT, ...args], { timeoutMs: 120_000 });
const uniqueName = (): string => `t${randomBytes(4).toString('hex')}`;
const labNamespaces = async (name: string): Promise<string[]> => (await listNetns()).filter((ns) => ns.startsWith(`weft-${name}-`));

/** `lab down` after the test whatever happens, registered before the lab exists. */
function downAfter(name: string): void {
  after(async () => void (await weft('lab', 'down', '--name', name)));
}

/** If a test fails before `down` stopped them, its long-running processes must not outlive it. */
function killAfter(pids: () => number[]): void {
  after(async () => {
    for (const pid of pids()) if (await isAlive(pid)) process.kill(pid, 'SIGKILL');
  });
}

function assertNoStackTrace(r: RunResult): void {
  assert.doesNotMatch(r.stderr, /\n\s+at /, `stack trace in: ${r.stderr}`);
}

async function assertGone(name: string): Promise<void> {
  assert.deepEqual(await labNamespaces(name), []);
  await assert.rejects(access(`/run/weft/lab/${name}`), 'state dir removed');
}

/** Links, addresses, routes and forwarding of the root namespace: the lab must never change them. */
async function rootNetworkSnapshot(): Promise<string> {
  const outputs = await Promise.all([
    run(['ip', '-o', 'link']),
    run(['ip', '-o', 'addr']),
    run(['ip', 'route', 'show', 'table', 'all']),
    run(['sysctl', '-n', 'net.ipv4.ip_forward']),
  ]);
  // Counters and link state flicker; names, addresses and routes do not.
  return outputs.map((r) => r.stdout.replace(/qlen \d+|state \w+|mtu \d+/g, '')).join('\n');
}

async function upAndStatus(name: string, ...args: string[]): Promise<LabStatus> {
  const r = await weft('lab', 'up', '--name', name, '--json', ...args);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as LabStatus;
}

async function checkJson(name: string): Promise<{ code: number | null; report: CheckReport }> {
  const r = await weft('lab', 'check', '--name', name, '--json');
  return { code: r.code, report: JSON.parse(r.stdout) as CheckReport };
}

/** up 2 nodes x 3 pods, check (same-node kinds all pass), exec, and a full down. */
async function fullCycle(name: string, upArgs: string[]): Promise<void> {
  const status = await upAndStatus(name, '--nodes', '2', '--pods-per-node', '3', ...upArgs);
  assert.equal(status.phase, 'ready');
  assert.deepEqual(status.nodes.map((n) => [n.name, n.zone, n.address, n.podSubnet]), [
    ['n1', 'a', '172.31.1.11', '10.16.1.0/24'],
    ['n2', 'b', '172.31.2.12', '10.16.2.0/24'],
  ]);
  for (const n of status.nodes) {
    assert.equal(n.pods.length, 3);
    const prefix = (n.podSubnet ?? '').replace(/0\/24$/, '');
    for (const p of n.pods) assert.ok(p.addresses[0]?.startsWith(prefix), `${p.name} ${p.addresses[0]} in ${n.podSubnet}`);
  }
  assert.equal((await labNamespaces(name)).length, 2 + 1 + 1 + 2 + 6);
  // Routed pods (the weft plugin in the second e2e pass): subnet.env says so, and their
  // link-local gateway is skipped (with why) rather than pinged.
  const routed = status.podLink === 'routed';
  assert.equal(
    await readFile(`/run/weft/lab/${name}/n2/subnet.env`, 'utf8'),
    `FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.2.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n${routed ? 'WEFT_POD_LINK=routed\n' : ''}`,
  );

  const { code, report } = await checkJson(name);
  assert.equal(code, 0, JSON.stringify(report.probes.filter((p) => !p.ok)));
  const expected = routed ? 24 : 30;
  assert.equal(report.probes.length, expected);
  assert.deepEqual({ passed: report.passed, failed: report.failed }, { passed: expected, failed: 0 });
  assert.deepEqual(new Set(report.probes.map((p) => p.kind)), new Set(SAME_NODE_KINDS.filter((k) => !routed || k !== 'pod-gateway')));
  // Without agents the cross-node kinds do not run by default, and the report says so.
  assert.deepEqual(new Set(report.skipped.map((k) => k.kind)), new Set([...CROSS_NODE_KINDS, ...(routed ? ['pod-gateway'] : [])]));
  for (const k of report.skipped) assert.match(k.reason, k.kind === 'pod-gateway' ? /link-local next hop/ : /no agent \(lab up --store none\)/);
  for (const p of report.probes) {
    assert.deepEqual(Object.keys(p), ['from', 'to', 'kind', 'ok', 'rtt_ms']);
    assert.equal(typeof p.rtt_ms, 'number');
  }

  const pod = status.nodes[0]?.pods[1];
  assert.ok(pod);
  const addr = await weft('lab', 'exec', '--name', name, 'n1-p2', '--', 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0');
  assert.equal(addr.code, 0, addr.stderr);
  assert.match(addr.stdout, new RegExp(`inet ${pod.addresses[0]?.replace(/\./g, '\\.')} `));

  const down = await weft('lab', 'down', '--name', name);
  assert.equal(down.code, 0, down.stderr);
  await assertGone(name);
}

test('bridge: up 2x3, check passes, exec runs in the right namespace, down removes everything', { skip: notRoot }, async () => {
  const name = uniqueName();
  downAfter(name);
  const rootBefore = await rootNetworkSnapshot();
  await fullCycle(name, ['--cni', 'bridge']);
  assert.equal(await rootNetworkSnapshot(), rootBefore, 'the root namespace is unchanged');
});

test('exec: every kind of member, exit codes, and the underlay routes', { skip: notRoot }, async () => {
  const name = uniqueName();
  downAfter(name);
  await upAndStatus(name, '--nodes', '2', '--pods-per-node', '1', '--cni', 'bridge');
  const exec = (member: string, ...cmd: string[]): Promise<RunResult> => weft('lab', 'exec', '--name', name, member, '--', ...cmd);

  assert.equal((await exec('n1', 'sh', '-c', 'exit 7')).code, 7);
  assert.equal((await exec('router', 'sysctl', '-n', 'net.ipv4.ip_forward')).stdout.trim(), '1');
  assert.match((await exec('az-a', 'ip', '-o', 'link', 'show', 'master', 'br0')).stdout, /\brouter@/);
  assert.match((await exec('outside', 'ip', '-o', '-4', 'addr', 'show', 'dev', 'eth0')).stdout, /inet 203\.0\.113\.2\//);
  // Across zones through the router, and out to the outside host: the underlay a later overlay will use.
  assert.equal((await exec('n1', 'ping', '-c', '1', '-W', '2', '172.31.2.12')).code, 0);
  assert.equal((await exec('n2', 'ping', '-c', '1', '-W', '2', '203.0.113.2')).code, 0);
  assert.match((await exec('n1', 'ip', 'route', 'show', 'default')).stdout, /via 172\.31\.1\.1 dev eth0/);

  // A pod whose link is down fails exactly the probes that involve it, and check exits non-zero.
  assert.equal((await exec('n1-p1', 'ip', 'link', 'set', 'eth0', 'down')).code, 0);
  const { code, report } = await checkJson(name);
  assert.equal(code, 1);
  assert.equal(report.failed, 3); // n1-p1 → n1:cni0, n1-p1 → n1, n1 → n1-p1
  assert.ok(report.probes.filter((p) => !p.ok).every((p) => p.from === 'n1-p1' || p.to === 'n1-p1'));
  const human = await weft('lab', 'check', '--name', name);
  assert.equal(human.code, 1);
  assert.match(human.stdout, /✗ n1 → n1-p1 \(node-pod\)/);
  assert.match(human.stdout, /6 probes: 3 passed, 3 failed/);
});

test('down stops processes running inside the lab’s namespaces', { skip: notRoot }, async () => {
  const name = uniqueName();
  downAfter(name);
  await upAndStatus(name, '--nodes', '1', '--pods-per-node', '1', '--cni', 'bridge');
  const sleeper = spawn(WEFT, ['lab', 'exec', '--name', name, 'n1-p1', '--', 'sleep', '600'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => sleeper.on('close', (code) => resolve(code)));
  let inside: number[] = [];
  killAfter(() => inside);
  while (inside.length === 0) {
    assert.equal(sleeper.exitCode, null, '`lab exec … sleep` ended before its sleep started');
    inside = await netnsPids(`weft-${name}-n1-p1`);
  }

  const down = await weft('lab', 'down', '--name', name, '--json');
  assert.equal(down.code, 0, down.stderr);
  assert.equal((JSON.parse(down.stdout) as { stoppedPids: number[] }).stoppedPids.length, 1);
  assert.equal(await exited, 128 + 15, 'the sleep was terminated, and exec reported it');
  await assertGone(name);
});

test('two labs with different names coexist, and removing one leaves the other working', { skip: notRoot }, async () => {
  const a = uniqueName();
  const b = uniqueName();
  downAfter(a);
  downAfter(b);
  const [sa, sb] = await Promise.all([
    upAndStatus(a, '--nodes', '1', '--pods-per-node', '2', '--cni', 'bridge'),
    upAndStatus(b, '--nodes', '2', '--pods-per-node', '1', '--cni', 'bridge'),
  ]);
  assert.equal(sa.nodes.length, 1);
  assert.equal(sb.nodes.length, 2);
  assert.ok(sb.nodes.every((n) => n.ns.startsWith(`weft-${b}-`) && n.dir.startsWith(`/run/weft/lab/${b}/`)));

  const again = await weft('lab', 'up', '--name', a, '--cni', 'bridge');
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /already exists.*lab down --name/);
  assertNoStackTrace(again);

  assert.equal((await checkJson(a)).report.failed, 0);
  assert.equal((await weft('lab', 'down', '--name', a)).code, 0);
  await assertGone(a);
  assert.equal((await labNamespaces(b)).length, 2 + 1 + 1 + 2 + 2);
  const checkB = await checkJson(b);
  assert.equal(checkB.code, 0);
  assert.equal(checkB.report.passed, 6);
});

test('kill -9 of `lab up` midway, then down removes everything', { skip: notRoot }, async () => {
  const name = uniqueName();
  downAfter(name);
  const up = spawn(WEFT, ['lab', 'up', '--name', name, '--nodes', '3', '--pods-per-node', '4', '--cni', 'bridge'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ended = new Promise<NodeJS.Signals | null>((resolve) => up.on('close', (_code, signal) => resolve(signal)));
  let pods = 0;
  up.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    pods += (chunk.match(/^pod /gm) ?? []).length;
    if (pods >= 2) up.kill('SIGKILL');
  });
  assert.equal(await ended, 'SIGKILL', 'up was killed before it finished');
  assert.ok((await labNamespaces(name)).length > 0, 'the killed up left namespaces behind');

  const status = await weft('lab', 'status', '--name', name, '--json');
  assert.equal(status.code, 0, status.stderr);
  assert.equal((JSON.parse(status.stdout) as LabStatus).interrupted, true);
  const check = await weft('lab', 'check', '--name', name);
  assert.notEqual(check.code, 0);
  assert.match(check.stderr, /not ready/);

  const down = await weft('lab', 'down', '--name', name);
  assert.equal(down.code, 0, down.stderr);
  await assertGone(name);
});

test('down works from namespace names alone: no state file, daemons still running', { skip: notRoot }, async () => {
  const name = uniqueName();
  after(() => labDown(name).then(() => {}));
  // A stand-in for `weft cni-server`: it only has to create its ready file and stay up.
  await labUp({
    name,
    nodes: 2,
    podsPerNode: 1,
    cni: 'bridge',
    daemons: true,
    daemonCommand: (_node, files) => ['sh', '-c', 'touch "$1" && exec sleep 600', 'fake-cni-server', files.cniServerReady],
  });
  const status = await labStatus(name);
  const pids = status.nodes.map((n) => n.daemon?.pid ?? 0);
  killAfter(() => pids);
  assert.ok(status.nodes.every((n) => n.daemon?.alive === true));
  assert.deepEqual(await netnsPids(`weft-${name}-n2`), [pids[1]], 'the daemon runs inside its node');

  await rm(`/run/weft/lab/${name}/state.json`); // as if up had crashed before its first save
  const report = await labDown(name);
  assert.deepEqual(report.stoppedPids.sort(), [...pids].sort());
  for (const pid of pids) assert.equal(await isAlive(pid), false);
  assert.equal(report.removedNamespaces.length, 2 + 1 + 1 + 2 + 2);
  await assertGone(name);
});

test('bad input: clear errors, non-zero exit, no stack traces', { skip: notRoot }, async () => {
  const name = uniqueName();
  downAfter(name);
  const zero = await weft('lab', 'up', '--name', name, '--nodes', '0', '--cni', 'bridge');
  assert.notEqual(zero.code, 0);
  assert.match(zero.stderr, /--nodes must be a whole number from 1 to/);
  assertNoStackTrace(zero);
  assert.deepEqual(await labNamespaces(name), [], 'nothing was created');

  const badName = await weft('lab', 'up', '--name', 'No-Good', '--cni', 'bridge');
  assert.notEqual(badName.code, 0);
  assert.match(badName.stderr, /invalid lab name/);

  const missing = await weft('lab', 'check', '--name', name);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, new RegExp(`no lab named ${name}.*lab up --name ${name}`));
  assertNoStackTrace(missing);

  await upAndStatus(name, '--nodes', '1', '--pods-per-node', '1', '--cni', 'bridge');
  const unknown = await weft('lab', 'exec', '--name', name, 'n1-p9', '--', 'true');
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /has no member "n1-p9"; it has: az-a, az-b, router, n1, n1-p1, outside/);
  assertNoStackTrace(unknown);
});

test('weft plugin with a cni-server per node: up 2x3, check passes, down removes everything', { skip: notRoot || (!weftPlugin && 'build/weft-cni is not built') }, async () => {
  const name = uniqueName();
  downAfter(name);
  await fullCycle(name, ['--cni', 'weft']);
});

test('weft plugin standalone (--no-daemon): up 2x3, check passes, down removes everything', { skip: notRoot || (!weftPlugin && 'build/weft-cni is not built') }, async () => {
  const name = uniqueName();
  downAfter(name);
  await fullCycle(name, ['--cni', 'weft', '--no-daemon']);
});

test('lab up as non-root: one line saying to run it as root, non-zero exit, nothing created', { skip: notRoot }, async () => {
  const name = uniqueName();
  downAfter(name);
  const r = await run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', WEFT, 'lab', 'up', '--name', name, '--cni', 'bridge'], { timeoutMs: 60_000 });
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr, 'weft: weft lab up must run as root (it creates network namespaces, veth pairs and bridges); run it again with sudo\n');
  assert.deepEqual(await labNamespaces(name), []);
});

const noEtcd = await access(ETCD_BIN).then(() => false, () => `${ETCD_BIN} is not installed`);

test('etcd, one node: `weft status` inside the node finds its agent; check says what it could not run; a second agent on the node is refused naming the first', { skip: notRoot || noEtcd || (!weftPlugin && 'build/weft-cni is not built') }, async () => {
  const name = uniqueName();
  downAfter(name);
  const launcher = weftLauncher(); // what bin/weft will run the agents from: the bundle when built and fresh
  const up = await weft('lab', 'up', '--name', name, '--store', 'etcd', '--nodes', '1', '--pods-per-node', '2');
  assert.equal(up.code, 0, up.stderr);
  if (launcher.warning !== undefined) assert.match(up.stderr, /weft\.mjs .* the lab's agents run from the TypeScript sources/);
  else assert.doesNotMatch(up.stderr, /weft\.mjs/);
  const state = await readState(`/run/weft/lab/${name}`);
  const agentPid = state?.daemonPids.n1?.pid ?? 0;
  const cmdline = (await readFile(`/proc/${agentPid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  assert.equal(cmdline[cmdline.indexOf('agent') - 1], launcher.agentScript, `the agent runs ${launcher.agentScript}: ${cmdline.join(' ')}`);
  assert.ok(cmdline.includes('--lock-file'), 'each lab node has its own lock');

  // Plain `weft status` in the node: lab exec points it at the node's agent.
  const st = await weft('lab', 'exec', '--name', name, 'n1', '--', WEFT, 'status', '--json');
  assert.equal(st.code, 0, st.stderr);
  assert.equal((JSON.parse(st.stdout) as { node: string }).node, 'n1');

  // A 1-node lab cannot probe between nodes: the report says which kinds and why.
  const { code, report } = await checkJson(name);
  assert.equal(code, 0, JSON.stringify(report.probes.filter((p) => !p.ok)));
  // Routed pods (the second e2e pass): their link-local gateway is skipped too, saying why.
  const routed = state?.dataPath?.podLink === 'routed';
  const crossNode = ['pod-pod-same-zone', 'pod-pod-other-zone', 'pod-remote-node', 'node-remote-pod'];
  assert.deepEqual(report.skipped.map((k) => k.kind), routed ? ['pod-gateway', ...crossNode] : crossNode);
  for (const k of report.skipped) assert.match(k.reason, k.kind === 'pod-gateway' ? /link-local next hop/ : /the lab has one node/);
  const human = await weft('lab', 'check', '--name', name);
  assert.match(human.stdout, /^not run: pod-remote-node: the lab has one node/m);

  // The same agent command line again, in the same node: same lock file, same status socket.
  const second = await weft('lab', 'exec', '--name', name, 'n1', '--', ...cmdline);
  assert.notEqual(second.code, 0, 'the second agent exits non-zero');
  assert.equal(second.stderr.trim().split('\n').length, 1, `one line: ${second.stderr}`);
  assert.match(second.stderr, new RegExp(`another weft agent \\(PID ${agentPid}\\) already runs on this node.*stop it first`));
  assertNoStackTrace(second);
  const still = await weft('lab', 'exec', '--name', name, 'n1', '--', WEFT, 'status', '--json');
  assert.equal(still.code, 0, `the first agent still answers on its socket: ${still.stderr}`);
  assert.equal((JSON.parse(still.stdout) as { ready: boolean }).ready, true);
});

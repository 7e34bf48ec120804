// src/fastpath/kernel.ts and the BPF programs against the real kernel: load, pin and reuse,
// tc attach/query/detach, every map, unpinning, a load failure's reason; then real traffic
// between two hand-built "nodes" (network namespaces joined by a veth underlay, host-gw routes,
// routed pod veths) to show what the programs do and what they leave to the stack.
//
// Every kernel call runs in a child process entered into the node's namespace (the programs
// attach in the caller's namespace, as the agent's do); the maps live on a bpffs that
// openFastPathKernel mounts in a scratch directory, never under /sys/fs/bpf. Needs root.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fastPathObjectPath, removeFastPathPins, type FastPathStat } from '../../src/fastpath/kernel.ts';
import { isWeftError } from '../../src/errors.ts';
import { Cleanup, describeRun, inNetns, mustRun, prerequisiteProblem, rand, REPO, run, scratchDir } from './support/sandbox.ts';

const NODE = process.execPath;
const KERNEL_TS = join(REPO, 'src/fastpath/kernel.ts');
const BPF_FS_MAGIC = 0xcafe4a11;

const skip = process.getuid?.() !== 0
  ? 'needs root (creates network namespaces, mounts bpffs)'
  : prerequisiteProblem(['ip', 'nsenter', 'tc', 'iptables', 'umount', 'clang', 'cc'], [join(REPO, 'build', 'weft_bpf.node')])
    || (existsSync(fastPathObjectPath()) ? false : `needs ${fastPathObjectPath()} (run \`npm run build:native\`)`);

type Op = [string, ...unknown[]];
interface OpResult { value?: unknown; error?: { code?: string; message: string } }
interface DriverOutput { openMs?: number; openError?: { code?: string; message: string }; results: OpResult[] }

// The child: opens the kernel in its namespace, runs the ops in order (one failing op does not
// stop the others), prints what each returned or threw.
const DRIVER = `
const { openFastPathKernel } = await import(process.env.WEFT_TEST_KERNEL_TS);
const { pinDir, objectPath, ops } = JSON.parse(process.argv[1]);
const started = performance.now();
let k;
try { k = openFastPathKernel({ pinDir, objectPath }); }
catch (e) { console.log(JSON.stringify({ openError: { code: e.code, message: e.message }, results: [] })); process.exit(0); }
const openMs = performance.now() - started;
const results = ops.map(([op, ...args]) => {
  try { const t = performance.now(); const value = k[op](...args); return { value: value ?? null, ms: performance.now() - t }; }
  catch (e) { return { error: { code: e.code, message: e.message } }; }
});
k.close();
console.log(JSON.stringify({ openMs, results }));
`;

async function kernel(ns: string, pinDir: string, ops: Op[], objectPath?: string): Promise<DriverOutput> {
  const argv = inNetns(ns, [NODE, '--input-type=module', '-e', DRIVER, JSON.stringify({ pinDir, objectPath, ops })]);
  const out = await mustRun(argv, { env: { ...process.env, WEFT_TEST_KERNEL_TS: KERNEL_TS } });
  return JSON.parse(out.trim().split('\n').pop() ?? '') as DriverOutput;
}

/** The ops' values; any op's error or an open error fails the test with its message. */
async function values(ns: string, pinDir: string, ops: Op[]): Promise<unknown[]> {
  const out = await kernel(ns, pinDir, ops);
  if (out.openError) assert.fail(`openFastPathKernel: ${out.openError.message}`);
  return out.results.map((r, i) => {
    if (r.error) assert.fail(`${JSON.stringify(ops[i])}: ${r.error.message}`);
    return r.value;
  });
}

async function stats(ns: string, pinDir: string): Promise<Record<FastPathStat, number>> {
  return (await values(ns, pinDir, [['stats']]))[0] as Record<FastPathStat, number>;
}

const ip = (ns: string, ...args: string[]): Promise<string> => mustRun(['ip', '-n', ns, ...args]);

async function ifindex(ns: string, name: string): Promise<number> {
  const [link] = JSON.parse(await ip(ns, '-j', 'link', 'show', name)) as { ifindex: number }[];
  assert.ok(link, `${name} in ${ns}`);
  return link.ifindex;
}

async function addNetns(cleanup: Cleanup, prefix: string): Promise<string> {
  const name = `${prefix}-${rand()}`;
  await mustRun(['ip', 'netns', 'add', name]);
  cleanup.push(`delete netns ${name}`, () => mustRun(['ip', 'netns', 'delete', name]));
  await ip(name, 'link', 'set', 'lo', 'up');
  return name;
}

/** A scratch directory that openFastPathKernel turns into a bpffs mount; unmounted afterwards. */
function bpffsBase(cleanup: Cleanup): string {
  const base = scratchDir(cleanup, 'weft-fpk');
  cleanup.push(`unmount ${base}`, async () => {
    if (statfsSync(base).type === BPF_FS_MAGIC) await mustRun(['umount', base]);
  });
  return base;
}

describe('the fast path kernel API', { skip }, () => {
  const cleanup = new Cleanup();
  let ns = '';
  let base = '';
  let pinDir = '';
  let v0 = 0;
  let v1 = 0;
  before(async () => {
    base = bpffsBase(cleanup);
    pinDir = join(base, 'weft');
    ns = await addNetns(cleanup, 'weft-fpk');
    await ip(ns, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1');
    await ip(ns, 'link', 'set', 'v0', 'up');
    await ip(ns, 'link', 'set', 'v1', 'up');
    v0 = await ifindex(ns, 'v0');
    v1 = await ifindex(ns, 'v1');
  });
  after(() => cleanup.run());

  test('loads, mounts bpffs, pins the maps by name, and a second load reuses them', async () => {
    assert.notEqual(statfsSync(base).type, BPF_FS_MAGIC, 'the scratch directory starts as a plain directory');
    const pod = { ifindex: v1, ipv4: '10.244.1.2', podMac: '02:00:00:00:01:02', hostMac: '02:00:00:00:01:01' };
    const first = await kernel(ns, pinDir, [['setNetwork', '10.244.0.0/16'], ['setPod', pod], ['setUplink', v0], ['setPeer', '10.244.2.0/24']]);
    assert.equal(first.openError, undefined, first.openError?.message);
    assert.deepEqual(first.results.map((r) => r.error), [undefined, undefined, undefined, undefined]);
    assert.equal(statfsSync(base).type, BPF_FS_MAGIC, 'bpffs mounted at the pin directory\'s parent');
    assert.deepEqual(readdirSync(pinDir).sort(), ['weft_config', 'weft_peers', 'weft_pods', 'weft_stats', 'weft_uplinks']);
    const [pods, uplinks, peers] = await values(ns, pinDir, [['listPods'], ['listUplinks'], ['listPeers']]);
    assert.deepEqual(pods, [pod]);
    assert.deepEqual(uplinks, [v0]);
    assert.deepEqual(peers, ['10.244.2.0/24']);
    console.log(`# load with pinned maps: ${first.openMs?.toFixed(1)} ms`);
  });

  test('attaches to tc ingress at weft\'s slot, tells this load\'s programs from older ones, detaches quietly', async () => {
    const out = await values(ns, pinDir, [
      ['attachUplink', v0], ['attachPod', v1], ['attached', v0], ['attached', v1], ['attached', 1],
      ['attachPod', v1], ['attached', v1],
    ]);
    assert.deepEqual(out.slice(2), ['uplink', 'pod', null, null, 'pod']);
    // iproute2's view of the same filter: weft's handle and priority, the program's name.
    const filters = await mustRun(inNetns(ns, ['tc', 'filter', 'show', 'dev', 'v0', 'ingress']));
    // (The kernel keeps 15 characters of a program's name.)
    assert.match(filters, /pref 21 bpf .*handle 0x7765 weft_from_uplin/);
    // A new load (an agent restart) sees the old load's programs as stale.
    const [later, absent] = await values(ns, pinDir, [['attached', v0], ['detach', v0], ['attached', v0], ['detach', v0], ['detach', 0x7ffffff0]]);
    assert.equal(later, 'stale');
    assert.equal(absent, null);
    assert.doesNotMatch(await mustRun(inNetns(ns, ['tc', 'filter', 'show', 'dev', 'v0', 'ingress'])), /weft/);
    assert.match(await mustRun(inNetns(ns, ['tc', 'filter', 'show', 'dev', 'v1', 'ingress'])), /weft_from_pod/, 'the other filter stays');
  });

  test('detach is quiet for an interface that is gone, attach names the interface it cannot use', async () => {
    await ip(ns, 'link', 'add', 'gone0', 'type', 'veth', 'peer', 'name', 'gone1');
    const gone = await ifindex(ns, 'gone0');
    assert.deepEqual(await values(ns, pinDir, [['attachPod', gone], ['attached', gone]]), [null, 'pod']);
    await ip(ns, 'link', 'delete', 'gone0');
    const out = await kernel(ns, pinDir, [['detach', gone], ['attached', gone], ['attachUplink', gone]]);
    assert.equal(out.results[0]?.error, undefined);
    assert.equal(out.results[1]?.value, null);
    assert.equal(out.results[2]?.error?.code, 'WEFT_FASTPATH');
    assert.match(out.results[2]?.error?.message ?? '', new RegExp(`attaching the fast path \\(uplink\\) to interface ${gone}: .*`));
  });

  test('every map: set, overwrite, list, delete; bad entries refused', async () => {
    const a = { ifindex: 1001, ipv4: '10.244.1.5', podMac: '02:00:00:00:05:02', hostMac: '02:00:00:00:05:01' };
    const b = { ifindex: 1002, ipv4: '10.244.1.6', podMac: '02:00:00:00:06:02', hostMac: '02:00:00:00:06:01' };
    const out = await kernel(ns, pinDir, [
      ['setPod', a], ['setPod', b], ['setPod', { ...a, ipv4: '10.244.1.7' }], ['deletePod', b.ifindex], ['deletePod', b.ifindex], ['deletePod', v1], ['listPods'],
      ['setUplink', 7], ['setUplink', 8], ['deleteUplink', 8], ['deleteUplink', v0], ['deleteUplink', 8], ['listUplinks'],
      ['setPeer', '10.244.3.0/24'], ['setPeer', '10.250.0.0/16'], ['setPeer', '10.244.9.9/32'], ['deletePeer', '10.244.2.0/24'], ['deletePeer', '10.244.3.0/24'], ['deletePeer', '10.244.3.0/24'], ['listPeers'],
      ['setNetwork', '10.244.0.0/16'], ['stats'],
      ['setPeer', 'fd00::/64'], ['setPeer', '10.244.3.1/24'], ['setPod', { ...a, podMac: 'nope' }], ['setUplink', 0], ['setNetwork', '0.0.0.0/0'],
    ]);
    assert.equal(out.openError, undefined);
    const r = out.results;
    assert.deepEqual(r.slice(0, 22).map((x) => x.error), new Array(22).fill(undefined));
    assert.deepEqual(r[6]?.value, [{ ...a, ipv4: '10.244.1.7' }]);
    assert.deepEqual(r[12]?.value, [7]);
    assert.deepEqual((r[19]?.value as string[]).sort(), ['10.244.9.9/32', '10.250.0.0/16']);
    const s = r[21]?.value as Record<string, number>;
    assert.deepEqual(Object.keys(s).sort(), ['pass_nat', 'pass_not_pod', 'pass_other', 'rx_redirect', 'tx_local', 'tx_remote', 'tx_remote_neigh']);
    assert.ok(Object.values(s).every((n) => Number.isInteger(n) && n >= 0));
    for (const bad of r.slice(22)) assert.equal(bad.error?.code, 'WEFT_FASTPATH', JSON.stringify(bad));
    assert.match(r[22]?.error?.message ?? '', /IPv4 only/);
    // Clean the maps for the next tests.
    await values(ns, pinDir, [['deletePod', a.ifindex], ['deleteUplink', 7], ['deletePeer', '10.250.0.0/16'], ['deletePeer', '10.244.9.9/32']]);
    assert.deepEqual(await values(ns, pinDir, [['listPods'], ['listUplinks'], ['listPeers']]), [[], [], []]);
  });

  test('a program the verifier refuses: WEFT_FASTPATH with the verifier\'s reason and what happens next', async () => {
    const dir = scratchDir(cleanup, 'weft-fpk-bad');
    const source = join(dir, 'bad.bpf.c');
    // Reads packet memory without a bounds check.
    writeFileSync(source, [
      '#include <linux/bpf.h>',
      '#define SEC(n) __attribute__((section(n), used))',
      'SEC("tc") int weft_bad(struct __sk_buff *skb) { return *(int *)(long)skb->data; }',
      'char LICENSE[] SEC("license") = "GPL";',
    ].join('\n'));
    const multiarch = (await mustRun(['cc', '-print-multiarch'])).trim();
    await mustRun(['clang', '-O2', '-g', '-target', 'bpf', '-I', `/usr/include/${multiarch}`, '-c', source, '-o', join(dir, 'bad.o')]);
    const out = await kernel(ns, join(base, 'bad'), [], join(dir, 'bad.o'));
    assert.equal(out.openError?.code, 'WEFT_FASTPATH');
    assert.match(out.openError?.message ?? '', /cannot load the fast path's BPF programs from .*bad\.o/);
    assert.match(out.openError?.message ?? '', /normal path/);
    assert.match(out.openError?.message ?? '', /invalid access to packet|R\d+ invalid mem access/, 'the verifier\'s own words');
    const missing = await kernel(ns, join(base, 'bad'), [], join(dir, 'nothing.o'));
    assert.match(missing.openError?.message ?? '', /BPF object is missing at .*nothing\.o: run `npm run build:native`/);
    removeFastPathPins(join(base, 'bad'));
  });

  test('removeFastPathPins unpins every map and removes the directory; quiet when absent; refuses a non-bpffs directory', async () => {
    assert.ok(existsSync(pinDir));
    removeFastPathPins(pinDir);
    assert.equal(existsSync(pinDir), false);
    assert.deepEqual(readdirSync(base).filter((f) => !f.endsWith('.debug')), [], 'only bpffs\'s own files are left');
    removeFastPathPins(pinDir);
    const plain = scratchDir(cleanup, 'weft-fpk-plain');
    mkdirSync(join(plain, 'weft'));
    writeFileSync(join(plain, 'weft', 'keep'), 'x');
    assert.throws(() => removeFastPathPins(join(plain, 'weft')), (e) => isWeftError(e, 'WEFT_FASTPATH') && /not on a BPF file system/.test(e.message));
    assert.ok(existsSync(join(plain, 'weft', 'keep')));
  });
});

// ---- real traffic ----

interface Pod { ns: string; ip: string; hostIf: string; hostMac: string; podMac: string; ifindex: number }
interface Node { ns: string; pinDir: string; underlayIp: string; subnet: string; uplink: number; pods: Pod[] }

const SERVICE_IP = '10.96.0.10';
const ECHO_PORT = 7777;

async function addPod(cleanup: Cleanup, node: Node, ipAddr: string, n: number): Promise<Pod> {
  const ns = await addNetns(cleanup, 'weft-fpk-pod');
  const hostIf = `hveth${n}`;
  const hostMac = `02:fa:00:00:0${n}:01`;
  const podMac = `02:fa:00:00:0${n}:02`;
  await ip(node.ns, 'link', 'add', hostIf, 'address', hostMac, 'type', 'veth', 'peer', 'name', 'eth0', 'address', podMac, 'netns', ns);
  await ip(node.ns, 'link', 'set', hostIf, 'up');
  await ip(ns, 'addr', 'add', `${ipAddr}/32`, 'dev', 'eth0');
  await ip(ns, 'link', 'set', 'eth0', 'up');
  await ip(ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
  await ip(ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0');
  await ip(ns, 'neigh', 'replace', '169.254.1.1', 'lladdr', hostMac, 'dev', 'eth0', 'nud', 'permanent');
  await ip(node.ns, 'route', 'add', `${ipAddr}/32`, 'dev', hostIf, 'scope', 'link');
  await ip(node.ns, 'neigh', 'replace', ipAddr, 'lladdr', podMac, 'dev', hostIf, 'nud', 'permanent');
  const pod = { ns, ip: ipAddr, hostIf, hostMac, podMac, ifindex: await ifindex(node.ns, hostIf) };
  node.pods.push(pod);
  return pod;
}

/** An echo server in the pod, stopped (by its PID) at cleanup. */
async function startEcho(cleanup: Cleanup, pod: Pod): Promise<void> {
  const script = `require('net').createServer((s) => s.pipe(s)).listen(${ECHO_PORT}, '0.0.0.0', () => console.log('ready'))`;
  const child = spawn('nsenter', [`--net=/run/netns/${pod.ns}`, NODE, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  cleanup.push(`stop the echo server in ${pod.ns}`, () => { child.kill('SIGKILL'); });
  let out = '';
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const deadline = Date.now() + 30_000;
  while (!out.includes('ready')) {
    if (child.exitCode !== null || Date.now() > deadline) assert.fail(`the echo server in ${pod.ns} did not start: ${out}`);
    await sleep(50);
  }
}

/** Sends 2 MB over TCP from the pod to addr:port and checks every byte comes back. */
async function echoFrom(pod: Pod, addr: string, port = ECHO_PORT): Promise<void> {
  const script = `
    const net = require('net');
    const sent = Buffer.alloc(2 * 1024 * 1024, 0).map((_, i) => (i * 7 + (i >> 11)) & 0xff);
    const got = [];
    let n = 0;
    const s = net.connect(${port}, '${addr}', () => s.end(sent));
    s.on('data', (c) => { got.push(c); n += c.length; });
    s.on('end', () => { process.exit(Buffer.concat(got).equals(sent) ? 0 : 3); });
    s.on('error', (e) => { console.error(e.message); process.exit(2); });
    setTimeout(() => { console.error('timed out after ' + n + ' bytes'); process.exit(4); }, 60000);
  `;
  const argv = inNetns(pod.ns, [NODE, '-e', script]);
  const r = await run(argv);
  assert.equal(r.code, 0, `TCP echo from ${pod.ip} to ${addr}:${port}: ${describeRun(argv, r)}`);
}

/** Packets the node's FORWARD chain saw between two addresses (a counting rule added once). */
async function forwarded(node: Node, from: string, to: string): Promise<number> {
  const rule = ['FORWARD', '-s', from, '-d', to, '-m', 'comment', '--comment', 'weft-fpk-count'];
  if ((await run(inNetns(node.ns, ['iptables', '-w', '-C', ...rule]))).code !== 0) {
    await mustRun(inNetns(node.ns, ['iptables', '-w', '-A', ...rule]));
  }
  const out = await mustRun(inNetns(node.ns, ['iptables', '-w', '-L', 'FORWARD', '-v', '-x', '-n']));
  const line = out.split('\n').find((l) => l.includes(from) && l.includes(to) && l.includes('weft-fpk-count'));
  assert.ok(line, out);
  return Number(line.trim().split(/\s+/)[0]);
}

function delta(before: Record<FastPathStat, number>, after: Record<FastPathStat, number>): Record<FastPathStat, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k as FastPathStat]])) as Record<FastPathStat, number>;
}

describe('the fast path on real traffic between two nodes', { skip }, () => {
  const cleanup = new Cleanup();
  const nodes: Node[] = [];
  let a: Node;
  let b: Node;
  let podA: Pod;
  let podA2: Pod;
  let podB: Pod;

  before(async () => {
    const base = bpffsBase(cleanup);
    for (const [i, subnet] of [[1, '10.244.1.0/24'], [2, '10.244.2.0/24']] as const) {
      const ns = await addNetns(cleanup, 'weft-fpk-node');
      await mustRun(inNetns(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']));
      nodes.push({ ns, pinDir: join(base, `node${i}`), underlayIp: `192.168.77.${i}`, subnet, uplink: 0, pods: [] });
    }
    [a, b] = nodes as [Node, Node];
    await ip(a.ns, 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul0', 'netns', b.ns);
    for (const [node, peer] of [[a, b], [b, a]] as const) {
      await ip(node.ns, 'addr', 'add', `${node.underlayIp}/24`, 'dev', 'ul0');
      await ip(node.ns, 'link', 'set', 'ul0', 'up');
      await ip(node.ns, 'route', 'add', peer.subnet, 'via', peer.underlayIp, 'dev', 'ul0');
      node.uplink = await ifindex(node.ns, 'ul0');
    }
    podA = await addPod(cleanup, a, '10.244.1.2', 1);
    podA2 = await addPod(cleanup, a, '10.244.1.3', 2);
    podB = await addPod(cleanup, b, '10.244.2.2', 3);
    await startEcho(cleanup, podB);
    await startEcho(cleanup, podA);
    // Programs attached and the Network set, but no pods, uplinks or peers yet.
    for (const node of nodes) {
      const ops: Op[] = [['setNetwork', '10.244.0.0/16'], ['attachUplink', node.uplink], ...node.pods.map((p): Op => ['attachPod', p.ifindex])];
      const out = await kernel(node.ns, node.pinDir, ops);
      assert.equal(out.openError, undefined, out.openError?.message);
      assert.deepEqual(out.results.map((r) => r.error), ops.map(() => undefined));
      const attachMs = out.results.slice(1).map((r) => (r as { ms?: number }).ms ?? 0);
      console.log(`# ${node.ns}: load ${out.openMs?.toFixed(1)} ms, attach ${attachMs.map((m) => m.toFixed(2)).join(' / ')} ms`);
    }
    cleanup.push('unpin the nodes\' maps', () => { for (const node of nodes) removeFastPathPins(node.pinDir); });
  });
  after(() => cleanup.run());

  test('with the maps empty, pod-to-pod TCP works through the stack and nothing is redirected', async () => {
    const [sa, sb] = [await stats(a.ns, a.pinDir), await stats(b.ns, b.pinDir)];
    const fwd = await forwarded(a, podA.ip, podB.ip);
    await echoFrom(podA, podB.ip);
    const [da, db] = [delta(sa, await stats(a.ns, a.pinDir)), delta(sb, await stats(b.ns, b.pinDir))];
    for (const d of [da, db]) {
      assert.deepEqual([d.rx_redirect, d.tx_local, d.tx_remote, d.tx_remote_neigh], [0, 0, 0, 0], JSON.stringify(d));
      assert.ok(d.pass_not_pod > 0, JSON.stringify(d));
    }
    assert.ok(await forwarded(a, podA.ip, podB.ip) > fwd, 'node A forwarded the packets itself');
  });

  test('with the maps filled, pod-to-pod TCP across nodes and on one node goes past the stack', async () => {
    for (const [node, peer] of [[a, b], [b, a]] as const) {
      await values(node.ns, node.pinDir, [
        ['setUplink', node.uplink], ['setPeer', peer.subnet],
        ...node.pods.map((p): Op => ['setPod', { ifindex: p.ifindex, ipv4: p.ip, podMac: p.podMac, hostMac: p.hostMac }]),
      ]);
    }
    // Node A forgets node B's MAC: its first packets go out through bpf_redirect_neigh, which resolves it.
    await ip(a.ns, 'neigh', 'flush', 'dev', 'ul0');
    const [sa, sb] = [await stats(a.ns, a.pinDir), await stats(b.ns, b.pinDir)];
    const [fa, fb] = [await forwarded(a, podA.ip, podB.ip), await forwarded(b, podB.ip, podA.ip)];
    await echoFrom(podA, podB.ip);
    const [da, db] = [delta(sa, await stats(a.ns, a.pinDir)), delta(sb, await stats(b.ns, b.pinDir))];
    // Out of each node's pod straight to the underlay, into each node's pod straight from it.
    assert.ok(da.tx_remote_neigh > 0 && da.tx_remote > 0 && da.rx_redirect > 0, `node A: ${JSON.stringify(da)}`);
    assert.ok(db.tx_remote + db.tx_remote_neigh > 0 && db.rx_redirect > 0, `node B: ${JSON.stringify(db)}`);
    assert.equal(da.pass_nat + db.pass_nat, 0);
    assert.equal(await forwarded(a, podA.ip, podB.ip), fa, 'node A\'s FORWARD chain saw none of it');
    assert.equal(await forwarded(b, podB.ip, podA.ip), fb, 'node B\'s FORWARD chain saw none of it');

    const before = await stats(a.ns, a.pinDir);
    await echoFrom(podA2, podA.ip);
    const local = delta(before, await stats(a.ns, a.pinDir));
    assert.ok(local.tx_local > 0, `pod to pod on node A: ${JSON.stringify(local)}`);
    console.log(`# packets, node A: ${JSON.stringify(da)}; node B: ${JSON.stringify(db)}; on node A: ${JSON.stringify(local)}`);
  });

  test('a Service-style DNAT to the remote pod works: its replies are left to conntrack', async () => {
    await mustRun(inNetns(a.ns, ['iptables', '-w', '-t', 'nat', '-A', 'PREROUTING', '-d', `${SERVICE_IP}/32`, '-p', 'tcp', '--dport', '80',
      '-j', 'DNAT', '--to-destination', `${podB.ip}:${ECHO_PORT}`]));
    const [sa, sb] = [await stats(a.ns, a.pinDir), await stats(b.ns, b.pinDir)];
    await echoFrom(podA, SERVICE_IP, 80);
    const [da, db] = [delta(sa, await stats(a.ns, a.pinDir)), delta(sb, await stats(b.ns, b.pinDir))];
    assert.ok(da.pass_nat > 0, `node A passed the NAT-ed replies to the stack: ${JSON.stringify(da)}`);
    assert.equal(da.rx_redirect, 0, `node A redirected none of the replies: ${JSON.stringify(da)}`);
    // Node B knows nothing of the NAT: the connection is plain pod-to-pod there.
    assert.ok(db.rx_redirect > 0 && db.tx_remote + db.tx_remote_neigh > 0, `node B: ${JSON.stringify(db)}`);
  });
});

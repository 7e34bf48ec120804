// `weft lab up --store mesh` end to end (root only): three nodes in two zones whose agents
// mesh over TCP 6783 with no etcd anywhere, every probe kind passing, the mesh view of
// `weft status`, and a down that leaves nothing (mesh dirs included). Driven through the CLI,
// as a person would.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import { listNetns, PROBE_KINDS, type CheckReport, type LabState, type LabStatus } from '../../src/lab/index.ts';
import { netnsPids } from '../../src/lab/netns.ts';
import { WEFT_BIN } from '../../src/lab/paths.ts';
import { cmdline, isAlive } from '../../src/lab/processes.ts';
import { run, type RunResult } from '../../src/lab/run.ts';
import { logTails, meshPrerequisiteProblem, uniqueLabName } from './support/mesh-lab.ts';

const skip = await meshPrerequisiteProblem();
const weft = (...args: string[]): Promise<RunResult> => run([WEFT_BIN, ...args], { timeoutMs: 180_000 });
const labNamespaces = async (name: string): Promise<string[]> => (await listNetns()).filter((ns) => ns.startsWith(`weft-${name}-`));

test('mesh lab: 3 nodes in two zones, no etcd anywhere, every probe passes, `weft status` shows the mesh ready with 3 peers, down removes everything', { skip, timeout: 240_000 }, async (t) => {
  const name = uniqueLabName('m');
  const dir = `/run/weft/lab/${name}`;
  t.after(async () => void (await weft('lab', 'down', '--name', name)));
  const up = await weft('lab', 'up', '--name', name, '--nodes', '3', '--store', 'mesh', '--json');
  assert.equal(up.code, 0, `${up.stderr}\n${await logTails(dir)}`);
  const status = JSON.parse(up.stdout) as LabStatus;
  assert.equal(status.phase, 'ready');
  assert.equal(status.store, 'mesh');
  assert.equal(status.etcd, null);
  assert.equal(status.clusterNetwork, '10.32.0.0/12');
  assert.deepEqual(status.nodes.map((n) => n.zone), ['a', 'b', 'a']);

  // No etcd: no member namespace, no etcd process in any of the lab's namespaces, none recorded.
  const namespaces = await labNamespaces(name);
  assert.ok(!namespaces.includes(`weft-${name}-etcd`), namespaces.join(' '));
  for (const ns of namespaces) {
    for (const pid of await netnsPids(ns)) {
      const cmd = (await cmdline(pid)) ?? '';
      assert.doesNotMatch(cmd.split(' ')[0] ?? '', /etcd$/, `pid ${pid} in ${ns}: ${cmd}`);
    }
  }
  const state = JSON.parse(await readFile(`${dir}/state.json`, 'utf8')) as LabState;
  assert.deepEqual(Object.keys(state.daemonPids).sort(), ['n1', 'n2', 'n3']);

  // Each agent: mesh mode, the other two nodes as peers, its own mesh dir; subnet.env names its first /26.
  const firstBlocks = new Set<string>();
  for (const n of status.nodes) {
    assert.equal(n.daemon?.kind, 'agent');
    assert.equal(n.daemon?.alive, true);
    const cmd = (await cmdline(n.daemon?.pid ?? 0)) ?? '';
    const others = status.nodes.filter((o) => o !== n).map((o) => o.address).join(',');
    assert.match(cmd, / agent --store mesh --peers /);
    assert.ok(cmd.includes(`--peers ${others} `), `${n.name}: ${cmd}`);
    assert.ok(cmd.includes(`--mesh-dir ${dir}/${n.name}/mesh `), cmd);
    await access(`${dir}/${n.name}/mesh`);
    const env = await readFile(`${dir}/${n.name}/subnet.env`, 'utf8');
    assert.match(env, /^FLANNEL_NETWORK=10\.32\.0\.0\/12$/m);
    const subnet = /^FLANNEL_SUBNET=(10\.(?:3[2-9]|4[0-7])\.\d+\.\d+)\/26$/m.exec(env)?.[1];
    assert.ok(subnet, `${n.name} subnet.env: ${env}`);
    firstBlocks.add(subnet);
    assert.match(env, /^FLANNEL_IPMASQ=true$/m);
    assert.equal(n.agent?.ready, true);
    assert.equal(n.agent?.mesh?.nickname, n.name);
    assert.match(n.agent?.mesh?.name ?? '', /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    // A routed pod (the second e2e pass) holds its address as a /32.
    const prefix = status.podLink === 'routed' ? '32' : '26';
    for (const p of n.pods) assert.match(p.addresses[0] ?? '', new RegExp(`^10\\.(3[2-9]|4[0-7])\\.\\d+\\.\\d+/${prefix}$`), `${p.name}`);
  }
  assert.equal(firstBlocks.size, 3, 'every node has a first block of its own');
  const rings = new Set(status.nodes.map((n) => n.agent?.mesh?.ringId));
  assert.equal(rings.size, 1, `one ring: ${[...rings].join(' ')}`);
  assert.ok([...rings][0], 'the ring has an id');
  const addresses = status.nodes.flatMap((n) => n.pods.flatMap((p) => p.addresses));
  assert.equal(new Set(addresses).size, 6, addresses.join(' '));

  // The same matrix as etcd mode: 3 nodes x 2 pods = 78 probes, pod→outside masqueraded by its node.
  const check = await weft('lab', 'check', '--name', name, '--json');
  const report = JSON.parse(check.stdout) as CheckReport;
  assert.equal(check.code, 0, JSON.stringify(report.probes.filter((p) => !p.ok)));
  const routed = status.podLink === 'routed'; // no pod-gateway probes: the gateway is a link-local next hop
  const expected = routed ? 72 : 78;
  assert.deepEqual({ probes: report.probes.length, passed: report.passed, failed: report.failed }, { probes: expected, passed: expected, failed: 0 });
  assert.deepEqual(new Set(report.probes.map((p) => p.kind)), new Set(PROBE_KINDS.filter((k) => !routed || k !== 'pod-gateway')));
  for (const p of report.probes.filter((q) => q.kind === 'pod-outside')) assert.equal(p.source_seen, p.expected_source, p.from);

  // `weft status` on a node: Weave's layout, IPAM ready, the three peers.
  const text = await weft('lab', 'exec', '--name', name, 'n1', '--', WEFT_BIN, 'status');
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^\s*Status: ready$/m, text.stdout);
  assert.match(text.stdout, /^\s*Peers: 3\b/m, text.stdout);
  assert.match(text.stdout, /^\s*Encryption: disabled\b/m, text.stdout);

  const labText = await weft('lab', 'status', '--name', name);
  assert.equal(labText.code, 0, labText.stderr);
  assert.match(labText.stdout, /store mesh \(range 10\.32\.0\.0\/12 in \/26 blocks, TCP 6783, VXLAN UDP 6784\)/);
  assert.match(labText.stdout, /^n2\s+\S+\s+172\.31\.2\.12\s+zone b, pods 10\.\d+\.\d+\.\d+\/26, mesh [0-9a-f:]{17}, ipam ready, ring \S+, 3 peers \(2 established\), agent pid \d+ alive$/m, labText.stdout);

  const pids = Object.values(state.daemonPids).map((d) => d.pid);
  const down = await weft('lab', 'down', '--name', name, '--json');
  assert.equal(down.code, 0, down.stderr);
  const removed = JSON.parse(down.stdout) as { deleted: string[]; stoppedPids: number[] };
  assert.equal(removed.deleted.length, 6, 'CNI DEL through the agents for every pod');
  for (const pid of pids) assert.ok(removed.stoppedPids.includes(pid), `down stopped ${pid}`);
  assert.deepEqual(await labNamespaces(name), []);
  await assert.rejects(access(dir), 'the lab directory, mesh dirs included, is gone');
  for (const pid of pids) assert.equal(await isAlive(pid), false);
});

test('mesh lab flags: clear errors, nothing created', { skip }, async (t) => {
  const name = uniqueLabName('m');
  t.after(async () => void (await weft('lab', 'down', '--name', name)));
  const cases: [string[], RegExp][] = [
    [['--password', 'x'], /configure mesh agents: add --store mesh/],
    [['--store', 'etcd', '--start', '1'], /configure mesh agents: add --store mesh/],
    [['--store', 'mesh', '--backend', 'host-gw'], /mesh agents have no etcd/],
    [['--store', 'mesh', '--cni', 'bridge'], /--store mesh needs --cni weft/],
    [['--store', 'mesh', '--nodes', '2', '--start', '3'], /--start must be a whole number from 0 to --nodes \(2\)/],
    [['--store', 'mesh', '--ipalloc-range', '10.32.0.1/12'], /--ipalloc-range must be an IPv4 network/],
    [['--store', 'mesh', '--ipalloc-range', '10.32.0.0/24', '--ipalloc-block', '20'], /--ipalloc-block must be a prefix length from the range's \/24 to \/30/],
    [['--store', 'mesh', '--ipalloc-init', 'sometimes'], /--ipalloc-init must be consensus/],
    [['--store', 'mesh', '--no-daemon'], /--no-daemon cannot go with --store mesh/],
  ];
  for (const [args, message] of cases) {
    const r = await weft('lab', 'up', '--name', name, ...args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.deepEqual(await labNamespaces(name), []);
  const partition = await weft('lab', 'partition', '--name', name, 'n1');
  assert.notEqual(partition.code, 0);
  assert.match(partition.stderr, /no lab named/);
});

// End-to-end: the routed pod link (WEFT_POD_LINK=routed, src/cni/routed-link.ts) on real kernel
// networking. The weft-cni front end is exec'd in a scratch node namespace as a runtime does it,
// with a CNI server there and without one (standalone, from the sources), against pod namespaces:
//   - ADD's result and what the kernel holds, CHECK, and a DEL that leaves nothing;
//   - routed pods reach each other and the node, and the node them (ping and TCP);
//   - ADDs that fail midway leave nothing behind;
//   - hairpin: a pod reaching itself through a ClusterIP-style DNAT with kube-proxy's masquerade;
//   - migration on a live node: bridge and routed pods reach each other after a switch either way.
// The node namespace gets an address of its own (on lo), as a real node has one on eth0: with no
// bridge the node's traffic to a pod (and a masqueraded hairpin) takes its source from it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { ROOT, isRoot, sh, TestNode, type CniCall } from './support/cni-node.ts';
import { RTPROT_WEFT_POD } from '../../src/cni/routed-link.ts';
import { RTPROT_WEFT } from '../../src/dataplane/plan.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';
const BRIDGE_ENV = 'FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=10.77.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';
const ROUTED_ENV = `${BRIDGE_ENV}WEFT_POD_LINK=routed\n`;
const NODE_IP = '192.168.77.1';
/** Standalone runs the plugin from the sources (bin/weft), not from a bundle that may predate them. */
const STANDALONE = { WEFT_CNI_FALLBACK: join(ROOT, 'bin', 'weft') };

interface Result {
  interfaces: { name: string; mac: string; sandbox?: string }[];
  ips: { address: string; gateway?: string; interface?: number }[];
  routes: { dst: string; gw?: string }[];
}

/** A node with a routed (or bridge) subnet.env and a node address; pods added through it. */
class Node {
  readonly t: TestNode;
  readonly #env: Record<string, string>;
  readonly #servers: ChildProcess[] = [];

  private constructor(t: TestNode, env: Record<string, string>) {
    this.t = t;
    this.#env = env;
  }

  static async create(server: boolean, subnetEnv = ROUTED_ENV): Promise<Node> {
    const t = await TestNode.create({ server, subnetEnv });
    try {
      sh('ip', ['-n', t.name, 'addr', 'add', `${NODE_IP}/32`, 'dev', 'lo']);
    } catch (e) {
      await t.destroy();
      throw e;
    }
    return new Node(t, server ? {} : STANDALONE);
  }

  podLink(link: 'bridge' | 'routed'): void {
    writeFileSync(this.t.subnetFile, link === 'routed' ? ROUTED_ENV : BRIDGE_ENV);
  }

  call(command: string, id: string, netns: string, extra: Record<string, unknown> = {}): Promise<CniCall> {
    return this.t.cni({ ...this.#env, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0' }, this.t.config(extra));
  }

  /** ADD that must succeed; returns the pod's netns, result and bare IPv4 address. */
  async addPod(id: string, extra: Record<string, unknown> = {}): Promise<{ netns: string; result: Result; ip: string }> {
    const netns = this.t.addPodNetns();
    const r = await this.call('ADD', id, netns, extra);
    assert.equal(r.code, 0, `ADD ${id}: ${r.stdout}${r.stderr}`);
    const result = r.json as unknown as Result;
    return { netns, result, ip: result.ips[0]!.address.split('/')[0] as string };
  }

  check(id: string, netns: string, prevResult: Result): Promise<CniCall> {
    return this.call('CHECK', id, netns, { prevResult });
  }

  json<T>(args: string[]): T {
    return JSON.parse(sh('ip', ['-j', '-n', this.t.name, ...args]) || '[]') as T;
  }

  /** The node's routes with weft's pod protocol (RTPROT_WEFT_POD, 88). */
  podRoutes(): { dst: string; dev: string; scope: string }[] {
    return this.json(['route', 'show', 'proto', String(RTPROT_WEFT_POD)]);
  }

  nodeNeighbours(): { dst: string; dev: string; lladdr?: string; state: string[] }[] {
    return this.json(['neigh', 'show']);
  }

  /** A TCP server in a namespace (undefined: the node's) answering "<name> sees <peer address>". */
  async serve(netns: string | undefined, name: string, port = 8080): Promise<void> {
    const script = `require('node:net').createServer((s) => s.end(${JSON.stringify(name)} + ' sees ' + s.remoteAddress))` +
      `.listen(${port}, '0.0.0.0', () => console.log('ready'))`;
    const child = spawn('ip', ['netns', 'exec', nsName(netns ?? this.t.netnsPath), process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.#servers.push(child);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`TCP server ${name} exited (${code}) before listening`)));
    });
  }

  async destroy(): Promise<void> {
    for (const s of this.#servers) {
      if (s.exitCode === null && s.pid !== undefined) {
        const exited = new Promise((resolve) => s.once('exit', resolve));
        process.kill(s.pid, 'SIGTERM');
        await exited;
      }
    }
    await this.t.destroy();
  }
}

const nsName = (netns: string): string => netns.replace('/run/netns/', '');

/** ping from a namespace; true when answered. */
function ping(node: Node, from: string | undefined, to: string): boolean {
  const ns = nsName(from ?? node.t.netnsPath);
  return spawnSync('ip', ['netns', 'exec', ns, 'ping', '-c', '1', '-W', '3', to], { encoding: 'utf8' }).status === 0;
}

/** A TCP request from a namespace; the server's answer, or undefined when there is none within 5 s. */
function tcp(node: Node, from: string | undefined, to: string, port = 8080): string | undefined {
  const script = `const s = require('node:net').connect(${port}, ${JSON.stringify(to)}); let d = '';` +
    `s.on('data', (c) => (d += c)); s.on('end', () => { console.log(d); process.exit(0); }); s.on('error', () => process.exit(1));` +
    'setTimeout(() => process.exit(2), 5000);';
  const r = spawnSync('ip', ['netns', 'exec', nsName(from ?? node.t.netnsPath), process.execPath, '-e', script], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Nothing of the pod is left on the node: no veth, host route, neighbour or IPAM record. */
function assertNothingLeft(node: Node, ips: string[]): void {
  assert.deepEqual(node.t.veths(), []);
  assert.deepEqual(node.podRoutes(), []);
  const neighbours = node.nodeNeighbours().filter((n) => ips.includes(n.dst) && n.state.includes('PERMANENT'));
  assert.deepEqual(neighbours, []);
  assert.deepEqual(node.t.ipamFiles(), []);
}

for (const mode of ['server', 'standalone'] as const) {
  describe(`routed pod link (${mode})`, { skip }, () => {
    let node: Node;
    before(async () => {
      node = await Node.create(mode === 'server');
    });
    after(async () => {
      await node?.destroy();
    });

    test('ADD: /32 address via the link-local gateway, proto-88 host route, permanent neighbours; CHECK; DEL leaves nothing', async () => {
      const { netns, result, ip } = await node.addPod('life-1');
      // The result: host veth and pod interface, no bridge; the gateway is the link-local one.
      assert.equal(result.interfaces.length, 2);
      const [hostIf, podIf] = result.interfaces as [Result['interfaces'][0], Result['interfaces'][0]];
      assert.match(hostIf.name, /^veth[0-9a-f]{8}$/);
      assert.equal(podIf.name, 'eth0');
      assert.equal(podIf.sandbox, netns);
      assert.match(result.ips[0]!.address, /^10\.77\.5\.\d+\/32$/);
      assert.deepEqual(result.ips.map((i) => [i.gateway, i.interface]), [['169.254.1.1', 1]]);
      assert.deepEqual(result.routes, [{ dst: '0.0.0.0/0', gw: '169.254.1.1' }, { dst: '10.77.0.0/16', gw: '169.254.1.1' }]);

      // The pod: the /32, the gateway on-link with a permanent neighbour that is the host end's MAC.
      const pod = nsName(netns);
      const eth0 = JSON.parse(sh('ip', ['-j', '-n', pod, 'addr', 'show', 'eth0']))[0];
      assert.deepEqual(eth0.addr_info.filter((a: { family: string }) => a.family === 'inet').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`), [`${ip}/32`]);
      assert.equal(eth0.mtu, 1450);
      const podRoutes = JSON.parse(sh('ip', ['-j', '-n', pod, 'route', 'show'])) as { dst: string; gateway?: string; scope?: string }[];
      assert.ok(podRoutes.some((r) => r.dst === '169.254.1.1' && r.scope === 'link'), JSON.stringify(podRoutes));
      assert.ok(podRoutes.some((r) => r.dst === 'default' && r.gateway === '169.254.1.1'), JSON.stringify(podRoutes));
      assert.ok(podRoutes.some((r) => r.dst === '10.77.0.0/16' && r.gateway === '169.254.1.1'), JSON.stringify(podRoutes));
      const gwNeigh = (JSON.parse(sh('ip', ['-j', '-n', pod, 'neigh', 'show', 'dev', 'eth0'])) as { dst: string; lladdr: string; state: string[] }[]).find((n) => n.dst === '169.254.1.1');
      assert.equal(gwNeigh?.lladdr, hostIf.mac);
      assert.deepEqual(gwNeigh?.state, ['PERMANENT']);

      // The node: no bridge, the host end on nothing, a proto-88 /32 and a permanent neighbour on it.
      assert.equal(spawnSync('ip', ['-n', node.t.name, 'link', 'show', 'cni0']).status, 1, 'no bridge on a routed node');
      const host = node.json<{ master?: string; operstate: string }[]>(['link', 'show', hostIf.name])[0]!;
      assert.equal(host.master, undefined);
      assert.deepEqual(node.podRoutes().map((r) => [r.dst, r.dev, r.scope]), [[ip, hostIf.name, 'link']]);
      assert.notEqual(RTPROT_WEFT_POD, RTPROT_WEFT, "the data plane would reconcile the pods' routes as its own");
      const neigh = node.nodeNeighbours().find((n) => n.dst === ip);
      assert.deepEqual([neigh?.dev, neigh?.lladdr, neigh?.state], [hostIf.name, podIf.mac, ['PERMANENT']]);
      assert.equal(node.t.inNode(['cat', `/proc/sys/net/ipv4/conf/${hostIf.name}/proxy_arp`]).stdout.trim(), '0');
      assert.equal(node.t.inNode(['cat', '/proc/sys/net/ipv4/ip_forward']).stdout.trim(), '1');

      const check = await node.check('life-1', netns, result);
      assert.equal(check.code, 0, check.stdout);
      // CHECK sees a missing host route, and a wrong neighbour.
      sh('ip', ['-n', node.t.name, 'route', 'del', `${ip}/32`]);
      const noRoute = await node.check('life-1', netns, result);
      assert.equal(noRoute.code, 1);
      assert.match(String(noRoute.json?.msg), new RegExp(`route to ${ip.replaceAll('.', '\\.')}/32 via ${hostIf.name} is missing`));
      sh('ip', ['-n', node.t.name, 'route', 'add', `${ip}/32`, 'dev', hostIf.name, 'scope', 'link', 'proto', String(RTPROT_WEFT_POD)]);
      assert.equal((await node.check('life-1', netns, result)).code, 0);
      sh('ip', ['-n', pod, 'neigh', 'replace', '169.254.1.1', 'lladdr', '02:00:00:00:00:01', 'dev', 'eth0', 'nud', 'permanent']);
      const badNeigh = await node.check('life-1', netns, result);
      assert.equal(badNeigh.code, 1);
      assert.match(String(badNeigh.json?.msg), /neighbour entry for gateway 169\.254\.1\.1/);

      const del = await node.call('DEL', 'life-1', netns);
      assert.equal(del.code, 0, del.stdout);
      assert.equal(sh('ip', ['-n', pod, 'link', 'show']).includes('eth0'), false);
      assertNothingLeft(node, [ip]);
      assert.equal((await node.call('DEL', 'life-1', netns)).code, 0, 'DEL is idempotent');
      const gone = await node.check('life-1', netns, result);
      assert.equal(gone.code, 1);
      assert.match(String(gone.json?.msg), /eth0 is missing/);
    });

    test('two routed pods reach each other, the node reaches them and they the node (ping and TCP)', async () => {
      const a = await node.addPod('reach-a');
      const b = await node.addPod('reach-b');
      await node.serve(a.netns, 'pod-a');
      await node.serve(b.netns, 'pod-b');
      await node.serve(undefined, 'node', 8081);
      assert.ok(ping(node, a.netns, b.ip), 'a pings b');
      assert.ok(ping(node, b.netns, a.ip), 'b pings a');
      assert.ok(ping(node, undefined, a.ip), 'the node pings a');
      assert.ok(ping(node, a.netns, NODE_IP), 'a pings the node');
      assert.equal(tcp(node, a.netns, b.ip), `pod-b sees ${a.ip}`);
      assert.equal(tcp(node, b.netns, a.ip), `pod-a sees ${b.ip}`);
      assert.equal(tcp(node, undefined, b.ip), `pod-b sees ${NODE_IP}`);
      assert.equal(tcp(node, b.netns, NODE_IP, 8081), `node sees ${b.ip}`);
      for (const [id, p] of [['reach-a', a], ['reach-b', b]] as const) assert.equal((await node.call('DEL', id, p.netns)).code, 0);
      assertNothingLeft(node, [a.ip, b.ip]);
      assert.equal(ping(node, undefined, a.ip), false, 'a is gone');
    });

    test('an ADD that fails midway leaves nothing behind', async () => {
      // (1) The node already routes the requested address elsewhere: the host route is the last step.
      sh('ip', ['-n', node.t.name, 'route', 'add', '10.77.5.50/32', 'dev', 'lo']);
      const taken = node.t.addPodNetns();
      const r1 = await node.call('ADD', 'fail-1', taken, { runtimeConfig: { ips: ['10.77.5.50'] } });
      assert.equal(r1.code, 1, r1.stdout);
      assert.match(String(r1.json?.msg), /already has a route to 10\.77\.5\.50\/32 \(dev lo/);
      assert.doesNotMatch(r1.stdout + r1.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(sh('ip', ['-n', nsName(taken), 'link', 'show']).includes('eth0'), false);
      assertNothingLeft(node, ['10.77.5.50']);
      assert.match(sh('ip', ['-n', node.t.name, 'route', 'show', '10.77.5.50/32']), /dev lo/, 'the route that was there stays');
      sh('ip', ['-n', node.t.name, 'route', 'del', '10.77.5.50/32']);

      // (2) The pod's interface cannot come up (a multicast MAC): after the veth, before the routes.
      const broken = node.t.addPodNetns();
      const r2 = await node.call('ADD', 'fail-2', broken, { runtimeConfig: { mac: '01:00:5e:00:00:01' } });
      assert.equal(r2.code, 1, r2.stdout);
      assert.equal(sh('ip', ['-n', nsName(broken), 'link', 'show']).includes('eth0'), false);
      assertNothingLeft(node, []);

      // (3) A requested address another pod holds: refused, and that pod keeps working.
      const first = await node.addPod('fail-3a', { runtimeConfig: { ips: ['10.77.5.60'] } });
      const r3 = await node.call('ADD', 'fail-3b', node.t.addPodNetns(), { runtimeConfig: { ips: ['10.77.5.60'] } });
      assert.equal(r3.code, 1, r3.stdout);
      assert.match(String(r3.json?.msg), /10\.77\.5\.60/);
      assert.equal(node.t.veths().length, 1);
      assert.equal(node.podRoutes().length, 1);
      assert.ok(ping(node, undefined, '10.77.5.60'), 'the holder is still reachable');
      assert.equal((await node.check('fail-3a', first.netns, first.result)).code, 0);
      assert.equal((await node.call('DEL', 'fail-3a', first.netns)).code, 0);
      assertNothingLeft(node, ['10.77.5.60']);
    });

    test('hairpin: a pod reaches itself through a ClusterIP DNAT with kube-proxy-style masquerade', async () => {
      const p = await node.addPod('hairpin-1');
      await node.serve(p.netns, 'pod');
      const iptables = (args: string[]): string => sh('ip', ['netns', 'exec', node.t.name, 'iptables', '-w', '-t', 'nat', ...args]);
      iptables(['-A', 'PREROUTING', '-d', '10.96.0.10/32', '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${p.ip}:8080`]);
      iptables(['-A', 'POSTROUTING', '-s', `${p.ip}/32`, '-j', 'MASQUERADE']);
      try {
        // Masqueraded to the node's address (the host end has none), as with a bridge.
        assert.equal(tcp(node, p.netns, '10.96.0.10', 80), `pod sees ${NODE_IP}`);
      } finally {
        iptables(['-F', 'PREROUTING']);
        iptables(['-F', 'POSTROUTING']);
      }
      assert.equal((await node.call('DEL', 'hairpin-1', p.netns)).code, 0);
      assertNothingLeft(node, [p.ip]);
    });
  });
}

describe('migration between bridge and routed pod links on a live node', { skip }, () => {
  let node: Node;
  before(async () => {
    node = await Node.create(true, BRIDGE_ENV);
  });
  after(async () => {
    await node?.destroy();
  });

  const proxyArp = (): string => node.t.inNode(['cat', '/proc/sys/net/ipv4/conf/cni0/proxy_arp']).stdout.trim();

  /** Every pair reaches the other by ping and TCP, both directions. */
  function assertMesh(pods: { name: string; netns: string; ip: string }[]): void {
    for (const from of pods) {
      for (const to of pods) {
        if (from === to) continue;
        assert.ok(ping(node, from.netns, to.ip), `${from.name} pings ${to.name}`);
        assert.equal(tcp(node, from.netns, to.ip), `${to.name} sees ${from.ip}`, `${from.name} → ${to.name} over TCP`);
      }
      assert.ok(ping(node, undefined, from.ip), `the node pings ${from.name}`);
    }
  }

  test('bridge → routed → bridge: old and new pods reach each other, CHECK passes for each, DEL leaves nothing', async () => {
    const a = await node.addPod('mig-bridge-a');
    assert.ok(a.result.interfaces.some((i) => i.name === 'cni0'), 'a is a bridge pod');
    assert.match(a.result.ips[0]!.address, /\/24$/);
    await node.serve(a.netns, 'bridge-a');
    assert.equal(proxyArp(), '0', 'no proxy ARP while only bridge pods exist');

    node.podLink('routed');
    const b = await node.addPod('mig-routed-b');
    assert.ok(!b.result.interfaces.some((i) => i.name === 'cni0'), 'b is routed');
    await node.serve(b.netns, 'routed-b');
    assert.equal(proxyArp(), '1', 'the bridge answers ARP for routed pods');
    assertMesh([{ name: 'bridge-a', ...a }, { name: 'routed-b', ...b }]);

    node.podLink('bridge');
    const c = await node.addPod('mig-bridge-c');
    assert.ok(c.result.interfaces.some((i) => i.name === 'cni0'), 'c is a bridge pod');
    await node.serve(c.netns, 'bridge-c');
    assertMesh([{ name: 'bridge-a', ...a }, { name: 'routed-b', ...b }, { name: 'bridge-c', ...c }]);
    for (const [id, p] of [['mig-bridge-a', a], ['mig-routed-b', b], ['mig-bridge-c', c]] as const) {
      const check = await node.check(id, p.netns, p.result);
      assert.equal(check.code, 0, `CHECK ${id}: ${check.stdout}`);
    }
    for (const [id, p] of [['mig-bridge-a', a], ['mig-routed-b', b], ['mig-bridge-c', c]] as const) assert.equal((await node.call('DEL', id, p.netns)).code, 0);
    assertNothingLeft(node, [a.ip, b.ip, c.ip]);
  });

  test('routed → bridge on a node without a bridge yet: the new bridge answers ARP for the routed pods', async () => {
    const fresh = await Node.create(true, ROUTED_ENV);
    try {
      const r = await fresh.addPod('fresh-routed');
      await fresh.serve(r.netns, 'routed');
      fresh.podLink('bridge');
      const s = await fresh.addPod('fresh-bridge');
      await fresh.serve(s.netns, 'bridge');
      assert.equal(fresh.t.inNode(['cat', '/proc/sys/net/ipv4/conf/cni0/proxy_arp']).stdout.trim(), '1');
      assert.ok(ping(fresh, s.netns, r.ip), 'bridge pod pings routed pod');
      assert.equal(tcp(fresh, s.netns, r.ip), `routed sees ${s.ip}`);
      assert.equal(tcp(fresh, r.netns, s.ip), `bridge sees ${r.ip}`);
      assert.equal((await fresh.call('DEL', 'fresh-routed', r.netns)).code, 0);
      assert.equal((await fresh.call('DEL', 'fresh-bridge', s.netns)).code, 0);
      assertNothingLeft(fresh, [r.ip, s.ip]);
    } finally {
      await fresh.destroy();
    }
  });
});

describe('the fast path\'s view: listRoutedPods and the onPodAttached / onPodsChanged hooks', { skip }, () => {
  let node: Node;
  before(async () => {
    node = await Node.create(false);
  });
  after(async () => {
    await node?.destroy();
  });

  /** BridgeOperations in a process inside the node's namespace (its netlink socket opens there). */
  const script = `
    import { BridgeOperations } from '${ROOT}src/cni/bridge-plugin.ts';
    import { parsePluginConfig } from '${ROOT}src/cni/config.ts';
    import { parseCniEnv } from '${ROOT}src/cni/env.ts';
    import { listRoutedPods } from '${ROOT}src/cni/routed-link.ts';
    import { Rtnetlink } from '${ROOT}src/netlink/index.ts';
    import { silentLogger as log } from '${ROOT}src/log/logger.ts';
    const config = parsePluginConfig(JSON.parse(process.env.HOOK_CONFIG));
    const env = (cmd, id, netns) => parseCniEnv({ CNI_COMMAND: cmd, CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' });
    const events = [];
    const ops = new BridgeOperations({ log, onPodAttached: async (pod) => void events.push({ attached: pod }), onPodsChanged: () => void events.push('changed') });
    const result = await ops.add(env('ADD', 'hook-1', process.env.HOOK_NETNS_1), config);
    using nl = Rtnetlink.open();
    const listed = listRoutedPods(nl);
    await ops.del(env('DEL', 'hook-1', process.env.HOOK_NETNS_1), config);
    const afterDel = listRoutedPods(nl);
    const throwing = new BridgeOperations({ log, onPodAttached: () => { throw new Error('boom'); }, onPodsChanged: () => { throw new Error('boom'); } });
    const second = await throwing.add(env('ADD', 'hook-2', process.env.HOOK_NETNS_2), config);
    const listedSecond = listRoutedPods(nl);
    await throwing.del(env('DEL', 'hook-2', process.env.HOOK_NETNS_2), config);
    ops.close();
    throwing.close();
    console.log(JSON.stringify({ result, events, listed, afterDel, second, listedSecond }));
  `;

  test('a routed ADD hands the hook what listRoutedPods finds in the kernel; DEL says so; a throwing hook fails nothing', () => {
    const r = spawnSync('nsenter', [`--net=${node.t.netnsPath}`, process.execPath, '--disable-warning=ExperimentalWarning', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, HOOK_CONFIG: JSON.stringify(node.t.config()), HOOK_NETNS_1: node.t.addPodNetns(), HOOK_NETNS_2: node.t.addPodNetns() },
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { result: Result; events: unknown[]; listed: unknown[]; afterDel: unknown[]; second: Result; listedSecond: { ipv4?: string }[] };
    const [host, pod] = out.result.interfaces as [Result['interfaces'][0], Result['interfaces'][0]];
    const expected = { hostIfindex: (out.listed[0] as { hostIfindex: number }).hostIfindex, hostIfname: host.name, hostMac: host.mac, podMac: pod.mac, ipv4: out.result.ips[0]!.address.split('/')[0] };
    assert.deepEqual(out.listed, [expected]);
    assert.ok(expected.hostIfindex > 0);
    assert.deepEqual(out.events, [{ attached: expected }, 'changed']);
    assert.deepEqual(out.afterDel, []);
    assert.equal(out.second.ips.length, 1, 'the ADD with a throwing hook succeeded');
    assert.deepEqual(out.listedSecond.map((p) => p.ipv4), [out.second.ips[0]!.address.split('/')[0]]);
    assertNothingLeft(node, []);
  });
});

describe('routed pod link, dual stack', { skip }, () => {
  let node: Node;
  before(async () => {
    node = await Node.create(true, `${ROUTED_ENV}FLANNEL_IPV6_NETWORK=fd77::/48\nFLANNEL_IPV6_SUBNET=fd77:0:0:5::1/64\n`);
  });
  after(async () => {
    await node?.destroy();
  });

  test('IPv6 via fe80::1: /128 addresses, host routes for both families, pods reach each other over both', async () => {
    const a = await node.addPod('dual-a');
    const b = await node.addPod('dual-b');
    const v6 = (r: Result): string => r.ips.find((i) => i.address.includes(':'))!.address;
    assert.match(v6(a.result), /^fd77:0:0:5::[0-9a-f]+\/128$/);
    assert.deepEqual(a.result.ips.map((i) => i.gateway), ['169.254.1.1', 'fe80::1']);
    assert.ok(a.result.routes.some((r) => r.dst === '::/0' && r.gw === 'fe80::1'), JSON.stringify(a.result.routes));
    const routes6 = JSON.parse(sh('ip', ['-j', '-6', '-n', node.t.name, 'route', 'show', 'proto', String(RTPROT_WEFT_POD)])) as { dst: string }[];
    assert.deepEqual(routes6.map((r) => r.dst).sort(), [v6(a.result), v6(b.result)].map((x) => x.split('/')[0]).sort());
    const ipB6 = v6(b.result).split('/')[0] as string;
    const ipA6 = v6(a.result).split('/')[0] as string;
    assert.ok(ping(node, a.netns, ipB6), 'a pings b over IPv6');
    assert.ok(ping(node, b.netns, ipA6), 'b pings a over IPv6');
    assert.ok(ping(node, a.netns, b.ip), 'and over IPv4');
    for (const [id, p] of [['dual-a', a], ['dual-b', b]] as const) {
      assert.equal((await node.check(id, p.netns, p.result)).code, 0, `CHECK ${id}`);
      assert.equal((await node.call('DEL', id, p.netns)).code, 0);
    }
    assertNothingLeft(node, [a.ip, b.ip, ipA6, ipB6]);
    assert.equal(sh('ip', ['-6', '-n', node.t.name, 'route', 'show', 'proto', String(RTPROT_WEFT_POD)]).trim(), '');
  });
});

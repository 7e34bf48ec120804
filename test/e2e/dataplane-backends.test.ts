// The data planes (vxlan, host-gw, auto) against the real kernel, in scratch namespaces only
// (the root namespace is never touched). Each test builds its own underlay:
//
//   weft-dp-<id>-u: bridges br0 (10.77.0.254/24) and br1 (10.78.0.254/24), forwarding on
//   weft-dp-<id>-n1: eth0 10.77.0.1/24 on br0   pod subnet 10.244.1.0/24 (cni0 10.244.1.1)
//   weft-dp-<id>-n2: eth0 10.77.0.2/24 on br0   pod subnet 10.244.2.0/24
//   weft-dp-<id>-n3: eth0 10.78.0.3/24 on br1   pod subnet 10.244.3.0/24 (behind the router)
//
// "Pods" are the cni0 bridge addresses; pings go pod address to pod address, so both
// directions' routes are exercised. Needs root; skipped with a message otherwise.
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  HostGwBackend, removeRoutesOutside, RTPROT_WEFT, teardownAllBackends, VxlanBackend, type Backend, type LocalNode, type Peer, type PrepareResult,
} from '../../src/dataplane/index.ts';
import { Rtnetlink } from '../../src/netlink/index.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (creates network namespaces)' : false;
const NETWORK = '10.244.0.0/16';
const live = new Set<string>();

after(() => {
  // Also runs when a test failed: never leave namespaces behind.
  for (const ns of live) run('ip', ['netns', 'delete', ns]);
});

function run(cmd: string, args: string[]): { code: number; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function sh(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

function json<T>(cmd: string, ...args: string[]): T[] {
  const out = sh(cmd, ...args).trim();
  return out ? (JSON.parse(out) as T[]) : [];
}

interface IpRoute { dst: string; gateway?: string; dev?: string; flags: string[]; protocol?: string }
interface IpNeigh { dst: string; lladdr?: string; state?: string[] }
interface IpFdb { mac: string; dst?: string; flags?: string[]; state?: string }
interface IpLink {
  ifname: string; mtu: number; address: string; flags: string[];
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean; link?: string } };
  stats64?: { tx: { packets: number } };
}

class TestNode {
  readonly ns: string;
  readonly publicIp: string;
  readonly subnet: string;
  readonly nl: Rtnetlink;
  readonly local: LocalNode;
  constructor(ns: string, publicIp: string, subnet: string) {
    this.ns = ns;
    this.publicIp = publicIp;
    this.subnet = subnet;
    this.nl = Rtnetlink.open(`/run/netns/${ns}`);
    const eth0 = this.nl.getLink('eth0');
    assert.ok(eth0);
    this.local = { underlayInterface: 'eth0', underlayIndex: eth0.index, underlayMtu: eth0.mtu, publicIp };
  }

  /** The cni0 address standing in for a pod. */
  get pod(): string {
    return this.subnet.replace(/0\/24$/, '1');
  }

  routes(): IpRoute[] {
    return json<IpRoute>('ip', '-j', '-n', this.ns, 'route', 'show');
  }

  neighbours(): IpNeigh[] {
    return run('ip', ['-n', this.ns, 'link', 'show', 'flannel.1']).code === 0 ? json<IpNeigh>('ip', '-j', '-n', this.ns, 'neigh', 'show', 'dev', 'flannel.1') : [];
  }

  fdb(): IpFdb[] {
    return run('ip', ['-n', this.ns, 'link', 'show', 'flannel.1']).code === 0 ? json<IpFdb>('bridge', '-j', '-n', this.ns, 'fdb', 'show', 'dev', 'flannel.1') : [];
  }

  link(name: string): IpLink | undefined {
    if (run('ip', ['-n', this.ns, 'link', 'show', name]).code !== 0) return undefined;
    return json<IpLink>('ip', '-j', '-s', '-d', '-n', this.ns, 'link', 'show', name)[0];
  }

  txPackets(): number {
    return this.link('flannel.1')?.stats64?.tx.packets ?? 0;
  }

  /** Pod address to pod address; true when a reply came. */
  ping(to: TestNode): boolean {
    return run('ip', ['netns', 'exec', this.ns, 'ping', '-c', '1', '-W', '5', '-I', this.pod, to.pod]).code === 0;
  }

  /** Underlay address to underlay address (node to node, no pods). */
  pingUnderlay(to: TestNode): boolean {
    return run('ip', ['netns', 'exec', this.ns, 'ping', '-c', '1', '-W', '2', to.publicIp]).code === 0;
  }

  /** No path: no reply within a second (a late reply could only make this wrongly pass, never wrongly fail). */
  unreachable(to: TestNode): boolean {
    return run('ip', ['netns', 'exec', this.ns, 'ping', '-c', '1', '-W', '1', '-I', this.pod, to.pod]).code !== 0;
  }

  ip(...args: string[]): string {
    return sh('ip', '-n', this.ns, ...args);
  }
}

/** The underlay namespace and three nodes; everything is deleted when the test ends. */
function topology(t: TestContext): TestNode[] {
  const id = randomBytes(3).toString('hex');
  const u = `weft-dp-${id}-u`;
  const names = [1, 2, 3].map((i) => `weft-dp-${id}-n${i}`);
  const nodes: TestNode[] = [];
  t.after(() => {
    for (const n of nodes) n.nl.close();
    for (const ns of [...names, u]) {
      run('ip', ['netns', 'delete', ns]);
      live.delete(ns);
    }
  });
  for (const ns of [u, ...names]) {
    sh('ip', 'netns', 'add', ns);
    live.add(ns);
    sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  }
  for (const [br, cidr] of [['br0', '10.77.0.254/24'], ['br1', '10.78.0.254/24']] as const) {
    sh('ip', '-n', u, 'link', 'add', br, 'type', 'bridge');
    sh('ip', '-n', u, 'addr', 'add', cidr, 'dev', br);
    sh('ip', '-n', u, 'link', 'set', br, 'up');
  }
  sh('ip', 'netns', 'exec', u, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  const plan = [
    { br: 'br0', ip: '10.77.0.1', gw: '10.77.0.254' },
    { br: 'br0', ip: '10.77.0.2', gw: '10.77.0.254' },
    { br: 'br1', ip: '10.78.0.3', gw: '10.78.0.254' },
  ];
  plan.forEach((p, i) => {
    const ns = names[i] as string;
    const port = `v${i + 1}`;
    sh('ip', '-n', u, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    sh('ip', '-n', u, 'link', 'set', port, 'master', p.br, 'up');
    sh('ip', '-n', ns, 'addr', 'add', `${p.ip}/24`, 'dev', 'eth0');
    sh('ip', '-n', ns, 'link', 'set', 'eth0', 'up');
    sh('ip', '-n', ns, 'route', 'add', 'default', 'via', p.gw, 'dev', 'eth0');
    const subnet = `10.244.${i + 1}.0/24`;
    sh('ip', '-n', ns, 'link', 'add', 'cni0', 'type', 'bridge');
    sh('ip', '-n', ns, 'addr', 'add', subnet.replace(/0\/24$/, '1/24'), 'dev', 'cni0');
    sh('ip', '-n', ns, 'link', 'set', 'cni0', 'up');
    nodes.push(new TestNode(ns, p.ip, subnet));
  });
  return nodes;
}

interface Member { node: TestNode; backend: Backend; lease: PrepareResult }

/** A node as its lease announces it; the id (what reports are keyed by) is its subnet here. */
function peerOf(m: Member): Peer {
  return { id: m.node.subnet, subnets: [m.node.subnet], publicIp: m.node.publicIp, backendType: m.lease.backendType, backendData: m.lease.backendData };
}

/** The VTEP MAC a vxlan member announces. */
function macOf(m: Member): string | undefined {
  return (m.lease.backendData as { VtepMAC?: string } | undefined)?.VtepMAC;
}

/** prepare + attach on every node, as the agent does before its lease exists. */
function start(nodes: TestNode[], make: (n: TestNode) => Backend): Member[] {
  return nodes.map((node) => {
    const backend = make(node);
    const lease = backend.prepare(undefined);
    backend.attach(node.subnet);
    return { node, backend, lease };
  });
}

function peersFor(self: Member, members: Member[]): Peer[] {
  return members.filter((m) => m !== self).map(peerOf);
}

const vxlan = (options: { directRouting?: boolean } = {}) => (n: TestNode): Backend => new VxlanBackend(n.nl, n.local, { network: NETWORK, ...options });
const auto = (n: TestNode): Backend => new VxlanBackend(n.nl, n.local, { network: NETWORK }, 'auto');

describe('data plane backends against the kernel', { skip, concurrency: false }, () => {
  test('vxlan: device as flanneld makes it, pods ping across one subnet and through a router, encapsulated', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, vxlan());
    const [m1, m2, m3] = members as [Member, Member, Member];
    const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];

    // The device: flannel.1, VNI 1, port 8472, learning off, local = PublicIP, dev eth0, MTU 1500 − 50.
    const dev = n1.link('flannel.1');
    assert.ok(dev);
    assert.deepEqual(dev.linkinfo?.info_data && {
      kind: dev.linkinfo.info_kind, id: dev.linkinfo.info_data.id, local: dev.linkinfo.info_data.local, port: dev.linkinfo.info_data.port,
      learning: dev.linkinfo.info_data.learning, link: dev.linkinfo.info_data.link,
    }, { kind: 'vxlan', id: 1, local: '10.77.0.1', port: 8472, learning: false, link: 'eth0' });
    assert.equal(dev.mtu, 1450);
    assert.ok(dev.flags.includes('UP'));
    assert.equal(m1.lease.mtu, 1450);
    assert.equal(m1.lease.backendType, 'vxlan');
    assert.deepEqual(m1.lease.backendData, { VNI: 1, VtepMAC: dev.address });
    assert.equal(parseInt(dev.address.slice(0, 2), 16) & 3, 2, 'locally administered unicast');
    const addrs = json<{ addr_info: { local: string; prefixlen: number; family: string }[] }>('ip', '-j', '-n', n1.ns, 'addr', 'show', 'flannel.1')[0]?.addr_info
      .filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`);
    assert.deepEqual(addrs, ['10.244.1.0/32']);

    for (const m of members) {
      const report = await m.backend.reconcile(peersFor(m, members));
      assert.deepEqual(report.errors, []);
      assert.equal(report.changes, 6, 'a neighbour, an FDB entry and a route per peer');
      assert.deepEqual([...report.paths.values()], ['vxlan', 'vxlan']);
    }

    // What flanneld would have made, read back with iproute2.
    const r2 = n1.routes().find((r) => r.dst === '10.244.2.0/24');
    assert.deepEqual(r2 && [r2.gateway, r2.dev, r2.flags.includes('onlink'), r2.protocol], ['10.244.2.0', 'flannel.1', true, String(RTPROT_WEFT)]);
    assert.deepEqual(n1.neighbours().map((n) => [n.dst, n.lladdr, n.state]).sort(),
      [['10.244.2.0', macOf(m2), ['PERMANENT']], ['10.244.3.0', macOf(m3), ['PERMANENT']]]);
    assert.deepEqual(n1.fdb().map((f) => [f.mac, f.dst, f.flags, f.state]).sort(),
      [[macOf(m2), '10.77.0.2', ['self'], 'permanent'], [macOf(m3), '10.78.0.3', ['self'], 'permanent']].sort());

    const tx = n1.txPackets();
    assert.ok(n1.ping(n2), 'n1 -> n2 (same subnet)');
    assert.ok(n1.ping(n3), 'n1 -> n3 (through the router)');
    assert.ok(n3.ping(n2), 'n3 -> n2');
    assert.ok(n1.txPackets() >= tx + 2, 'the pings left n1 through flannel.1');
  });

  test('restart: a new agent adopts device, MAC and entries (zero changes); a lost device comes back with its MAC', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, vxlan());
    for (const m of members) await m.backend.reconcile(peersFor(m, members));
    const [m1, m2] = members as [Member, Member, Member];
    const [n1, n2] = nodes as [TestNode, TestNode, TestNode];
    const before = { routes: n1.routes(), neigh: n1.neighbours(), fdb: n1.fdb() };

    // A new process: new socket, new backend, the previous lease's BackendData.
    const nl = Rtnetlink.open(`/run/netns/${n1.ns}`);
    t.after(() => nl.close());
    const again = new VxlanBackend(nl, n1.local, { network: NETWORK });
    const lease = again.prepare(m1.lease.backendData);
    assert.equal(lease.changes, 0);
    assert.deepEqual(lease.backendData, m1.lease.backendData);
    assert.equal(again.attach(n1.subnet), 0);
    const report = await again.reconcile(peersFor(m1, members));
    assert.equal(report.changes, 0);
    assert.deepEqual(report.errors, []);
    assert.deepEqual({ routes: n1.routes(), neigh: n1.neighbours(), fdb: n1.fdb() }, before);
    // Without the previous lease, the adopted device still keeps its MAC.
    assert.deepEqual(new VxlanBackend(nl, n1.local).prepare(undefined).backendData, m1.lease.backendData);

    // Someone changes the device's MAC: the lease still announces the old one, so it is set back.
    n1.ip('link', 'set', 'flannel.1', 'address', '0a:de:ad:be:ef:01');
    // A MAC change makes the kernel flush the device's neighbours, permanent ones included:
    // the reconcile sets the MAC back and re-adds both.
    assert.equal((await again.reconcile(peersFor(m1, members))).changes, 1 + 2);
    assert.equal(n1.link('flannel.1')?.address, macOf(m1));
    assert.deepEqual(n1.neighbours(), before.neigh);

    // The device is deleted under a running agent: the next reconcile recreates it with the
    // same MAC (so peers need no update) and refills it.
    n1.ip('link', 'delete', 'flannel.1');
    assert.ok(n1.unreachable(n2), 'no device, no path');
    const healed = await again.reconcile(peersFor(m1, members));
    assert.equal(healed.changes, 1 + 1 + 6, 'device, address, 2 peers × 3 entries');
    assert.equal(n1.link('flannel.1')?.address, macOf(m1));
    assert.ok(n1.ping(n2));
    // A fresh start after the device is gone takes the MAC from the previous lease.
    n1.ip('link', 'delete', 'flannel.1');
    const fresh = new VxlanBackend(nl, n1.local);
    assert.deepEqual(fresh.prepare(m1.lease.backendData).backendData, m1.lease.backendData);
    assert.notEqual(macOf(m2), macOf(m1));
  });

  test('peers change: a vanished peer loses its entries, a new VtepMAC is followed, lost entries are repaired', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, vxlan());
    for (const m of members) await m.backend.reconcile(peersFor(m, members));
    const [m1, m2, m3] = members as [Member, Member, Member];
    const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];

    // n3 leaves: its route, neighbour and FDB entry go, n2's stay.
    const gone = await m1.backend.reconcile([peerOf(m2)]);
    assert.equal(gone.changes, 3);
    assert.deepEqual(n1.routes().filter((r) => r.dst.startsWith('10.244.')).map((r) => r.dst).sort(), ['10.244.1.0/24', '10.244.2.0/24']);
    assert.deepEqual(n1.neighbours().map((n) => n.dst), ['10.244.2.0']);
    assert.deepEqual(n1.fdb().map((f) => f.dst), ['10.77.0.2']);
    assert.ok(n1.unreachable(n3));
    assert.ok(n1.ping(n2));

    // n2 comes back with a new device and a new random MAC.
    n2.ip('link', 'delete', 'flannel.1');
    const reborn = new VxlanBackend(n2.nl, n2.local, { network: NETWORK });
    const lease = reborn.prepare(undefined);
    reborn.attach(n2.subnet);
    await reborn.reconcile([peerOf(m1)]);
    const m2b: Member = { node: n2, backend: reborn, lease };
    assert.notEqual(macOf(m2b), macOf(m2));
    assert.ok(n1.unreachable(n2), 'n1 still sends to the old MAC');
    const moved = await m1.backend.reconcile([peerOf(m2b)]);
    assert.equal(moved.changes, 3, 'neighbour replaced, old FDB entry deleted, new one added');
    assert.deepEqual(n1.neighbours().map((n) => n.lladdr), [macOf(m2b)]);
    assert.deepEqual(n1.fdb().map((f) => f.mac), [macOf(m2b)]);
    assert.ok(n1.ping(n2));

    // Entries removed behind our back come back; a foreign route on the underlay is left alone.
    n1.ip('route', 'del', '10.244.2.0/24');
    n1.ip('neigh', 'del', '10.244.2.0', 'dev', 'flannel.1');
    n1.ip('route', 'add', '10.244.99.0/24', 'via', '10.77.0.254', 'proto', 'static');
    const repaired = await m1.backend.reconcile([peerOf(m2b)]);
    assert.equal(repaired.changes, 2);
    assert.ok(n1.routes().some((r) => r.dst === '10.244.99.0/24'));
    assert.ok(n1.ping(n2));
    void m3;
  });

  test('host-gw: routes via the peers\' PublicIPs, pods ping directly; a routed peer is unreachable; MTU = underlay', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, (n) => new HostGwBackend(n.nl, n.local, { network: NETWORK }));
    const [m1, m2, m3] = members as [Member, Member, Member];
    const [n1, n2] = nodes as [TestNode, TestNode, TestNode];
    assert.deepEqual([m1.lease.backendType, m1.lease.backendData, m1.lease.mtu], ['host-gw', undefined, 1500]);
    assert.equal(n1.link('flannel.1'), undefined, 'no device');

    const r1 = await m1.backend.reconcile([peerOf(m2), peerOf(m3)]);
    assert.equal(r1.changes, 1);
    assert.deepEqual(Object.fromEntries(r1.paths), { [n2.subnet]: 'direct', '10.244.3.0/24': 'unreachable' });
    assert.equal(r1.errors.length, 1);
    assert.match(r1.errors[0]!.error, /host-gw cannot reach 10\.78\.0\.3: it is not on a subnet directly connected to eth0/);
    await m2.backend.reconcile([peerOf(m1)]);
    const r = n1.routes().find((x) => x.dst === '10.244.2.0/24');
    assert.deepEqual(r && [r.gateway, r.dev, r.protocol], ['10.77.0.2', 'eth0', String(RTPROT_WEFT)]);
    assert.equal(n1.routes().some((x) => x.dst === '10.244.3.0/24'), false);
    assert.ok(n1.ping(n2));
    assert.ok(n2.ping(n1));

    assert.equal((await m1.backend.reconcile([peerOf(m2), peerOf(m3)])).changes, 0, 'in sync');
    assert.equal((await m1.backend.reconcile([])).changes, 1, 'peer gone, route gone');
    assert.equal(n1.routes().some((x) => x.dst === '10.244.2.0/24'), false);
    assert.ok(n1.routes().some((x) => x.dst === 'default'), 'the default route is not ours');

    // flanneld refuses host-gw behind NAT; so do we.
    assert.throws(() => new HostGwBackend(n1.nl, { ...n1.local, publicIp: '203.0.113.9' }).prepare(undefined),
      /PublicIP 203\.0\.113\.9 is not an address of eth0 \(10\.77\.0\.1\)/);
  });

  test('auto: direct routes to same-subnet peers, vxlan to the routed one; the lease says vxlan', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, auto);
    const [m1] = members as [Member, Member, Member];
    const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
    assert.equal(m1.lease.backendType, 'vxlan');
    assert.equal(m1.lease.mtu, 1450);
    const reports = [];
    for (const m of members) reports.push(await m.backend.reconcile(peersFor(m, members)));
    assert.deepEqual(Object.fromEntries(reports[0]!.paths), { '10.244.2.0/24': 'direct', '10.244.3.0/24': 'vxlan' });
    assert.deepEqual(Object.fromEntries(reports[2]!.paths), { '10.244.1.0/24': 'vxlan', '10.244.2.0/24': 'vxlan' });
    assert.equal(reports[0]!.changes, 1 + 3);
    const direct = n1.routes().find((r) => r.dst === '10.244.2.0/24');
    assert.deepEqual(direct && [direct.gateway, direct.dev, direct.protocol], ['10.77.0.2', 'eth0', String(RTPROT_WEFT)]);

    let tx = n1.txPackets();
    assert.ok(n1.ping(n2));
    assert.equal(n1.txPackets(), tx, 'same subnet: not encapsulated');
    tx = n1.txPackets();
    assert.ok(n1.ping(n3));
    assert.ok(n1.txPackets() > tx, 'routed peer: through flannel.1');
    assert.ok(n3.ping(n2));
    for (const m of members) assert.equal((await m.backend.reconcile(peersFor(m, members))).changes, 0);
  });

  test('vxlan DirectRouting and flanneld-made routes are adopted: a flanneld -> weft switch changes nothing', async (t) => {
    const nodes = topology(t);
    const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
    const members = start(nodes, vxlan({ directRouting: true }));
    for (const m of members) await m.backend.reconcile(peersFor(m, members));
    // Rewrite n1's entries as flanneld writes them: protocol boot, the direct route without a device.
    n1.ip('route', 'replace', '10.244.2.0/24', 'via', '10.77.0.2');
    n1.ip('route', 'replace', '10.244.3.0/24', 'via', '10.244.3.0', 'dev', 'flannel.1', 'onlink');
    // (iproute2 prints no protocol for boot, its default.)
    assert.deepEqual(n1.routes().filter((r) => r.dst === '10.244.2.0/24' || r.dst === '10.244.3.0/24').map((r) => r.protocol ?? 'boot'), ['boot', 'boot']);
    const [m1] = members as [Member, Member, Member];
    assert.equal((await m1.backend.reconcile(peersFor(m1, members))).changes, 0);
    assert.ok(n1.ping(n2));
    assert.ok(n1.ping(n3));
    // ...and they are ours to remove when the peers go.
    assert.equal((await m1.backend.reconcile([])).changes, 1 + 3);
    assert.deepEqual(n1.routes().filter((r) => r.dst.startsWith('10.244.')).map((r) => r.dst), ['10.244.1.0/24']);
  });

  test('an untrusted peer cannot cut the node off: a subnet outside the Network, a bad PublicIP or another VNI gets nothing', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, vxlan());
    const [m1, m2, m3] = members as [Member, Member, Member];
    const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
    const good = [peerOf(m2), peerOf(m3)];
    await m2.backend.reconcile(peersFor(m2, members));
    await m3.backend.reconcile(peersFor(m3, members));
    // A lease claiming n2's underlay subnet (where etcd would live), one sending to loopback,
    // and one on another VNI; each would have been programmed before.
    const rogue: Peer[] = [
      { ...peerOf(m3), id: 'underlay', subnets: ['10.77.0.0/24'], backendData: { VNI: 1, VtepMAC: '0a:00:00:00:0e:01' } },
      { ...peerOf(m3), id: 'loopback', subnets: ['10.244.50.0/24'], publicIp: '127.0.0.1', backendData: { VNI: 1, VtepMAC: '0a:00:00:00:0e:02' } },
      { ...peerOf(m3), id: 'vni', subnets: ['10.244.51.0/24'], publicIp: '10.78.0.9', backendData: { VNI: 4096, VtepMAC: '0a:00:00:00:0e:03' } },
    ];
    const report = await m1.backend.reconcile([...good, ...rogue]);
    assert.deepEqual(Object.fromEntries(report.paths), { [n2.subnet]: 'vxlan', [n3.subnet]: 'vxlan', underlay: 'unreachable', loopback: 'unreachable', vni: 'unreachable' });
    assert.deepEqual(report.errors.map((e) => e.peer), ['underlay', 'loopback', 'vni']);
    assert.match(report.errors[0]!.error, /outside the cluster Network 10\.244\.0\.0\/16/);
    assert.match(report.errors[1]!.error, /loopback/);
    assert.match(report.errors[2]!.error, /VNI 4096 but this node uses VNI 1/);
    assert.equal(report.changes, 6, 'only the two good peers were programmed');
    assert.deepEqual(n1.routes().filter((r) => r.dev === 'flannel.1').map((r) => r.dst).sort(), ['10.244.2.0/24', '10.244.3.0/24']);
    assert.equal(n1.fdb().length, 2);
    assert.ok(n1.pingUnderlay(n2), 'the underlay still works');
    assert.ok(n1.ping(n2));

    // Routes an older, trusting version left for such leases go on the next reconcile.
    n1.ip('route', 'add', '10.77.0.2/32', 'via', '10.244.3.0', 'dev', 'flannel.1', 'onlink', 'proto', String(RTPROT_WEFT));
    n1.ip('route', 'add', '172.16.9.0/24', 'via', '10.77.0.2', 'dev', 'eth0', 'proto', String(RTPROT_WEFT));
    assert.ok(!n1.pingUnderlay(n2), 'the stale route sends the underlay into the overlay');
    const healed = await m1.backend.reconcile([...good, ...rogue]);
    assert.equal(healed.changes, 2);
    assert.ok(!n1.routes().some((r) => r.dst === '10.77.0.2' || r.dst === '172.16.9.0/24'));
    assert.ok(n1.pingUnderlay(n2));
    assert.ok(n1.ping(n3));
  });

  test('removeRoutesOutside: at start-up, weft-owned routes outside the Network go; peers, the kernel\'s and the operator\'s stay', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, auto);
    for (const m of members) await m.backend.reconcile(peersFor(m, members));
    const [n1, n2, n3] = nodes as [TestNode, TestNode, TestNode];
    const before = n1.routes().map((r) => r.dst).sort();
    // What a bad lease could have made a node program before it restarted: n2's underlay
    // address into the overlay (weft's protocol), a flanneld-style route on the device, a
    // direct route; and an operator's static route outside the Network, which is not ours.
    n1.ip('route', 'add', '10.77.0.2/32', 'via', '10.244.3.0', 'dev', 'flannel.1', 'onlink', 'proto', String(RTPROT_WEFT));
    n1.ip('route', 'add', '10.78.0.0/24', 'via', '10.244.3.0', 'dev', 'flannel.1', 'onlink');
    n1.ip('route', 'add', '172.16.9.0/24', 'via', '10.77.0.2', 'dev', 'eth0', 'proto', String(RTPROT_WEFT));
    n1.ip('route', 'add', '172.17.0.0/16', 'via', '10.77.0.254', 'proto', 'static');
    assert.ok(!n1.pingUnderlay(n2), 'cut off from n2\'s underlay address');
    const nl = Rtnetlink.open(`/run/netns/${n1.ns}`);
    t.after(() => nl.close());
    assert.equal(removeRoutesOutside(nl, [NETWORK]), 3);
    assert.deepEqual(n1.routes().map((r) => r.dst).sort(), [...before, '172.17.0.0/16'].sort());
    assert.ok(n1.pingUnderlay(n2));
    assert.ok(n1.ping(n2) && n1.ping(n3), 'peer routes kept');
    assert.equal(removeRoutesOutside(nl, [NETWORK]), 0, 'nothing left to remove');
  });

  test('teardownAllBackends removes every backend\'s devices and weft-owned routes, without a backend object', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, auto);
    for (const m of members) await m.backend.reconcile(peersFor(m, members));
    const [n1] = nodes as [TestNode, TestNode, TestNode];
    n1.ip('link', 'add', 'flannel.4096', 'type', 'vxlan', 'id', '4096', 'dev', 'eth0', 'dstport', '8472'); // an older config's device
    n1.ip('link', 'add', 'vxlan-ops', 'type', 'vxlan', 'id', '77', 'dev', 'eth0', 'dstport', '4789'); // an operator's
    const nl = Rtnetlink.open(`/run/netns/${n1.ns}`);
    t.after(() => nl.close());
    const removed = teardownAllBackends(nl);
    assert.deepEqual([removed.routes, removed.devices.sort()], [2, ['flannel.1', 'flannel.4096']], 'the direct and the vxlan route (both protocol 0x57), then the devices');
    assert.equal(n1.link('flannel.1'), undefined);
    assert.ok(n1.link('vxlan-ops'), 'not ours');
    assert.deepEqual(n1.routes().map((r) => r.dst).sort(), ['10.244.1.0/24', '10.77.0.0/24', 'default']);
    assert.deepEqual(teardownAllBackends(nl), { routes: 0, devices: [] });
  });

  test('teardown removes the device and the direct routes, nothing else', async (t) => {
    const nodes = topology(t);
    const members = start(nodes, auto);
    for (const m of members) await m.backend.reconcile(peersFor(m, members));
    const [m1] = members as [Member, Member, Member];
    const [n1] = nodes as [TestNode, TestNode, TestNode];
    await m1.backend.teardown();
    assert.equal(n1.link('flannel.1'), undefined);
    assert.deepEqual(n1.routes().map((r) => r.dst).sort(), ['10.244.1.0/24', '10.77.0.0/24', 'default']);
  });

  test('wire compatibility: a node built by hand as flanneld builds it and a weft node carry traffic both ways', async (t) => {
    const nodes = topology(t);
    const [n1, n2] = nodes as [TestNode, TestNode, TestNode];
    // weft on n1.
    const [m1] = start([n1], vxlan());
    const weftMac = macOf(m1 as Member) as string;
    // flanneld's device and entries on n2, exactly as docs/flannel-compat.md §3.2 describes.
    n2.ip('link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'dev', 'eth0', 'local', n2.publicIp, 'dstport', '8472', 'nolearning');
    n2.ip('link', 'set', 'flannel.1', 'mtu', '1450');
    n2.ip('addr', 'add', '10.244.2.0/32', 'dev', 'flannel.1');
    n2.ip('link', 'set', 'flannel.1', 'up');
    n2.ip('neigh', 'replace', '10.244.1.0', 'lladdr', weftMac, 'dev', 'flannel.1', 'nud', 'permanent');
    sh('bridge', '-n', n2.ns, 'fdb', 'replace', weftMac, 'dev', 'flannel.1', 'dst', n1.publicIp, 'self', 'permanent');
    n2.ip('route', 'replace', '10.244.1.0/24', 'via', '10.244.1.0', 'dev', 'flannel.1', 'onlink');
    const flannelMac = n2.link('flannel.1')?.address as string;
    const flanneld: Peer = { id: 'flanneld', subnets: [n2.subnet], publicIp: n2.publicIp, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: flannelMac } };

    const report = await (m1 as Member).backend.reconcile([flanneld]);
    assert.deepEqual(report.errors, []);
    const tx = n2.txPackets();
    assert.ok(n1.ping(n2), 'weft -> flanneld');
    assert.ok(n2.ping(n1), 'flanneld -> weft');
    assert.ok(n2.txPackets() > tx, 'the flanneld node encapsulated its replies and requests');

    // weft takes over the hand-built node: device, MAC and entries adopted, nothing changed.
    const takeover = new VxlanBackend(n2.nl, n2.local, { network: NETWORK });
    const lease = takeover.prepare(undefined);
    assert.deepEqual([lease.changes, (lease.backendData as { VtepMAC: string }).VtepMAC], [0, flannelMac]);
    assert.equal(takeover.attach(n2.subnet), 0);
    assert.equal((await takeover.reconcile([peerOf(m1 as Member)])).changes, 0);
    assert.ok(n2.ping(n1));
  });
});

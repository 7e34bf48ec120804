// src/netlink against the real kernel, inside scratch network namespaces only (the root
// namespace is never touched). Every result is read back twice: with our own dump, and with
// iproute2's JSON output, which proves the codec against an independent implementation.
// Needs root; skipped with a message otherwise.
import { after, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { isWeftError } from '../../src/errors.ts';
import { native } from '../../src/native/native.ts';
import {
  deleteLinkRequest, isExists, isNotFound, NetlinkBatchError, NetlinkError, NetlinkSocket, requestOffThread, routeRequest, Rtnetlink,
  type NetlinkTransport,
} from '../../src/netlink/index.ts';
import { NETLINK_ROUTE } from '../../src/netlink/constants.ts';

const skip = process.getuid?.() !== 0 ? 'needs root (creates network namespaces)' : false;
const created = new Set<string>();

after(() => {
  // Also runs when a test failed: never leave namespaces behind.
  for (const ns of created) ip(['netns', 'delete', ns], true);
});

function ip(args: string[], ignoreErrors = false): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    if (ignoreErrors) return '';
    throw e;
  }
}

/** iproute2's view: `ip -j -n NS ARGS` parsed. */
function ipj<T = Record<string, unknown>>(ns: string, ...args: string[]): T[] {
  const out = ip(['-j', '-n', ns, ...args]).trim();
  return out ? (JSON.parse(out) as T[]) : [];
}

interface Ns { name: string; path: string; nl: Rtnetlink }

/** A fresh namespace with an Rtnetlink socket inside; both go away when the test ends. */
function newNs(t: TestContext): Ns {
  const name = `weft-nl-${randomBytes(4).toString('hex')}`;
  ip(['netns', 'add', name]);
  created.add(name);
  const path = `/run/netns/${name}`;
  const nl = Rtnetlink.open(path);
  t.after(() => {
    nl.close();
    ip(['netns', 'delete', name], true);
    created.delete(name);
  });
  return { name, path, nl };
}

/** Opens a namespace file for IFLA_NET_NS_FD, closed when the test ends. */
function nsFd(t: TestContext, ns: Ns): number {
  const fd = openSync(ns.path, 'r');
  t.after(() => closeSync(fd));
  return fd;
}

/** A veth pair with both ends in ns and up, and an address on `name`: something to route through. */
function uplink(t: TestContext, ns: Ns, name = 'up0', cidr = '10.50.0.1/24', cidr6 = 'fd50::1/64'): number {
  ns.nl.createVeth({ name, up: true, peer: { name: `${name}p`, netnsFd: nsFd(t, ns) } });
  ns.nl.setLinkUp(`${name}p`);
  ns.nl.addAddress(name, cidr);
  ns.nl.addAddress(name, cidr6, { noDad: true });
  return ns.nl.linkIndex(name);
}

interface IpLink { ifindex: number; ifname: string; mtu: number; address?: string; flags: string[]; master?: string; link_netnsid?: number; linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_data?: Record<string, unknown> } }
interface IpAddr { ifname: string; addr_info: { family: string; local: string; prefixlen: number; tentative?: boolean }[] }
interface IpRoute { dst: string; gateway?: string; dev?: string; flags: string[]; scope?: string; metric?: number; metrics?: { mtu?: number }[]; protocol?: string }

describe('netlink against the kernel', { skip, concurrency: false }, () => {
  test('off the event loop: veth deletes in another namespace, concurrently; missing link and namespace are told apart', async (t) => {
    const a = newNs(t);
    const b = newNs(t);
    const fd = nsFd(t, b);
    for (let i = 0; i < 8; i++) a.nl.createVeth({ name: `ot${i}`, peer: { name: `pe${i}`, netnsFd: fd } });
    // Deleting the peers from b's side removes both ends.
    await Promise.all(Array.from({ length: 8 }, (_, i) => requestOffThread(deleteLinkRequest(`pe${i}`), { netnsPath: b.path })));
    assert.deepEqual(ipj<{ ifname: string }>(a.name, 'link', 'show', 'type', 'veth'), []);
    await assert.rejects(requestOffThread(deleteLinkRequest('pe0'), { netnsPath: b.path }), (e) => isNotFound(e));
    await assert.rejects(requestOffThread(deleteLinkRequest('x'), { netnsPath: '/run/netns/weft-nl-absent' }), (e) => (e as { code?: string }).code === 'ENOENT');
  });

  test('a fresh namespace lists only lo, the same as iproute2', (t) => {
    const ns = newNs(t);
    const links = ns.nl.listLinks();
    assert.deepEqual(links.map((l) => [l.index, l.name]), ipj<IpLink>(ns.name, 'link', 'show').map((l) => [l.ifindex, l.ifname]));
    assert.deepEqual(links.map((l) => l.name), ['lo']);
    assert.equal(ns.nl.getLink('lo')?.index, 1);
    assert.equal(ns.nl.getLink('nope0'), null);
    assert.equal(ns.nl.getLink(9999), null);
  });

  test('opening a socket in a missing namespace is a WEFT_NETNS error naming it', () => {
    assert.throws(() => Rtnetlink.open('/run/netns/weft-nl-does-not-exist'),
      (e) => isWeftError(e, 'WEFT_NETNS') && /weft-nl-does-not-exist/.test((e as Error).message));
  });

  test('bridge: created with name, MTU, fixed MAC and up; a duplicate is reported as exists', (t) => {
    const ns = newNs(t);
    ns.nl.createBridge({ name: 'br0', mtu: 1400, mac: '02:42:00:00:00:01', up: true });
    const br = ns.nl.getLink('br0');
    assert.ok(br);
    assert.deepEqual([br.kind, br.mtu, br.mac, br.up], ['bridge', 1400, '02:42:00:00:00:01', true]);
    const [viaIp] = ipj<IpLink>(ns.name, '-d', 'link', 'show', 'br0');
    assert.deepEqual([viaIp?.ifindex, viaIp?.mtu, viaIp?.address, viaIp?.linkinfo?.info_kind, viaIp?.flags.includes('UP')], [br.index, 1400, '02:42:00:00:00:01', 'bridge', true]);

    assert.throws(() => ns.nl.createBridge({ name: 'br0' }), (e) => {
      assert.ok(e instanceof NetlinkError);
      assert.equal(e.code, 'WEFT_NETLINK');
      assert.ok(isExists(e));
      assert.match(e.message, /create bridge br0: .*EEXIST/);
      return true;
    });
    assert.equal(ns.nl.ensureBridge({ name: 'br0', mtu: 1400 }).index, br.index, 'ensureBridge accepts the existing one');
    assert.equal(ns.nl.listLinks().filter((l) => l.name === 'br0').length, 1);
  });

  test('ensureBridge refuses a name taken by another kind of link', (t) => {
    const ns = newNs(t);
    ns.nl.createVeth({ name: 'taken', peer: { name: 'takenp' } });
    assert.throws(() => ns.nl.ensureBridge({ name: 'taken' }), (e) => isWeftError(e, 'WEFT_NETLINK') && /exists but is veth, not a bridge/.test((e as Error).message));
  });

  test('veth: one request makes the host end (MTU, MAC, master) here and the peer directly in another namespace', (t) => {
    const host = newNs(t);
    const pod = newNs(t);
    host.nl.createBridge({ name: 'br0', up: true });
    const br = host.nl.linkIndex('br0');
    host.nl.createVeth({
      name: 'vethab', mtu: 1450, mac: '02:00:00:00:aa:01', master: br, up: true,
      peer: { name: 'eth0', mac: '02:00:00:00:bb:01', netnsFd: nsFd(t, pod) },
    });

    const h = host.nl.getLink('vethab');
    const p = pod.nl.getLink('eth0');
    assert.ok(h && p);
    assert.equal(host.nl.getLink('eth0'), null, 'the peer was not created here');
    assert.deepEqual([h.kind, h.mtu, h.mac, h.master, h.up], ['veth', 1450, '02:00:00:00:aa:01', br, true]);
    assert.deepEqual([p.kind, p.mtu, p.mac, p.up], ['veth', 1450, '02:00:00:00:bb:01', false]);
    assert.equal(h.peerIndex, p.index, 'IFLA_LINK names the peer');
    assert.equal(p.peerIndex, h.index);
    assert.ok(h.netnsId !== undefined && h.netnsId >= 0, 'the peer lives in another namespace');

    const [ih] = ipj<IpLink>(host.name, '-d', 'link', 'show', 'vethab');
    assert.deepEqual([ih?.mtu, ih?.address, ih?.master, ih?.linkinfo?.info_kind, ih?.link_netnsid], [1450, '02:00:00:00:aa:01', 'br0', 'veth', h.netnsId]);
    const [ip0] = ipj<IpLink>(pod.name, 'link', 'show', 'eth0');
    assert.deepEqual([ip0?.ifindex, ip0?.mtu, ip0?.address], [p.index, 1450, '02:00:00:00:bb:01']);
  });

  test('set up/down, MTU, MAC and master; delete by name and by index, "not found" distinguishable', (t) => {
    const ns = newNs(t);
    ns.nl.createBridge({ name: 'br0' });
    ns.nl.createVeth({ name: 'v0', peer: { name: 'v0p' } });
    const show = (): IpLink | undefined => ipj<IpLink>(ns.name, 'link', 'show', 'v0')[0];

    ns.nl.setLinkUp('v0');
    ns.nl.setMtu('v0', 1300);
    ns.nl.setMac('v0', '02:11:22:33:44:55');
    ns.nl.setMaster('v0', 'br0');
    let l = ns.nl.getLink('v0');
    assert.deepEqual([l?.up, l?.mtu, l?.mac, l?.master], [true, 1300, '02:11:22:33:44:55', ns.nl.linkIndex('br0')]);
    assert.deepEqual([show()?.flags.includes('UP'), show()?.mtu, show()?.address, show()?.master], [true, 1300, '02:11:22:33:44:55', 'br0']);

    ns.nl.setLinkDown('v0');
    ns.nl.setMaster('v0', null);
    l = ns.nl.getLink('v0');
    assert.deepEqual([l?.up, l?.master], [false, undefined]);
    assert.deepEqual([show()?.flags.includes('UP'), show()?.master], [false, undefined]);

    assert.throws(() => ns.nl.setMtu('nope0', 1400), (e) => isNotFound(e) && /set link nope0 mtu 1400/.test((e as Error).message));

    const index = ns.nl.linkIndex('v0');
    ns.nl.deleteLink('v0');
    assert.equal(ns.nl.getLink(index), null);
    assert.deepEqual(ipj(ns.name, 'link', 'show', 'type', 'veth'), []);
    assert.throws(() => ns.nl.deleteLink('v0'), (e) => isNotFound(e) && (e as NetlinkError).errnoName === 'ENODEV');
    ns.nl.deleteLink(ns.nl.linkIndex('br0'));
    assert.throws(() => ns.nl.deleteLink(index), (e) => isNotFound(e) && /delete link #\d+/.test((e as Error).message));
  });

  test('hairpin on a bridge port: set on and off, read back by us and by iproute2', (t) => {
    const ns = newNs(t);
    ns.nl.createBridge({ name: 'br0' });
    ns.nl.createVeth({ name: 'port0', master: ns.nl.linkIndex('br0'), peer: { name: 'port0p' } });
    const ipHairpin = (): unknown => ipj<IpLink>(ns.name, '-d', 'link', 'show', 'port0')[0]?.linkinfo?.info_slave_data?.hairpin;

    assert.equal(ns.nl.getHairpin('port0'), false);
    ns.nl.setHairpin('port0', true);
    assert.equal(ns.nl.getHairpin('port0'), true);
    assert.equal(ipHairpin(), true);
    ns.nl.setHairpin(ns.nl.linkIndex('port0'), false);
    assert.equal(ns.nl.getHairpin('port0'), false);
    assert.equal(ipHairpin(), false);

    assert.equal(ns.nl.getHairpin('port0p'), null, 'not a bridge port');
    assert.equal(ns.nl.getHairpin('nope0'), null, 'absent');
  });

  test('addresses: IPv4 and IPv6 (NODAD), listed per link and family, deleted', (t) => {
    const ns = newNs(t);
    ns.nl.createVeth({ name: 'a0', up: true, peer: { name: 'a0p' } });
    ns.nl.createVeth({ name: 'b0', peer: { name: 'b0p' } });
    ns.nl.addAddress('a0', '10.1.2.3/24');
    ns.nl.addAddress('a0', 'fd00:1::3/64', { noDad: true });
    ns.nl.addAddress('b0', '10.9.9.9/32');

    const mine = ns.nl.listAddresses({ link: 'a0' }).filter((a) => a.scope === 0).map((a) => a.cidr);
    assert.deepEqual(mine.sort(), ['10.1.2.3/24', 'fd00:1::3/64']);
    // lo is down in a fresh namespace, so it has no 127.0.0.1 yet.
    assert.deepEqual(ns.nl.listAddresses({ family: 4 }).map((a) => a.cidr).sort(), ['10.1.2.3/24', '10.9.9.9/32']);
    assert.deepEqual(ns.nl.listAddresses({ link: 'a0', family: 6 }).filter((a) => a.scope === 0).map((a) => a.address), ['fd00:1::3']);

    const viaIp = ipj<IpAddr>(ns.name, 'addr', 'show', 'dev', 'a0')[0]?.addr_info.filter((a) => !a.local.startsWith('fe80')) ?? [];
    assert.deepEqual(viaIp.map((a) => `${a.local}/${a.prefixlen}`).sort(), mine.sort());
    assert.equal(viaIp.find((a) => a.family === 'inet6')?.tentative, undefined, 'NODAD: usable at once, not tentative');

    assert.throws(() => ns.nl.addAddress('a0', '10.1.2.3/24'), isExists);
    ns.nl.deleteAddress('a0', '10.1.2.3/24');
    ns.nl.deleteAddress('a0', 'fd00:1::3/64');
    assert.deepEqual(ns.nl.listAddresses({ link: 'a0' }).filter((a) => a.scope === 0), []);
    assert.deepEqual(ipj<IpAddr>(ns.name, 'addr', 'show', 'dev', 'a0')[0]?.addr_info.filter((a) => !a.local.startsWith('fe80')), []);
    assert.throws(() => ns.nl.deleteAddress('a0', '10.1.2.3/24'), isNotFound);
  });

  test('adding an address to a missing link is WEFT_NETLINK naming the link and the address', (t) => {
    const ns = newNs(t);
    for (const link of ['nope0', 9999]) {
      assert.throws(() => ns.nl.addAddress(link, '10.1.2.3/24'), (e) => {
        assert.ok(e instanceof NetlinkError);
        assert.equal(e.code, 'WEFT_NETLINK');
        assert.ok(e.notFound);
        assert.match(e.message, new RegExp(`add address 10\\.1\\.2\\.3/24 to link #?${link}: .*ENODEV`));
        return true;
      });
    }
  });

  test('routes: default via gateway (v4, v6), onlink, metric and MTU, replace, delete', (t) => {
    const ns = newNs(t);
    const up0 = uplink(t, ns);
    ns.nl.addRoute({ dst: 'default', gateway: '10.50.0.254' });
    ns.nl.addRoute({ dst: 'default', gateway: 'fd50::fe', oif: up0 });
    ns.nl.addRoute({ dst: '10.60.0.0/16', gateway: '192.168.77.1', oif: up0, onlink: true });
    ns.nl.addRoute({ dst: '10.70.0.0/16', gateway: '10.50.0.2', priority: 20, mtu: 1350 });
    ns.nl.addRoute({ dst: '10.80.0.0/16', oif: up0 });

    const v4 = ns.nl.listRoutes({ family: 4 });
    const byDst = (d: string) => v4.find((r) => r.dst === d);
    assert.deepEqual([byDst('0.0.0.0/0')?.gateway, byDst('0.0.0.0/0')?.oif], ['10.50.0.254', up0]);
    assert.deepEqual([byDst('10.60.0.0/16')?.gateway, byDst('10.60.0.0/16')?.onlink], ['192.168.77.1', true]);
    assert.deepEqual([byDst('10.70.0.0/16')?.priority, byDst('10.70.0.0/16')?.mtu], [20, 1350]);
    assert.deepEqual([byDst('10.80.0.0/16')?.scope, byDst('10.80.0.0/16')?.gateway], ['link', undefined]);
    const six = ns.nl.listRoutes({ family: 6 }).find((r) => r.dst === '::/0');
    assert.deepEqual([six?.gateway, six?.oif], ['fd50::fe', up0]);

    const ip4 = ipj<IpRoute>(ns.name, 'route', 'show');
    const ipDst = (d: string) => ip4.find((r) => r.dst === d);
    assert.deepEqual([ipDst('default')?.gateway, ipDst('default')?.dev], ['10.50.0.254', 'up0']);
    assert.deepEqual([ipDst('10.60.0.0/16')?.gateway, ipDst('10.60.0.0/16')?.flags.includes('onlink')], ['192.168.77.1', true]);
    assert.deepEqual([ipDst('10.70.0.0/16')?.metric, ipDst('10.70.0.0/16')?.metrics?.[0]?.mtu], [20, 1350]);
    assert.equal(ipDst('10.80.0.0/16')?.scope, 'link');
    assert.equal(ipj<IpRoute>(ns.name, '-6', 'route', 'show').find((r) => r.dst === 'default')?.gateway, 'fd50::fe');
    assert.equal(v4.length, ip4.length, 'the same main-table routes');

    assert.throws(() => ns.nl.addRoute({ dst: '10.70.0.0/16', gateway: '10.50.0.2', priority: 20 }), isExists);
    ns.nl.replaceRoute({ dst: '10.70.0.0/16', gateway: '10.50.0.3', priority: 20 });
    assert.equal(ipj<IpRoute>(ns.name, 'route', 'show', '10.70.0.0/16')[0]?.gateway, '10.50.0.3');

    ns.nl.deleteRoute({ dst: '10.70.0.0/16' });
    ns.nl.deleteRoute({ dst: 'default', family: 6 });
    assert.deepEqual(ipj(ns.name, 'route', 'show', '10.70.0.0/16'), []);
    assert.equal(ns.nl.listRoutes({ family: 6 }).find((r) => r.dst === '::/0'), undefined);
    assert.throws(() => ns.nl.deleteRoute({ dst: '10.70.0.0/16' }), (e) => isNotFound(e) && /delete route 10\.70\.0\.0\/16/.test((e as Error).message));
  });

  test('a route the kernel refuses names the route and carries the extended-ack text', (t) => {
    const ns = newNs(t);
    const up0 = uplink(t, ns);
    assert.throws(() => ns.nl.addRoute({ dst: '10.1.2.3/24', oif: up0 }), (e) => {
      assert.ok(e instanceof NetlinkError);
      assert.equal(e.errnoName, 'EINVAL');
      assert.match(e.message, /add route 10\.1\.2\.3\/24 dev #\d+: .*Invalid prefix for given prefix length/);
      return true;
    });
  });

  test('a batch of 200 route adds goes out in one send() and every ACK is collected', (t) => {
    const ns = newNs(t);
    const up0 = uplink(t, ns);
    const sends: number[] = [];
    const sock = NetlinkSocket.over(countingTransport(ns.path, sends));
    t.after(() => sock.close());
    const reqs = Array.from({ length: 200 }, (_, i) => routeRequest('add', { dst: `10.${100 + (i >> 8)}.${i & 0xff}.0/24`, gateway: '10.50.0.9', oif: up0 }));
    const outcomes = sock.batchSettled(reqs);
    assert.equal(sends.length, 1, 'one send()');
    assert.equal(outcomes.length, 200);
    assert.deepEqual(outcomes.filter((o) => o !== undefined), []);
    assert.equal(ns.nl.listRoutes({ oif: up0 }).filter((r) => r.gateway === '10.50.0.9').length, 200);
    assert.equal(ipj<IpRoute>(ns.name, 'route', 'show', 'via', '10.50.0.9').length, 200);
  });

  test('a batch where one request fails reports which one, and the others are applied', (t) => {
    const ns = newNs(t);
    const up0 = uplink(t, ns);
    ns.nl.addRoute({ dst: '10.200.4.0/24', oif: up0 });
    const reqs = Array.from({ length: 8 }, (_, i) => routeRequest('add', { dst: `10.200.${i}.0/24`, oif: up0 }));
    assert.throws(() => ns.nl.batch(reqs), (e) => {
      assert.ok(e instanceof NetlinkBatchError);
      assert.equal(e.code, 'WEFT_NETLINK');
      assert.deepEqual(e.failures.map((f) => [f.index, f.error.errnoName]), [[4, 'EEXIST']]);
      assert.match(e.message, /request #4 failed: add route 10\.200\.4\.0\/24/);
      return true;
    });
    assert.equal(ipj<IpRoute>(ns.name, 'route', 'show', 'dev', 'up0').filter((r) => r.dst.startsWith('10.200.')).length, 8);
  });

  test('ACKs that overflow the receive queue are reported, and the socket works afterwards', (t) => {
    const ns = newNs(t);
    const up0 = uplink(t, ns);
    // 10000 ACKs in one go exceed any receive queue the addon asks for (2 MiB at most).
    const sock = NetlinkSocket.over(countingTransport(ns.path, []), { maxPerSend: 10_000 });
    t.after(() => sock.close());
    const reqs = Array.from({ length: 10_000 }, (_, i) => routeRequest('add', { dst: `10.${100 + (i >> 8)}.${i & 0xff}.0/24`, oif: up0 }));
    assert.throws(() => sock.batch(reqs), (e) => isWeftError(e, 'WEFT_NETLINK') && /overflowed/.test((e as Error).message));
    sock.request(routeRequest('add', { dst: '10.250.0.0/24', oif: up0 }));
    // With the default chunking the same volume goes through.
    const more = Array.from({ length: 10_000 }, (_, i) => routeRequest('replace', { dst: `10.${100 + (i >> 8)}.${i & 0xff}.0/24`, oif: up0 }));
    ns.nl.batch(more);
    assert.equal(ns.nl.listRoutes({ oif: up0 }).filter((r) => r.scope === 'link' && r.protocol !== 2).length, 10_001);
  });

  test('vxlan: VNI, local IP, underlay, port and learning off, read back by us and by iproute2', (t) => {
    const ns = newNs(t);
    const up0 = uplink(t, ns);
    ns.nl.createVxlan({ name: 'weft.1', vni: 1, local: '10.50.0.1', underlay: up0, port: 8472, mtu: 1450, mac: '02:0f:00:00:00:01', up: true });
    const v = ns.nl.getLink('weft.1');
    assert.deepEqual([v?.kind, v?.mtu, v?.mac, v?.vxlan], ['vxlan', 1450, '02:0f:00:00:00:01', { vni: 1, local: '10.50.0.1', port: 8472, underlay: up0, learning: false }]);
    const d = ipj<IpLink>(ns.name, '-d', 'link', 'show', 'weft.1')[0]?.linkinfo?.info_data;
    assert.deepEqual([d?.id, d?.local, d?.link, d?.port, d?.learning], [1, '10.50.0.1', 'up0', 8472, false]);
  });

  test('neighbours and FDB entries on a vxlan device: set, dump, delete', (t) => {
    const ns = newNs(t);
    const up0 = uplink(t, ns);
    ns.nl.createVxlan({ name: 'weft.1', vni: 1, local: '10.50.0.1', underlay: up0, up: true });
    ns.nl.addAddress('weft.1', '10.244.1.0/32');
    const vx = ns.nl.linkIndex('weft.1');

    ns.nl.setNeighbour({ index: vx, ip: '10.244.2.0', mac: '0a:00:00:00:02:00' });
    ns.nl.setNeighbour({ index: vx, ip: '10.244.2.0', mac: '0a:00:00:00:02:01' }); // replace
    const n = ns.nl.listNeighbours({ index: vx, family: 4 });
    assert.deepEqual(n.map((x) => [x.ip, x.mac, x.state]), [['10.244.2.0', '0a:00:00:00:02:01', 0x80]]);
    const ipn = ipj<{ dst: string; lladdr: string; state: string[] }>(ns.name, 'neigh', 'show', 'dev', 'weft.1');
    assert.deepEqual(ipn.map((x) => [x.dst, x.lladdr, x.state]), [['10.244.2.0', '0a:00:00:00:02:01', ['PERMANENT']]]);

    ns.nl.setFdb({ index: vx, mac: '0a:00:00:00:02:01', dst: '10.50.0.2' });
    ns.nl.setFdb({ index: vx, mac: '0a:00:00:00:02:01', dst: '10.50.0.3' }); // replace moves it
    const f = ns.nl.listFdb({ index: vx }).filter((e) => e.mac === '0a:00:00:00:02:01');
    assert.deepEqual(f.map((e) => [e.dst, e.state]), [['10.50.0.3', 0x80]]);
    const bridgeFdb = JSON.parse(execFileSync('ip', ['netns', 'exec', ns.name, 'bridge', '-j', 'fdb', 'show', 'dev', 'weft.1'], { encoding: 'utf8' })) as { mac: string; dst?: string; flags: string[]; state: string }[];
    assert.deepEqual(bridgeFdb.filter((e) => e.mac === '0a:00:00:00:02:01').map((e) => [e.dst, e.flags, e.state]), [['10.50.0.3', ['self'], 'permanent']]);

    ns.nl.deleteFdb({ index: vx, mac: '0a:00:00:00:02:01', dst: '10.50.0.3' });
    ns.nl.deleteNeighbour({ index: vx, ip: '10.244.2.0' });
    assert.deepEqual(ns.nl.listFdb({ index: vx }).filter((e) => e.mac === '0a:00:00:00:02:01'), []);
    assert.deepEqual(ipj(ns.name, 'neigh', 'show', 'dev', 'weft.1'), []);
    assert.throws(() => ns.nl.deleteNeighbour({ index: vx, ip: '10.244.2.0' }), isNotFound);
  });
});

/** The addon's socket, counting send() calls (to prove a batch is one datagram). */
function countingTransport(netnsPath: string, sends: number[]): NetlinkTransport {
  const addon = native();
  const fd = addon.nlOpen(NETLINK_ROUTE, netnsPath);
  return {
    send(data) {
      sends.push(data.length);
      return addon.nlSend(fd, data);
    },
    recv: (into, timeoutMs) => addon.nlRecv(fd, into, timeoutMs),
    close: () => addon.close(fd),
  };
}

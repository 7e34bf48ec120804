// flannel.<VNI>: the adopt-or-recreate rule, the VTEP MAC choice and the MTU, against a
// recording fake of the few Rtnetlink calls the device code makes (no root needed).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../log/logger.ts';
import type { Link, Rtnetlink, VxlanSpec } from '../../netlink/index.ts';
import {
  chooseVtepMac, ensureVxlanDevice, previousVtepMac, randomVtepMac, usableVtepMac, vxlanIncompatibility, type VxlanDeviceSpec,
} from './device.ts';
import { VxlanBackend } from './backend.ts';

const SPEC: VxlanDeviceSpec = { name: 'flannel.1', vni: 1, local: '192.168.1.10', underlayIndex: 2, port: 8472, mtu: 1450, learning: false };

function vxlanLink(over: Partial<Link> = {}, info: Partial<NonNullable<Link['vxlan']>> = {}): Link {
  return {
    index: 5, name: 'flannel.1', mac: '0a:11:22:33:44:55', mtu: 1450, up: true, operUp: true, flags: 1, kind: 'vxlan',
    vxlan: { vni: 1, local: '192.168.1.10', port: 8472, underlay: 2, learning: false, ...info }, ...over,
  };
}

describe('vxlanIncompatibility', () => {
  test('a device as flanneld makes it is compatible', () => {
    assert.equal(vxlanIncompatibility(vxlanLink(), SPEC), undefined);
    assert.equal(vxlanIncompatibility(vxlanLink({}, { underlay: undefined }), SPEC), undefined, 'no underlay set: accepted, as flanneld does');
    assert.equal(vxlanIncompatibility(vxlanLink({}, { port: undefined }), SPEC), undefined, 'no port reported means the default 8472');
  });
  test('type, VNI, local, port, underlay and learning each make it incompatible, with the reason', () => {
    assert.match(vxlanIncompatibility(vxlanLink({ kind: 'bridge', vxlan: undefined }), SPEC)!, /it is a bridge device/);
    assert.match(vxlanIncompatibility(vxlanLink({}, { vni: 2 }), SPEC)!, /VNI is 2, not 1/);
    assert.match(vxlanIncompatibility(vxlanLink({}, { local: '192.168.1.99' }), SPEC)!, /local address is 192\.168\.1\.99, not 192\.168\.1\.10/);
    assert.match(vxlanIncompatibility(vxlanLink({}, { local: undefined }), SPEC)!, /local address is unset/);
    assert.match(vxlanIncompatibility(vxlanLink({}, { port: 4789 }), SPEC)!, /UDP port is 4789, not 8472/);
    assert.match(vxlanIncompatibility(vxlanLink({}, { underlay: 3 }), SPEC)!, /underlay is link #3, not #2/);
    assert.match(vxlanIncompatibility(vxlanLink({}, { learning: true }), SPEC)!, /learning is on, not off/);
  });
});

describe('VTEP MAC', () => {
  test('a random MAC is locally administered and unicast, as flanneld makes', () => {
    assert.equal(randomVtepMac(() => Buffer.from([0xff, 1, 2, 3, 4, 5])), 'fe:01:02:03:04:05');
    assert.equal(randomVtepMac(() => Buffer.from([0x00, 0xaa, 0xbb, 0xcc, 0xdd, 0xee])), '02:aa:bb:cc:dd:ee');
    for (let i = 0; i < 50; i++) {
      const first = parseInt(randomVtepMac().slice(0, 2), 16);
      assert.equal(first & 0x03, 0x02);
    }
  });
  test('the previous lease MAC is reused when usable; remembered beats previous beats random', () => {
    assert.equal(previousVtepMac({ VNI: 1, VtepMAC: 'C6:D2:32:6F:8F:44' }), 'c6:d2:32:6f:8f:44');
    assert.equal(previousVtepMac({ VtepMAC: '01:00:5e:00:00:01' }), undefined, 'multicast');
    assert.equal(previousVtepMac({ VtepMAC: '00:00:00:00:00:00' }), undefined);
    assert.equal(previousVtepMac(null), undefined);
    assert.equal(previousVtepMac('c6:d2:32:6f:8f:44'), undefined);
    assert.equal(usableVtepMac('c6:d2:32:6f:8f:4'), undefined);
    const random = (): Buffer => Buffer.from([2, 0, 0, 0, 0, 9]);
    assert.equal(chooseVtepMac('0a:00:00:00:00:01', { VtepMAC: '0a:00:00:00:00:02' }, random), '0a:00:00:00:00:01');
    assert.equal(chooseVtepMac(undefined, { VtepMAC: '0a:00:00:00:00:02' }, random), '0a:00:00:00:00:02');
    assert.equal(chooseVtepMac(undefined, undefined, random), '02:00:00:00:00:09');
  });
});

/** The Rtnetlink calls ensureVxlanDevice makes, over one optional link. */
function fakeNl(initial: Link | null, options: { macOnCreate?: string } = {}): { nl: Rtnetlink; calls: string[]; link: () => Link | null } {
  let link = initial;
  const calls: string[] = [];
  const fake = {
    getLink: () => link,
    deleteLink: (i: number) => { calls.push(`delete #${i}`); link = null; },
    createVxlan: (s: VxlanSpec) => {
      calls.push(`create ${s.name} vni ${s.vni} local ${s.local} dev #${s.underlay} port ${s.port} mtu ${s.mtu} mac ${s.mac} learning ${s.learning} up ${s.up}`);
      link = vxlanLink({ index: 9, mac: options.macOnCreate ?? s.mac, mtu: s.mtu ?? 1500 }, { vni: s.vni, local: s.local, underlay: s.underlay, port: s.port });
    },
    setMac: (i: number, mac: string) => { calls.push(`set #${i} mac ${mac}`); link = link && { ...link, mac }; },
    setMtu: (i: number, mtu: number) => { calls.push(`set #${i} mtu ${mtu}`); link = link && { ...link, mtu }; },
    setLinkUp: (i: number) => { calls.push(`set #${i} up`); link = link && { ...link, up: true }; },
  };
  return { nl: fake as unknown as Rtnetlink, calls, link: () => link };
}

describe('ensureVxlanDevice', () => {
  test('a compatible device is adopted as it is, MAC included: no change', () => {
    const f = fakeNl(vxlanLink());
    const { link, changes } = ensureVxlanDevice(f.nl, SPEC, '0a:99:99:99:99:99', silentLogger);
    assert.equal(changes, 0);
    assert.deepEqual(f.calls, []);
    assert.equal(link.mac, '0a:11:22:33:44:55');
  });
  test('once the lease announces a MAC, a device whose MAC was changed gets it back', () => {
    const f = fakeNl(vxlanLink());
    const { link, changes } = ensureVxlanDevice(f.nl, SPEC, '0a:99:99:99:99:99', silentLogger, true);
    assert.deepEqual(f.calls, ['set #5 mac 0a:99:99:99:99:99']);
    assert.deepEqual([link.mac, changes], ['0a:99:99:99:99:99', 1]);
  });
  test('an adopted device gets the right MTU and is brought up', () => {
    const f = fakeNl(vxlanLink({ mtu: 1500, up: false }));
    const { changes } = ensureVxlanDevice(f.nl, SPEC, '0a:99:99:99:99:99', silentLogger);
    assert.deepEqual(f.calls, ['set #5 mtu 1450', 'set #5 up']);
    assert.equal(changes, 2);
  });
  test('no device: created with learning off, the given MAC, the MTU, and up', () => {
    const f = fakeNl(null);
    const { link, changes } = ensureVxlanDevice(f.nl, SPEC, '0a:99:99:99:99:99', silentLogger);
    assert.deepEqual(f.calls, ['create flannel.1 vni 1 local 192.168.1.10 dev #2 port 8472 mtu 1450 mac 0a:99:99:99:99:99 learning false up true']);
    assert.equal(changes, 1);
    assert.equal(link.mac, '0a:99:99:99:99:99');
  });
  test('an incompatible device is deleted and recreated, and the reason logged', () => {
    const f = fakeNl(vxlanLink({}, { local: '10.0.0.1' }));
    const logged: string[] = [];
    const log = { ...silentLogger, warn: (_o: unknown, msg: string) => logged.push(msg), info: () => {} } as unknown as typeof silentLogger;
    const { changes } = ensureVxlanDevice(f.nl, SPEC, '0a:99:99:99:99:99', log);
    assert.equal(f.calls[0], 'delete #5');
    assert.match(f.calls[1]!, /^create flannel\.1 /);
    assert.equal(changes, 2);
    assert.match(logged[0]!, /deleting flannel\.1 to recreate it: its local address is 10\.0\.0\.1, not 192\.168\.1\.10/);
  });
  test('a MAC changed behind our back at creation (udev) is set back', () => {
    const f = fakeNl(null, { macOnCreate: '0a:00:00:00:00:77' });
    const { link, changes } = ensureVxlanDevice(f.nl, SPEC, '0a:99:99:99:99:99', silentLogger);
    assert.equal(f.calls[1], 'set #9 mac 0a:99:99:99:99:99');
    assert.equal(link.mac, '0a:99:99:99:99:99');
    assert.equal(changes, 2);
  });
});

describe('VxlanBackend configuration', () => {
  const node = { underlayInterface: 'eth0', underlayIndex: 2, underlayMtu: 1500, publicIp: '192.168.1.10' };
  const nl = {} as Rtnetlink;
  test('defaults: flannel.1, port 8472, MTU underlay − 50, learning off, DirectRouting off', () => {
    const b = new VxlanBackend(nl, node);
    assert.deepEqual(b.spec, { ...SPEC });
    assert.equal(b.directRouting, false);
    assert.equal(b.type, 'vxlan');
  });
  test('Backend.MTU is the underlay MTU to assume; VNI names the device; Port 0 is 8472', () => {
    const b = new VxlanBackend(nl, node, { vni: 42, port: 0, mtu: 9001 });
    assert.deepEqual([b.spec.name, b.spec.vni, b.spec.port, b.spec.mtu], ['flannel.42', 42, 8472, 8951]);
    assert.equal(new VxlanBackend(nl, node, { port: 4789 }).spec.port, 4789);
  });
  test('auto is vxlan with DirectRouting always on', () => {
    const b = new VxlanBackend(nl, node, { directRouting: false }, 'auto');
    assert.deepEqual([b.type, b.directRouting], ['auto', true]);
  });
  test('an MTU too small for pods, or a VNI out of range, is refused', () => {
    assert.throws(() => new VxlanBackend(nl, node, { mtu: 100 }), /leaves 50 for pods/);
    assert.throws(() => new VxlanBackend(nl, node, { vni: 1 << 24 }), /VNI 16777216 is not in 0-16777215/);
  });
  test('attach and reconcile before prepare are programming errors', () => {
    const b = new VxlanBackend(nl, node);
    assert.throws(() => b.attach('10.244.1.0/24'), /prepare\(\) must run before/);
  });
});

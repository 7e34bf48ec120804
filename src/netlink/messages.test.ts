// The request builders produce the kernel's layout (checked by decoding them field by field),
// and the decoders read kernel-shaped replies. No socket, no root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { addAddressRequest, decodeAddress } from './addr.ts';
import { attrString, attrU32, attrU8, NlWriter, parseAttrs, parseMessages, readI32, readU16, readU32, type Attrs, type NlMessage } from './codec.ts';
import {
  AF_BRIDGE, AF_INET, AF_INET6, IFA_ADDRESS, IFA_BROADCAST, IFA_F_NODAD, IFA_FLAGS, IFA_LABEL, IFA_LOCAL, IFF_UP,
  IFINFOMSG_LEN, IFLA_ADDRESS, IFLA_BRPORT_MODE, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_INFO_SLAVE_DATA,
  IFLA_INFO_SLAVE_KIND, IFLA_LINK, IFLA_LINK_NETNSID, IFLA_LINKINFO, IFLA_MASTER, IFLA_MTU, IFLA_NET_NS_FD,
  IFLA_OPERSTATE, IFLA_PROTINFO, IFLA_VXLAN_ID, IFLA_VXLAN_LEARNING, IFLA_VXLAN_LOCAL, IFLA_VXLAN_PORT,
  IF_OPER_UP, NDA_DST, NDA_LLADDR, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NTF_SELF, NUD_PERMANENT, RTA_DST,
  RTA_GATEWAY, RTA_METRICS, RTA_OIF, RTA_PRIORITY, RTA_TABLE, RTAX_MTU, RTM_DELROUTE, RTM_NEWADDR, RTM_NEWLINK,
  RTM_NEWNEIGH, RTM_NEWROUTE, RTM_SETLINK, RTNH_F_ONLINK, RT_SCOPE_LINK, RT_SCOPE_NOWHERE, RT_SCOPE_UNIVERSE,
  RTPROT_BOOT, VETH_INFO_PEER,
} from './constants.ts';
import { createBridgeRequest, createVethRequest, createVxlanRequest, decodeLink, setHairpinRequest, setLinkRequest } from './link.ts';
import { fdbRequest } from './neigh.ts';
import { decodeRoute, routeRequest } from './route.ts';
import type { NetlinkRequest } from './socket.ts';

/** Encodes a request as the socket would and returns its payload. */
function encode(req: NetlinkRequest): Buffer {
  const w = new NlWriter();
  const s = w.beginMessage(req.type, req.flags ?? 0, 1);
  req.write(w);
  w.endMessage(s);
  const [msg] = parseMessages(w.bytes());
  assert.ok(msg);
  return msg.data;
}

const get = (a: Attrs, type: number): Buffer => {
  const v = a.get(type);
  assert.ok(v, `attribute ${type} present`);
  return v;
};

test('createBridgeRequest: NEWLINK create|excl, name, MTU, MAC, up, kind bridge', () => {
  const req = createBridgeRequest({ name: 'cni0', mtu: 1450, mac: '02:00:00:aa:bb:cc', up: true });
  assert.equal(req.type, RTM_NEWLINK);
  assert.equal(req.flags, NLM_F_CREATE | NLM_F_EXCL);
  const d = encode(req);
  assert.deepEqual([readU32(d, 8), readU32(d, 12)], [IFF_UP, IFF_UP]); // ifi_flags, ifi_change
  const a = parseAttrs(d, IFINFOMSG_LEN);
  assert.equal(attrString(get(a, IFLA_IFNAME)), 'cni0');
  assert.equal(attrU32(get(a, IFLA_MTU)), 1450);
  assert.equal(get(a, IFLA_ADDRESS).toString('hex'), '020000aabbcc');
  assert.equal(attrString(get(parseAttrs(get(a, IFLA_LINKINFO)), IFLA_INFO_KIND)), 'bridge');
});

test('createVethRequest: the peer is an ifinfomsg plus attributes inside VETH_INFO_PEER, with the netns fd', () => {
  const d = encode(createVethRequest({
    name: 'veth1234', mtu: 1450, master: 7, peer: { name: 'eth0', mac: '02:00:00:00:00:09', netnsFd: 33 },
  }));
  const a = parseAttrs(d, IFINFOMSG_LEN);
  assert.equal(attrString(get(a, IFLA_IFNAME)), 'veth1234');
  assert.equal(attrU32(get(a, IFLA_MASTER)), 7);
  const info = parseAttrs(get(a, IFLA_LINKINFO));
  assert.equal(attrString(get(info, IFLA_INFO_KIND)), 'veth');
  const peer = get(parseAttrs(get(info, IFLA_INFO_DATA)), VETH_INFO_PEER);
  const pa = parseAttrs(peer, IFINFOMSG_LEN);
  assert.equal(attrString(get(pa, IFLA_IFNAME)), 'eth0');
  assert.equal(attrU32(get(pa, IFLA_MTU)), 1450, 'the peer inherits the MTU');
  assert.equal(get(pa, IFLA_ADDRESS).toString('hex'), '020000000009');
  assert.equal(attrU32(get(pa, IFLA_NET_NS_FD)), 33);
});

test('createVxlanRequest: VNI, local IP, port in network order, learning off', () => {
  const d = encode(createVxlanRequest({ name: 'weft.1', vni: 1, local: '192.168.1.5', port: 8472, underlay: 2 }));
  const info = parseAttrs(get(parseAttrs(d, IFINFOMSG_LEN), IFLA_LINKINFO));
  assert.equal(attrString(get(info, IFLA_INFO_KIND)), 'vxlan');
  const v = parseAttrs(get(info, IFLA_INFO_DATA));
  assert.equal(attrU32(get(v, IFLA_VXLAN_ID)), 1);
  assert.equal(get(v, IFLA_VXLAN_LOCAL).toString('hex'), 'c0a80105');
  assert.equal(get(v, IFLA_VXLAN_PORT).readUInt16BE(0), 8472);
  assert.equal(attrU8(get(v, IFLA_VXLAN_LEARNING)), 0);
});

test('setLinkRequest by name uses index 0 and IFLA_IFNAME; master null means "no master"', () => {
  const req = setLinkRequest('eth0', { up: false, master: null, mtu: 1400 });
  assert.equal(req.type, RTM_SETLINK);
  assert.match(req.what, /link eth0/);
  const d = encode(req);
  assert.deepEqual([readI32(d, 4), readU32(d, 8), readU32(d, 12)], [0, 0, IFF_UP]);
  const a = parseAttrs(d, IFINFOMSG_LEN);
  assert.equal(attrString(get(a, IFLA_IFNAME)), 'eth0');
  assert.equal(attrU32(get(a, IFLA_MASTER)), 0);
  assert.equal(attrU32(get(a, IFLA_MTU)), 1400);
});

test('setHairpinRequest: AF_BRIDGE, the port index, PROTINFO { BRPORT_MODE }', () => {
  const d = encode(setHairpinRequest(12, true));
  assert.deepEqual([d[0], readI32(d, 4)], [AF_BRIDGE, 12]);
  const p = parseAttrs(get(parseAttrs(d, IFINFOMSG_LEN), IFLA_PROTINFO));
  assert.equal(attrU8(get(p, IFLA_BRPORT_MODE)), 1);
});

test('a bad MAC is refused before anything is sent', () => {
  assert.throws(() => createBridgeRequest({ name: 'x', mac: 'nope' }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG'));
  assert.throws(() => createVethRequest({ name: 'x', peer: { name: 'y', mac: '1:2' } }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG'));
});

test('addAddressRequest: IPv4 gets local, address and broadcast; IPv6 NODAD goes in flags', () => {
  const v4 = encode(addAddressRequest(3, '10.1.2.3/24'));
  assert.deepEqual([v4[0], v4[1], readU32(v4, 4)], [AF_INET, 24, 3]);
  const a4 = parseAttrs(v4, 8);
  assert.equal(get(a4, IFA_LOCAL).toString('hex'), '0a010203');
  assert.equal(get(a4, IFA_ADDRESS).toString('hex'), '0a010203');
  assert.equal(get(a4, IFA_BROADCAST).toString('hex'), '0a0102ff');
  assert.equal(parseAttrs(encode(addAddressRequest(3, '10.1.2.3/31')), 8).has(IFA_BROADCAST), false);

  const req6 = addAddressRequest(3, 'fd00::5/64', { noDad: true, replace: true }, 'eth0');
  assert.equal(req6.flags, NLM_F_CREATE | NLM_F_REPLACE);
  assert.equal(req6.what, 'add address fd00::5/64 to link eth0');
  const v6 = encode(req6);
  assert.deepEqual([v6[0], v6[1], v6[2]], [AF_INET6, 64, IFA_F_NODAD]);
  const a6 = parseAttrs(v6, 8);
  assert.equal(attrU32(get(a6, IFA_FLAGS)), IFA_F_NODAD);
  assert.equal(a6.has(IFA_BROADCAST), false);
});

test('routeRequest add: defaults as iproute2 (boot protocol, scope from gateway), table, onlink, metrics', () => {
  const d = encode(routeRequest('add', { dst: '10.2.0.0/16', gateway: '10.1.0.1', oif: 4, onlink: true, priority: 10, mtu: 1400 }));
  // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
  assert.deepEqual([...d.subarray(0, 8)], [AF_INET, 16, 0, 0, 254, RTPROT_BOOT, RT_SCOPE_UNIVERSE, 1]);
  assert.equal(readU32(d, 8), RTNH_F_ONLINK);
  const a = parseAttrs(d, 12);
  assert.equal(get(a, RTA_DST).toString('hex'), '0a020000');
  assert.equal(get(a, RTA_GATEWAY).toString('hex'), '0a010001');
  assert.equal(attrU32(get(a, RTA_OIF)), 4);
  assert.equal(attrU32(get(a, RTA_PRIORITY)), 10);
  assert.equal(attrU32(get(a, RTA_TABLE)), 254);
  assert.equal(attrU32(get(parseAttrs(get(a, RTA_METRICS)), RTAX_MTU)), 1400);

  const link = encode(routeRequest('add', { dst: 'fd00:1::/64', oif: 4 }));
  assert.deepEqual([link[0], link[1], link[6]], [AF_INET6, 64, RT_SCOPE_LINK]);
});

test('routeRequest: default routes, big table ids, and deletes that match anything unspecified', () => {
  const def = encode(routeRequest('replace', { dst: 'default', gateway: 'fd00::1' }));
  assert.deepEqual([def[0], def[1]], [AF_INET6, 0]);
  assert.equal(parseAttrs(def, 12).has(RTA_DST), false);

  const big = encode(routeRequest('add', { dst: '10.0.0.0/8', oif: 1, table: 1000 }));
  assert.equal(big[4], 0);
  assert.equal(attrU32(get(parseAttrs(big, 12), RTA_TABLE)), 1000);

  const del = routeRequest('delete', { dst: '10.0.0.0/8' });
  assert.equal(del.type, RTM_DELROUTE);
  const dd = encode(del);
  assert.deepEqual([dd[5], dd[6], dd[7]], [0, RT_SCOPE_NOWHERE, 0]); // any protocol, scope, type
});

test('routeRequest refuses mixed families and a default route of unknown family', () => {
  assert.throws(() => routeRequest('add', { dst: '10.0.0.0/8', gateway: 'fd00::1' }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /gateway is not IPv4/.test((e as Error).message));
  assert.throws(() => routeRequest('add', { dst: 'default', oif: 2 }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /family/.test((e as Error).message));
  assert.doesNotThrow(() => routeRequest('add', { dst: 'default', family: 4, oif: 2 }));
});

test('fdbRequest: AF_BRIDGE, NTF_SELF, permanent, MAC and remote IP', () => {
  const req = fdbRequest('replace', { index: 5, mac: '0a:0b:0c:0d:0e:0f', dst: '192.168.1.9' });
  assert.equal(req.type, RTM_NEWNEIGH);
  const d = encode(req);
  assert.deepEqual([d[0], readI32(d, 4), readU16(d, 8), d[10]], [AF_BRIDGE, 5, NUD_PERMANENT, NTF_SELF]);
  const a = parseAttrs(d, 12);
  assert.equal(get(a, NDA_LLADDR).toString('hex'), '0a0b0c0d0e0f');
  assert.equal(get(a, NDA_DST).toString('hex'), 'c0a80109');
});

/** Builds a kernel-shaped reply message. */
function reply(type: number, body: (w: NlWriter) => void): NlMessage {
  const w = new NlWriter();
  const s = w.beginMessage(type, 0, 1);
  body(w);
  w.endMessage(s);
  const [msg] = parseMessages(Buffer.from(w.bytes()));
  assert.ok(msg);
  return msg;
}

test('decodeLink reads index, name, MAC, MTU, flags, master, kind, peer, netns id and hairpin', () => {
  const msg = reply(RTM_NEWLINK, (w) => {
    w.u8(0); w.u8(0); w.u16(1); w.i32(9); w.u32(IFF_UP | 0x1000); w.u32(0);
    w.attrString(IFLA_IFNAME, 'veth9');
    w.attrBytes(IFLA_ADDRESS, Buffer.from('02aabbccddee', 'hex'));
    w.attrU32(IFLA_MTU, 1450);
    w.attrU32(IFLA_MASTER, 3);
    w.attrU32(IFLA_LINK, 2);
    w.attrI32(IFLA_LINK_NETNSID, 0);
    w.attrU8(IFLA_OPERSTATE, IF_OPER_UP);
    const li = w.beginNest(IFLA_LINKINFO);
    w.attrString(IFLA_INFO_KIND, 'veth');
    w.attrString(IFLA_INFO_SLAVE_KIND, 'bridge');
    const sd = w.beginNest(IFLA_INFO_SLAVE_DATA);
    w.attrU8(IFLA_BRPORT_MODE, 1);
    w.endNest(sd);
    w.endNest(li);
  });
  assert.deepEqual(decodeLink(msg), {
    index: 9, name: 'veth9', mac: '02:aa:bb:cc:dd:ee', mtu: 1450, up: true, operUp: true, flags: IFF_UP | 0x1000,
    master: 3, peerIndex: 2, netnsId: 0, kind: 'veth', hairpin: true,
  });
});

test('decodeLink refuses a message shorter than ifinfomsg, and skips other types', () => {
  assert.throws(() => decodeLink(reply(RTM_NEWLINK, (w) => w.u32(1))), (e) => isWeftError(e, 'WEFT_DECODE'));
  assert.equal(decodeLink(reply(RTM_NEWADDR, (w) => w.u32(1))), undefined);
});

test('decodeAddress prefers IFA_LOCAL and takes flags from IFA_FLAGS', () => {
  const msg = reply(RTM_NEWADDR, (w) => {
    w.u8(AF_INET); w.u8(24); w.u8(0x80); w.u8(0); w.u32(4);
    w.attrBytes(IFA_ADDRESS, Buffer.from([10, 9, 9, 9]));
    w.attrBytes(IFA_LOCAL, Buffer.from([10, 1, 2, 3]));
    w.attrString(IFA_LABEL, 'eth0');
    w.attrU32(IFA_FLAGS, 0x280);
  });
  assert.deepEqual(decodeAddress(msg), { index: 4, family: 4, address: '10.1.2.3', prefixLen: 24, cidr: '10.1.2.3/24', scope: 0, flags: 0x280, label: 'eth0' });
});

test('decodeRoute: a default route has dst 0.0.0.0/0; scope and type by name', () => {
  const msg = reply(RTM_NEWROUTE, (w) => {
    for (const b of [AF_INET, 0, 0, 0, 254, RTPROT_BOOT, RT_SCOPE_UNIVERSE, 1]) w.u8(b);
    w.u32(RTNH_F_ONLINK);
    w.attrU32(RTA_TABLE, 254);
    w.attrBytes(RTA_GATEWAY, Buffer.from([10, 0, 0, 1]));
    w.attrU32(RTA_OIF, 2);
  });
  assert.deepEqual(decodeRoute(msg), {
    family: 4, dst: '0.0.0.0/0', scope: 'universe', onlink: true, protocol: RTPROT_BOOT, table: 254, type: 'unicast',
    flags: RTNH_F_ONLINK, gateway: '10.0.0.1', oif: 2,
  });
});

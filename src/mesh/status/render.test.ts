import { test } from 'node:test';
import assert from 'node:assert/strict';
import { percentOf, renderConnections, renderIpam, renderPeers, renderRmpeer, renderStatus, renderTargets } from './render.ts';
import type { MeshPeerStatus, MeshStatus } from './types.ts';

const a = { name: '5a:1e:c3:77:20:9b', nickname: 'node-a' };
const b = { name: '6e:0b:4c:2d:91:aa', nickname: 'node-b' };
const c = { name: '1a:33:9f:00:12:c4', nickname: 'node-c' };

const fullMesh: MeshPeerStatus[] = [
  { ...a, self: true, reachable: true, connections: [
    { direction: 'outbound', address: '10.0.0.12:6783', peer: b, state: 'established' },
    { direction: 'inbound', address: '10.0.0.13:41872', peer: c, state: 'established' },
  ] },
  { ...b, self: false, reachable: true, connections: [
    { direction: 'inbound', address: '10.0.0.11:50312', peer: a, state: 'established' },
    { direction: 'outbound', address: '10.0.0.13:6783', peer: c, state: 'established' },
  ] },
  { ...c, self: false, reachable: true, connections: [
    { direction: 'outbound', address: '10.0.0.11:6783', peer: a, state: 'established' },
    { direction: 'inbound', address: '10.0.0.12:39101', peer: b, state: 'established' },
  ] },
];

/** The 3-node, unencrypted cluster of Weave's documented example, as weft reports it. */
function threeNodes(): MeshStatus {
  return {
    version: '0.1.0', protocol: { min: 1, max: 2 }, ...a, encryption: false, peerDiscovery: true,
    targets: ['10.0.0.12', '10.0.0.13'],
    connections: [
      { direction: 'outbound', address: '10.0.0.12:6783', state: 'established', peer: b, encrypted: false, attrs: { mtu: '1376' } },
      { direction: 'inbound', address: '10.0.0.13:41872', state: 'established', peer: c, encrypted: false, attrs: { mtu: '1376' } },
    ],
    peers: fullMesh,
    trustedSubnets: [],
    ipam: {
      status: 'ready', range: '10.32.0.0/12', defaultSubnet: '10.32.0.0/12', blockPrefix: 26, ringId: '0123456789abcdef0123456789abcdef',
      owners: [
        { ...b, addresses: 262144, self: false, reachable: true },
        { ...a, addresses: 524288, self: true, reachable: true, active: 7 },
        { ...c, addresses: 262144, self: false, reachable: false },
      ],
      blocksOwned: 8192, blocksFree: 0,
    },
    dataPlaneEncrypted: false,
  };
}

test("weft status: Weave's layout (colons in column 16, blank line before and after), with weft's own lines", () => {
  assert.equal(renderStatus(threeNodes()), `
        Version: 0.1.0 (version check update disabled)

        Service: router
       Protocol: weft 1..2
           Name: 5a:1e:c3:77:20:9b(node-a)
     Encryption: disabled (control plane in plaintext)
      DataPlane: vxlan (UDP 6784), not encrypted
  PeerDiscovery: enabled
        Targets: 2
    Connections: 2 (2 established)
          Peers: 3 (with 6 established connections)
 TrustedSubnets: none

        Service: ipam
         Status: ready
          Range: 10.32.0.0/12
  DefaultSubnet: 10.32.0.0/12
         Blocks: 8192 owned, 0 free (/26)

`);
  for (const line of renderStatus(threeNodes()).split('\n')) if (line !== '') assert.equal(line.indexOf(':'), 15, line);
});

test('status: one protocol version, encryption on, a lone node without connections, trusted subnets', () => {
  const s: MeshStatus = {
    ...threeNodes(), protocol: { min: 1, max: 1 }, encryption: true, peerDiscovery: false, targets: [], connections: [],
    peers: [{ ...a, self: true, reachable: true, connections: [] }], trustedSubnets: ['10.1.0.0/16', '192.168.0.0/24'],
    ipam: { ...threeNodes().ipam, status: 'awaiting consensus (quorum: 2, known: 1)', ringId: null, owners: [], blocksOwned: 0, blocksFree: 16384 },
  };
  const text = renderStatus(s);
  assert.match(text, /^ {7}Protocol: weft 1$/m);
  assert.match(text, /^ {5}Encryption: enabled \(control plane only\)\n {6}DataPlane: vxlan \(UDP 6784\), not encrypted$/m);
  assert.match(text, /^ {2}PeerDiscovery: disabled$/m);
  assert.match(text, /^ {8}Targets: 0$/m);
  assert.match(text, /^ {4}Connections: 0$/m);
  assert.match(text, /^ {10}Peers: 1$/m);
  assert.match(text, /^ TrustedSubnets: 10\.1\.0\.0\/16, 192\.168\.0\.0\/24$/m);
  assert.match(text, /^ {9}Status: awaiting consensus \(quorum: 2, known: 1\)$/m);
  assert.match(text, /^ {9}Blocks: 0 owned, 16384 free \(\/26\)$/m);
});

test('connections count: every category in the fixed order, only those that occur; peers count pending too', () => {
  const s = threeNodes();
  const failing = (state: 'retrying' | 'failed' | 'connecting', n: number) =>
    Array.from({ length: n }, (_, i) => ({ direction: 'outbound' as const, address: `10.0.1.${i}:6783`, state }));
  s.connections = [...failing('connecting', 1), ...failing('failed', 2), ...s.connections, ...failing('retrying', 3),
    { direction: 'inbound', address: '10.0.0.14:52210', state: 'pending', peer: c }];
  s.peers = [...fullMesh, { name: 'aa:aa:aa:aa:aa:aa', nickname: 'node-d', self: false, reachable: true, connections: [
    { direction: 'outbound', address: '10.0.0.11:6783', peer: a, state: 'pending' },
  ] }];
  const text = renderStatus(s);
  assert.match(text, /^ {4}Connections: 9 \(2 established, 1 pending, 3 retrying, 2 failed, 1 connecting\)$/m);
  assert.match(text, /^ {10}Peers: 4 \(with 6 established, 1 pending connections\)$/m);
  s.connections = failing('failed', 1);
  s.peers = [{ ...a, self: true, reachable: true, connections: [] }, { ...b, self: false, reachable: false, connections: [
    { direction: 'inbound', address: '10.0.0.11:1', peer: a, state: 'pending' },
  ] }];
  const again = renderStatus(s);
  assert.match(again, /^ {4}Connections: 1 \(1 failed\)$/m);
  assert.match(again, /^ {10}Peers: 2 \(with 1 pending connections\)$/m);
});

test("status connections: Weave's columns, attributes sorted and separated by spaces", () => {
  const s = threeNodes();
  s.connections = [
    ...s.connections,
    { direction: 'inbound', address: '10.0.0.14:52210', state: 'pending', peer: { name: '3e:aa:10:02:7b:01', nickname: 'node-d' } },
    { direction: 'outbound', address: '10.0.0.15:6783', state: 'retrying', info: 'dial tcp4 10.0.0.15:6783: connect: no route to host', retry: '2026-01-01T00:00:05.000Z' },
    { direction: 'outbound', address: '10.0.0.16:6783', state: 'failed', info: 'local "5a:1e:…(node-a)" and remote "5a:1e:…(node-e)" peer names collision', retry: null },
    { direction: 'outbound', address: '10.0.0.18:6783', state: 'failed', info: 'password mismatch', retry: '2026-01-01T00:01:00.000Z' },
    { direction: 'outbound', address: '10.0.0.17:6783', state: 'connecting' },
    { direction: 'outbound', address: '10.0.0.19:6783', state: 'established', peer: c, attrs: { name: 'x', mtu: '8192', encrypted: 'true' } },
  ];
  assert.equal(renderConnections(s), `\
-> 10.0.0.12:6783        established vxlan  6e:0b:4c:2d:91:aa(node-b) mtu=1376
<- 10.0.0.13:41872       established vxlan  1a:33:9f:00:12:c4(node-c) mtu=1376
<- 10.0.0.14:52210       pending     vxlan  3e:aa:10:02:7b:01(node-d)
-> 10.0.0.15:6783        retrying    dial tcp4 10.0.0.15:6783: connect: no route to host
-> 10.0.0.16:6783        failed      local "5a:1e:…(node-a)" and remote "5a:1e:…(node-e)" peer names collision, retry: never
-> 10.0.0.18:6783        failed      password mismatch, retry: 2026-01-01T00:01:00.000Z
-> 10.0.0.17:6783        connecting
-> 10.0.0.19:6783        established vxlan  1a:33:9f:00:12:c4(node-c) encrypted=true mtu=8192
`);
});

test('status connections with a password: each live connection says whether it is encrypted', () => {
  const s = threeNodes();
  s.encryption = true;
  s.connections = [
    { direction: 'outbound', address: '10.0.0.12:6783', state: 'established', peer: b, encrypted: true },
    { direction: 'inbound', address: '10.0.0.14:52210', state: 'pending', peer: c, encrypted: false },
    { direction: 'outbound', address: '10.0.0.15:6783', state: 'failed', retry: null },
  ];
  assert.equal(renderConnections(s), `\
-> 10.0.0.12:6783        established encrypted   vxlan  6e:0b:4c:2d:91:aa(node-b)
<- 10.0.0.14:52210       pending     unencrypted vxlan  1a:33:9f:00:12:c4(node-c)
-> 10.0.0.15:6783        failed      retry: never
`);
});

test("status peers: Weave's documented example, self first", () => {
  const s = threeNodes();
  s.peers = [fullMesh[1]!, fullMesh[0]!, fullMesh[2]!];
  assert.equal(renderPeers(s), `\
5a:1e:c3:77:20:9b(node-a)
   -> 10.0.0.12:6783        6e:0b:4c:2d:91:aa(node-b)             established
   <- 10.0.0.13:41872       1a:33:9f:00:12:c4(node-c)             established
6e:0b:4c:2d:91:aa(node-b)
   <- 10.0.0.11:50312       5a:1e:c3:77:20:9b(node-a)             established
   -> 10.0.0.13:6783        1a:33:9f:00:12:c4(node-c)             established
1a:33:9f:00:12:c4(node-c)
   -> 10.0.0.11:6783        5a:1e:c3:77:20:9b(node-a)             established
   <- 10.0.0.12:39101       6e:0b:4c:2d:91:aa(node-b)             established
`);
  assert.equal(renderPeers({ ...s, peers: [{ ...a, self: true, reachable: true, connections: [] }] }), '5a:1e:c3:77:20:9b(node-a)\n');
});

test("status ipam: Weave's documented example: self first with its active count, unreachable owners flagged", () => {
  assert.equal(renderIpam(threeNodes()), `\
5a:1e:c3:77:20:9b(node-a)               524288 IPs (50.0% of total) (7 active)
6e:0b:4c:2d:91:aa(node-b)               262144 IPs (25.0% of total) 
1a:33:9f:00:12:c4(node-c)               262144 IPs (25.0% of total) - unreachable!
`);
});

test('status ipam: empty before the block map exists; small shares zero-padded', () => {
  const s = threeNodes();
  assert.equal(renderIpam({ ...s, ipam: { ...s.ipam, ringId: null } }), '');
  assert.equal(renderIpam({ ...s, ipam: { ...s.ipam, owners: [] } }), '');
  s.ipam.owners = [{ ...a, addresses: 64, self: true, reachable: true }, { ...b, addresses: 65536, self: false, reachable: true }];
  assert.equal(renderIpam(s), `\
5a:1e:c3:77:20:9b(node-a)                   64 IPs (00.0% of total) (0 active)
6e:0b:4c:2d:91:aa(node-b)                65536 IPs (06.2% of total) 
`);
});

test("percentages as Go's %04.1f prints them: exact halves to even, no float error", () => {
  assert.equal(percentOf(65536, 1 << 20), '06.2'); // 6.25
  assert.equal(percentOf(3, 16), '18.8'); // 18.75
  assert.equal(percentOf(1, 3), '33.3');
  assert.equal(percentOf(2, 3), '66.7');
  assert.equal(percentOf(1 << 20, 1 << 20), '100.0');
  assert.equal(percentOf(0, 1 << 20), '00.0');
  assert.equal(percentOf(5, 0), '00.0');
  assert.equal(percentOf(2 ** 32 - 1, 2 ** 32), '100.0');
});

test('status targets: one per line; nothing when there are none', () => {
  assert.equal(renderTargets(threeNodes()), '10.0.0.12\n10.0.0.13\n');
  assert.equal(renderTargets({ ...threeNodes(), targets: [] }), '');
  assert.equal(renderConnections({ ...threeNodes(), connections: [] }), '');
});

test("a peer's name cannot put terminal controls on the screen", () => {
  const s = threeNodes();
  const evil = { name: 'aa:bb:cc:dd:ee:ff', nickname: 'x\u001b[2J\u202e\ny' };
  s.peers = [{ ...evil, self: true, reachable: true, connections: [] }];
  s.ipam.owners = [{ ...evil, addresses: 1, self: false, reachable: true }];
  s.connections = [{ direction: 'inbound', address: '1.2.3.4:5\r', state: 'failed', info: 'bad\u0007', attrs: { mtu: '1\n' } }];
  for (const text of [renderPeers(s), renderIpam(s), renderConnections(s), renderStatus({ ...s, ...evil })]) {
    assert.doesNotMatch(text.replace(/\n/g, ''), /[\p{Cc}\u202e]/u, text);
    assert.ok(text.includes('x?[2J??y') || text.includes('bad?'), text);
  }
});

test("rmpeer's line, as Weave prints it", () => {
  assert.equal(renderRmpeer({ addresses: 524288, peer: '1a:33:9f:00:12:c4(node-c)' }), '524288 IPs taken over from 1a:33:9f:00:12:c4(node-c)\n');
  assert.equal(renderRmpeer({ addresses: 0, peer: 'x(\u001b)' }), '0 IPs taken over from x(?)\n');
});

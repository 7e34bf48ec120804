import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatCidr, parseCidr } from '../../net/cidr.ts';
import { parseNetworkConfig } from '../../lease/network-config.ts';
import { candidateOrder, claimLease, claimName, readClaim, SUBNET_ANNOTATION } from './claims.ts';
import { kubeView, announcementAnnotations } from './peers.ts';

const range = parseNetworkConfig(JSON.stringify({ Network: '10.244.0.0/16', Backend: { Type: 'vxlan' } })).ipv4!;
const owner = { name: 'node-a', uid: 'uid-a' };

test('a claim is a Lease named after its subnet, held by and owned by its Node, and reads back as the same claim', () => {
  const lease = claimLease('weft', parseCidr('10.244.3.0/24'), owner);
  assert.equal(lease.metadata?.name, 'subnet-10-244-3-0-24');
  assert.equal(claimName(parseCidr('10.244.3.0/24')), 'subnet-10-244-3-0-24');
  assert.deepEqual(lease.metadata?.ownerReferences, [{ apiVersion: 'v1', kind: 'Node', name: 'node-a', uid: 'uid-a', blockOwnerDeletion: false }]);
  const read = readClaim({ ...lease, metadata: { ...lease.metadata, uid: 'lease-1' } }, range);
  assert.ok(read.ok);
  assert.equal(formatCidr(read.claim.subnet), '10.244.3.0/24');
  assert.deepEqual([read.claim.holder, read.claim.ownerUid, read.claim.uid], ['node-a', 'uid-a', 'lease-1']);
});

test('claims that do not add up are refused with the reason: outside the Network, wrong size, name mismatch, no owner', () => {
  const tamper = (subnet: string, f: (l: ReturnType<typeof claimLease>) => void = () => undefined) => {
    const l = claimLease('weft', parseCidr('10.244.3.0/24'), owner);
    l.metadata!.annotations![SUBNET_ANNOTATION] = subnet;
    l.metadata!.name = `subnet-${subnet.replace(/[./]/g, '-')}`;
    f(l);
    return readClaim(l, range);
  };
  const reason = (r: ReturnType<typeof readClaim>) => (r.ok ? 'ok' : r.reason);
  assert.match(reason(tamper('10.200.3.0/24')), /outside the cluster Network 10\.244\.0\.0\/16/);
  assert.match(reason(tamper('10.244.0.0/20')), /not a \/24/);
  assert.match(reason(tamper('10.244.3.1/24')), /not an IPv4 CIDR/);
  assert.match(reason(tamper('10.244.4.0/24', (l) => { l.metadata!.name = 'subnet-10-244-5-0-24'; })), /name does not match/);
  assert.match(reason(tamper('10.244.4.0/24', (l) => { l.metadata!.ownerReferences = []; })), /not owned by its holder's Node/);
  assert.match(reason(tamper('10.244.4.0/24', (l) => { l.spec = {}; })), /no holder/);
  assert.match(reason(tamper('x'.repeat(100))), /no weft\.dev\/subnet annotation/);
});

test('candidates: the previous subnet first, then the free list rotated by node name (racing nodes diverge)', () => {
  const free = ['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24', '10.244.4.0/24'].map(parseCidr);
  const a = candidateOrder(free, 'node-a', undefined).map(formatCidr);
  assert.deepEqual([...a].sort(), free.map(formatCidr));
  const starts = new Set(['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8'].map((n) => formatCidr(candidateOrder(free, n, undefined)[0]!)));
  assert.ok(starts.size > 1, 'different nodes start at different subnets');
  assert.equal(formatCidr(candidateOrder(free, 'node-a', parseCidr('10.244.3.0/24'))[0]!), '10.244.3.0/24');
  assert.deepEqual(candidateOrder([], 'node-a', undefined), []);
});

test('the view: peers from Nodes with annotations and a claim they own; bad ones refused by name; orphans found', () => {
  const node = (name: string, uid: string, ip: string | undefined, extra: Record<string, string> = {}) => ({
    metadata: { name, uid, annotations: { ...(ip ? announcementAnnotations('flannel.alpha.coreos.com', { publicIp: ip, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: '02:00:00:00:00:01' } }) : {}), ...extra } },
  });
  const claim = (subnet: string, name: string, uid: string) => claimLease('weft', parseCidr(subnet), { name, uid });
  const view = kubeView({
    self: 'me', range, annotationPrefix: 'flannel.alpha.coreos.com',
    nodes: [
      node('me', 'u-me', '192.0.2.1'),
      node('b', 'u-b', '192.0.2.2'),
      node('c', 'u-c', '127.0.0.1'),
      node('d', 'u-d', '192.0.2.4', { 'flannel.alpha.coreos.com/backend-data': '{not json' }),
      node('e', 'u-e', undefined),
      { metadata: { name: 'f', uid: 'u-f', annotations: node('f', 'u-f', '192.0.2.6').metadata.annotations }, spec: { podCIDR: '10.244.200.0/24' } },
    ],
    claims: [claim('10.244.1.0/24', 'me', 'u-me'), claim('10.244.2.0/24', 'b', 'u-b'), claim('10.244.3.0/24', 'c', 'u-c'),
      claim('10.244.4.0/24', 'd', 'u-d'), claim('10.244.5.0/24', 'e', 'u-e'), claim('10.244.9.0/24', 'gone', 'u-gone'),
      claim('10.244.6.0/24', 'b', 'u-old-b')],
  });
  assert.deepEqual(view.snapshot.peers.map((p) => [p.id, p.subnets[0], p.publicIp]), [['b', '10.244.2.0/24', '192.0.2.2'], ['f', '10.244.200.0/24', '192.0.2.6']]);
  assert.deepEqual(view.snapshot.peers[0]!.backendData, { VNI: 1, VtepMAC: '02:00:00:00:00:01' });
  const rejected = Object.fromEntries(view.snapshot.rejected.map((r) => [r.key, r.reason]));
  assert.match(rejected['c (10.244.3.0/24)'] ?? '', /loopback/);
  assert.match(rejected['d (10.244.4.0/24)'] ?? '', /not JSON/);
  assert.equal(Object.keys(rejected).length, 2, JSON.stringify(rejected));
  assert.deepEqual(view.orphans.map((o) => o.name).sort(), ['subnet-10-244-6-0-24', 'subnet-10-244-9-0-24']);
});

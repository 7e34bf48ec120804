// Interop with flanneld (root only): a weft cluster (`weft lab --store etcd`, vxlan) plus one
// node run "by flanneld". No flanneld binary is available on this machine (it is Go, and there
// is neither a Go toolchain nor a module proxy here), so that node is simulated exactly as
// flanneld's etcd mode and vxlan backend set a node up: its lease written to etcd in
// flanneld's JSON with a TTL, flannel.1 created as flanneld creates it, and per weft node the
// neighbour, FDB entry and onlink route flanneld programs from that node's lease. A pod sits
// behind it on a bridge with the subnet's .1, as the bridge CNI plugin would attach it. The
// extra node and its pod use the lab's namespace names (n3, n3-p1), so `lab down` removes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createNetns } from '../../src/lab/netns.ts';
import { calcTopology } from '../../src/lab/topology.ts';
import { setupNodeUplink } from '../../src/lab/underlay.ts';
import {
  etcdctl, inNs, labPrerequisiteProblem, pingCount, startTestLab, status, subnetLeases, tracesOf, vxlanDevice, vxlanPeerEntries, waitFor, waitPingable,
} from './support/lab-harness.ts';

const skip = await labPrerequisiteProblem();

test('interop: a flanneld-style node (its lease in flanneld\'s JSON, flannel.1 and peers programmed as flanneld does) and weft nodes reach each other\'s pods both ways', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 2, podsPerNode: 1, prefix: 'i' });
  const leases = await subnetLeases(lab);
  assert.equal(leases.length, 2);
  // weft's leases are flanneld's: exactly the fields flanneld's LeaseAttrs marshals, in its order.
  for (const l of leases) {
    assert.deepEqual(Object.keys(l.value), ['PublicIP', 'PublicIPv6', 'BackendType', 'BackendData'], l.raw);
    assert.deepEqual(Object.keys(l.value.BackendData ?? {}), ['VNI', 'VtepMAC'], l.raw);
    assert.equal(l.value.PublicIPv6, null);
  }

  // The flanneld node: n3 of a 3-node plan (zone a, 172.31.1.13), with an unleased subnet.
  const plan = calcTopology({ name: lab.name, nodes: 3, podsPerNode: 1, labDir: lab.dir, zones: 2, store: 'etcd' }).nodes[2];
  assert.ok(plan);
  const taken = new Set(leases.map((l) => l.subnet));
  const third = [250, 249, 248].find((i) => !taken.has(`10.16.${i}.0/24`));
  const subnet = `10.16.${third}.0/24`;
  const base = `10.16.${third}`;
  const ns = plan.ns;
  const podNs = plan.pods[0]?.ns ?? '';
  await setupNodeUplink(lab.state.topology, plan, async () => {});
  const ip = (...args: string[]): Promise<string> => inNs(ns, ['ip', ...args]);
  await inNs(ns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  // flanneld's vxlan backend: flannel.<VNI> on the external interface, learning off, port 8472,
  // MTU = the interface's - 50, the subnet's network address as a /32.
  await ip('link', 'add', 'flannel.1', 'type', 'vxlan', 'id', '1', 'dev', 'eth0', 'local', plan.address, 'dstport', '8472', 'nolearning');
  await ip('link', 'set', 'flannel.1', 'mtu', '1450', 'up');
  await ip('addr', 'add', `${base}.0/32`, 'dev', 'flannel.1');
  const mac = (await vxlanDevice(ns))?.mac;
  assert.ok(mac);
  // Its pod, attached as the bridge plugin would with flannel's subnet.env: cni0 holds .1.
  await createNetns(podNs);
  await ip('link', 'add', 'cni0', 'type', 'bridge');
  await ip('addr', 'add', `${base}.1/24`, 'dev', 'cni0');
  await ip('link', 'set', 'cni0', 'up');
  await ip('link', 'add', 'veth-p1', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', '1450', 'netns', podNs);
  await ip('link', 'set', 'veth-p1', 'master', 'cni0', 'up');
  await inNs(podNs, ['ip', 'addr', 'add', `${base}.2/24`, 'dev', 'eth0']);
  await inNs(podNs, ['ip', 'link', 'set', 'eth0', 'up']);
  await inNs(podNs, ['ip', 'route', 'add', 'default', 'via', `${base}.1`]);

  // Its lease, as flanneld (v3 API) writes it: a granted lease with a TTL and this exact JSON.
  const value = `{"PublicIP":"${plan.address}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;
  const grant = /^lease ([0-9a-f]+) granted/.exec(await etcdctl(lab, ['lease', 'grant', '86400']))?.[1];
  assert.ok(grant);
  await etcdctl(lab, ['put', `--lease=${grant}`, `/coreos.com/network/subnets/${subnet.replace('/', '-')}`, value]);

  // And what flanneld programs for each vxlan peer it reads from etcd: neighbour, FDB entry, onlink route.
  for (const l of await subnetLeases(lab)) {
    if (l.subnet === subnet || l.value.BackendType !== 'vxlan') continue;
    const gw = l.subnet.split('/')[0] ?? '';
    const peerMac = l.value.BackendData?.VtepMAC ?? '';
    await ip('neigh', 'replace', gw, 'lladdr', peerMac, 'dev', 'flannel.1', 'nud', 'permanent');
    await inNs(ns, ['bridge', 'fdb', 'replace', peerMac, 'dev', 'flannel.1', 'dst', l.value.PublicIP ?? '', 'self', 'permanent']);
    await ip('route', 'replace', l.subnet, 'via', gw, 'dev', 'flannel.1', 'onlink');
  }

  // The weft agents take the flanneld node as a peer like any other.
  const fake = { subnet, vtepMac: mac, publicIp: plan.address };
  for (const n of ['n1', 'n2']) {
    await waitFor(`${n}'s agent to program the flanneld node`, async () => {
      const s = await status(lab, n);
      const p = s?.peers.find((x) => x.subnet === subnet);
      return p?.path === 'vxlan' && p.publicIp === plan.address && p.backendType === 'vxlan';
    });
    assert.deepEqual(await vxlanPeerEntries(lab.node(n).ns, fake), { route: true, neighbour: true, fdb: true }, `${n}'s entries toward the flanneld node`);
  }

  // Pods, both ways.
  const flannelPod = `${base}.2`;
  for (const [from, to] of [
    [`weft-${lab.name}-n1-p1`, flannelPod], [`weft-${lab.name}-n2-p1`, flannelPod],
    [podNs, lab.podIp('n1-p1')], [podNs, lab.podIp('n2-p1')],
  ] as const) {
    await waitPingable(from, to);
    const got = await pingCount(from, to, 5);
    t.diagnostic(`${from} -> ${to}: ${got}/5`);
    assert.ok(got >= 4, `${from} reaches ${to}`);
  }

  // The flanneld node goes away (its lease revoked): the weft nodes drop it.
  await etcdctl(lab, ['lease', 'revoke', grant]);
  for (const n of ['n1', 'n2']) {
    const nsN = lab.node(n).ns;
    await waitFor(`${n} to drop the flanneld node`, async () => (await tracesOf(nsN, subnet, mac)).length === 0, 60_000);
    assert.equal((await status(lab, n))?.peers.some((p) => p.subnet === subnet), false);
  }
});

// End-to-end failure tests of `weft agent` in a `weft lab --store etcd` cluster (root only):
// an agent SIGKILLed and restarted under a running ping, etcd gone for 30 s (crashed and
// restarted on its data dir, or hung with SIGSTOP), and a node removed for good. Each test
// has its own lab, brought down in an after hook whatever happens; only the lab's own
// processes (recorded PIDs) are signalled. Figures (ping loss, reconnect times) are printed
// as test diagnostics, never asserted against a clock.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  agentLog, dataplaneSnapshot, etcdAnswers, expiryInEtcd, labPrerequisiteProblem, Ping, pingCount, restartEtcd, signalDaemon, signalEtcd, startAgent,
  startTestLab, status, stopDaemon, subnetLeases, tracesOf, vxlanDevice, vxlanPeerEntries, waitFor, waitGone, type EtcdLease, type TestLab,
} from './support/lab-harness.ts';

const skip = await labPrerequisiteProblem();

const podNs = (lab: TestLab, pod: string): string => `weft-${lab.name}-${pod}`;

function leaseOfNode(leases: readonly EtcdLease[], lab: TestLab, node: string): EtcdLease {
  const address = lab.node(node).address;
  const mine = leases.filter((l) => l.value.PublicIP === address);
  assert.equal(mine.length, 1, `exactly one lease carries ${node}'s public IP ${address}: ${mine.map((l) => l.id).join(' ')}`);
  return mine[0] as EtcdLease;
}

/** Distinct subnets, one lease per node, each node's public IP once. */
function assertOneLeasePerNode(leases: readonly EtcdLease[], lab: TestLab, nodes: readonly string[]): void {
  assert.equal(leases.length, nodes.length, `one key per node under subnets/: ${leases.map((l) => `${l.id}=${l.value.PublicIP}`).join(' ')}`);
  assert.equal(new Set(leases.map((l) => l.subnet)).size, nodes.length, 'distinct subnets');
  assert.deepEqual(leases.map((l) => l.value.PublicIP).sort(), nodes.map((n) => lab.node(n).address).sort());
}

test('agent SIGKILLed and restarted under a cross-node ping: the ping barely notices; same subnet, same VTEP MAC, kernel state untouched', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 2, podsPerNode: 1, leaseTtl: '20s', prefix: 'k' });
  const n1 = lab.node('n1');
  const files = lab.files('n1');

  const before = {
    lease: leaseOfNode(await subnetLeases(lab), lab, 'n1'),
    env: await readFile(files.subnetEnv, 'utf8'),
    device: await vxlanDevice(n1.ns),
    snapshot: await dataplaneSnapshot(n1.ns),
    status: await status(lab, 'n1'),
  };
  assert.ok(before.device, 'n1 has flannel.1');
  assert.equal(before.lease.value.BackendData?.VtepMAC, before.device.mac, 'the VTEP MAC in etcd is the device\'s');
  assert.equal(before.status?.lease?.subnet, before.lease.subnet);

  const ping = new Ping(podNs(lab, 'n1-p1'), lab.podIp('n2-p1'));
  t.after(() => ping.kill());
  await ping.more(10);

  const killedAt = Date.now();
  const oldPid = await signalDaemon(lab, 'n1', 'SIGKILL');
  await waitGone(oldPid);
  // Nothing runs on n1 now but the kernel: pods keep talking across nodes.
  await ping.more(10);
  assert.equal(await status(lab, 'n1'), undefined, 'the agent is really gone');

  const newPid = await startAgent(lab, 'n1');
  const readyAt = Date.now();
  assert.notEqual(newPid, oldPid);
  await waitFor('the restarted agent to program its peer', async () => {
    const s = await status(lab, 'n1');
    return s?.lastSync !== null && s?.peers.length === 1 && s.peers[0]?.path === 'vxlan';
  });
  await ping.more(10);
  const summary = await ping.stop();
  const seen = new Set(summary.replies.map((r) => r.seq));
  const lostSeqs = Array.from({ length: summary.transmitted }, (_, i) => i + 1).filter((s) => !seen.has(s));
  t.diagnostic(`agent down ${((readyAt - killedAt) / 1000).toFixed(1)} s (kill to ready); ping ${summary.received}/${summary.transmitted} replies, ` +
    `lost ${summary.lost}${lostSeqs.length > 0 ? ` (icmp_seq ${lostSeqs.join(',')})` : ''}`);
  // The data plane stays in the kernel: the last echo in flight when ping stopped is the only expected loss.
  assert.ok(summary.received >= summary.transmitted - 3, `ping lost ${summary.lost} of ${summary.transmitted}`);

  const after = {
    leases: await subnetLeases(lab),
    env: await readFile(files.subnetEnv, 'utf8'),
    device: await vxlanDevice(n1.ns),
    status: await status(lab, 'n1'),
  };
  const lease = leaseOfNode(after.leases, lab, 'n1');
  assertOneLeasePerNode(after.leases, lab, ['n1', 'n2']);
  assert.equal(lease.id, before.lease.id, 'same subnet key');
  assert.equal(after.status?.lease?.subnet, before.lease.subnet, 'the agent reports the same subnet');
  assert.equal(after.env, before.env, 'subnet.env unchanged');
  assert.equal(lease.value.BackendData?.VtepMAC, before.device.mac, 'same VTEP MAC in etcd');
  assert.equal(after.device?.mac, before.device.mac, 'same device MAC');
  assert.equal(after.device?.index, before.device.index, 'flannel.1 was adopted, not recreated');
  assert.equal(await dataplaneSnapshot(n1.ns), before.snapshot, 'n1\'s routes, neighbours, FDB, addresses and rules are as before');
  // And the lease is alive: renewed by the new agent from now on.
  const renewed = await waitFor('a renewal by the restarted agent', async () => {
    const l = leaseOfNode(await subnetLeases(lab), lab, 'n1');
    return l.modRevision > lease.modRevision ? l : undefined;
  }, 90_000, 500);
  assert.equal(renewed.id, before.lease.id);
});

/**
 * etcd goes away for 30 s while a cross-node ping runs; the lease TTL is 20 s, so every agent
 * sees its lease run out by its own clock during the outage. `kill`: etcd crashes (SIGKILL)
 * and is restarted on its data dir (etcd then extends every lease by its TTL); `stop`: etcd
 * hangs (SIGSTOP) and resumes (SIGCONT), when its leases have expired and their keys go.
 */
async function etcdOutage(t: TestContext, mode: 'kill' | 'stop'): Promise<void> {
  const lab = await startTestLab(t, { nodes: 2, podsPerNode: 1, leaseTtl: '20s', prefix: mode === 'kill' ? 'o' : 's' });
  const nodes = ['n1', 'n2'] as const;
  const envs = new Map<string, string>();
  const snapshots = new Map<string, string>();
  for (const n of nodes) {
    envs.set(n, await readFile(lab.files(n).subnetEnv, 'utf8'));
    snapshots.set(n, await dataplaneSnapshot(lab.node(n).ns));
  }
  const ping = new Ping(podNs(lab, 'n1-p1'), lab.podIp('n2-p1'));
  t.after(() => ping.kill());
  await ping.more(5);

  // Stop etcd when no renewal is due for 2 s, so the revisions read just before are the last ones written before the outage.
  await waitFor('a moment with no renewal due', async () => {
    const due = await Promise.all(nodes.map(async (n) => Date.parse((await status(lab, n))?.lease?.expiresAt ?? '') - 10_000));
    return due.every((d) => d - Date.now() > 2000);
  }, 30_000, 100);
  const before = await subnetLeases(lab);
  assertOneLeasePerNode(before, lab, nodes);
  const etcdPid = await signalEtcd(lab, mode === 'kill' ? 'SIGKILL' : 'SIGSTOP');
  const downAt = Date.now();
  if (mode === 'stop') {
    t.after(() => {
      try {
        process.kill(etcdPid, 'SIGCONT'); // so that `down` can stop it if the test failed halfway
      } catch {
        // gone already
      }
    });
  } else {
    await waitGone(etcdPid);
  }

  // 25 s in, past every lease's expiry by the agents' clocks: the data plane is still all there.
  await sleep(25_000);
  for (const n of nodes) {
    assert.equal(await dataplaneSnapshot(lab.node(n).ns), snapshots.get(n), `${n}'s data plane unchanged 25 s into the outage`);
    const s = await status(lab, n);
    assert.equal(s?.peers.length, 1, `${n}'s agent still answers and still knows its peer during the outage`);
  }
  const duringOutage = ping.repliesBetween(downAt, Date.now());
  assert.ok(duringOutage > 0, 'pods reached each other during the outage');
  await sleep(Math.max(0, downAt + 30_000 - Date.now()));

  if (mode === 'kill') {
    await restartEtcd(lab);
  } else {
    process.kill(etcdPid, 'SIGCONT');
    await waitFor('etcd to answer again', () => etcdAnswers(lab));
  }
  const upAt = Date.now();

  // Each agent writes its lease again (re-acquired or renewed): the key's revision moves past the one before the outage.
  const back = new Map<string, { lease: EtcdLease; at: number }>();
  await waitFor('both agents to write their leases after etcd came back', async () => {
    const now = await subnetLeases(lab);
    for (const n of nodes) {
      const old = leaseOfNode(before, lab, n);
      const l = now.find((x) => x.value.PublicIP === lab.node(n).address);
      if (!back.has(n) && l && l.modRevision > old.modRevision) back.set(n, { lease: l, at: Date.now() });
    }
    return back.size === nodes.length;
  }, 120_000, 200);

  const after = await subnetLeases(lab);
  assertOneLeasePerNode(after, lab, nodes);
  for (const n of nodes) {
    const old = leaseOfNode(before, lab, n);
    const l = leaseOfNode(after, lab, n);
    assert.equal(l.id, old.id, `${n} kept its subnet ${old.subnet}`);
    assert.equal(l.raw, old.raw, `${n}'s lease value (public IP, VTEP MAC) unchanged`);
    assert.equal(await readFile(lab.files(n).subnetEnv, 'utf8'), envs.get(n), `${n}'s subnet.env unchanged`);
  }

  // Renewals go on: the expiry etcd holds keeps moving forward.
  const expiries = new Map<string, number>();
  for (const n of nodes) {
    const e = await expiryInEtcd(lab, leaseOfNode(after, lab, n));
    assert.ok(e !== null, `${n}'s key has a live lease`);
    expiries.set(n, e);
  }
  await waitFor('a further renewal of each lease', async () => {
    const now = await subnetLeases(lab);
    for (const n of nodes) {
      const l = leaseOfNode(now, lab, n);
      if (l.modRevision <= (back.get(n)?.lease.modRevision ?? Infinity)) return false;
    }
    return true;
  }, 60_000, 500);
  const later = await subnetLeases(lab);
  assertOneLeasePerNode(later, lab, nodes);
  for (const n of nodes) {
    const l = leaseOfNode(later, lab, n);
    const e = await expiryInEtcd(lab, l);
    assert.ok(e !== null && e > (expiries.get(n) ?? Infinity), `${n}'s lease expiry moved forward in etcd (${e} > ${expiries.get(n)})`);
    assert.equal(l.id, leaseOfNode(before, lab, n).id);
  }

  // Everything settles back to exactly the kernel state from before.
  for (const n of nodes) {
    const ns = lab.node(n).ns;
    const s = await waitFor(`${n}'s agent to report its peer again`, async () => {
      const st = await status(lab, n);
      return st?.ready === true && st.peers.length === 1 && st.peers[0]?.path === 'vxlan' ? st : undefined;
    });
    assert.equal(s.lease?.subnet, leaseOfNode(before, lab, n).subnet);
    await waitFor(`${n}'s data plane to match the one before the outage`, async () => (await dataplaneSnapshot(ns)) === snapshots.get(n), 30_000, 500)
      .catch(async () => assert.equal(await dataplaneSnapshot(ns), snapshots.get(n)));
    t.diagnostic(`${n}: wrote its lease ${((back.get(n)?.at ?? 0) - upAt) / 1000} s after etcd answered again (polled every 0.2 s); agent errors: ` +
      s.errors.map((e) => e.message).join(' | '));
  }
  await ping.more(5);
  const summary = await ping.stop();
  const lost = ping.lost(summary.transmitted);
  const lostDuring = lost.filter((l) => l.at < upAt - 1000);
  const peerChanges = (await agentLog(lab, 'n1', upAt - 1000)).filter((e) => e.msg === 'peer leases changed')
    .map((e) => `+${JSON.stringify(e.added)} -${JSON.stringify(e.removed)} at +${((e.time - upAt) / 1000).toFixed(2)} s`);
  t.diagnostic(`etcd ${mode === 'kill' ? 'killed and restarted' : 'stopped and resumed'} after ${((upAt - downAt) / 1000).toFixed(1)} s; ` +
    `ping ${summary.received}/${summary.transmitted} replies, ${duringOutage} replies in the first 25 s of the outage; lost ${summary.lost}` +
    `${lost.length > 0 ? `: icmp_seq ${lost.map((l) => `${l.seq} (${((l.at - upAt) / 1000).toFixed(2)} s after etcd was back)`).join(', ')}` : ''}; ` +
    `n1's peer changes after etcd was back: ${peerChanges.join('; ') || 'none'}`);
  // During the outage nothing may be lost: the data plane does not depend on etcd.
  assert.deepEqual(lostDuring.map((l) => l.seq), [], 'no echo lost while etcd was away');
  if (mode === 'kill') {
    // etcd extends every lease by its TTL when it restarts: nothing expires, nothing is withdrawn.
    assert.ok(summary.lost <= 3, `ping lost ${summary.lost} of ${summary.transmitted}`);
  } else {
    // The leases ran out in etcd as it resumed: their keys went, each node withdrew its routes to
    // the other until the other re-created its key (the re-acquire retry is 2.5 s). That gap, and
    // no more, is the expected loss.
    assert.ok(summary.lost <= 25, `ping lost ${summary.lost} of ${summary.transmitted}`);
  }
}

describe('etcd away for 30 s (20 s lease TTL)', { concurrency: 2 }, () => {
  test('crashed (SIGKILL) and restarted on its data dir: the data plane keeps working, the agents reconnect, keep their subnets and renew', { skip }, (t) => etcdOutage(t, 'kill'));
  test('hung (SIGSTOP) and resumed: the data plane keeps working, the agents get their expired leases back (same subnets) and renew', { skip }, (t) => etcdOutage(t, 'stop'));
});

test('a node removed for good: once its lease expires, every other node drops its route, neighbour and FDB entry', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 3, podsPerNode: 1, leaseTtl: '20s', prefix: 'r' });
  const leases = await subnetLeases(lab);
  assertOneLeasePerNode(leases, lab, ['n1', 'n2', 'n3']);
  const peerOf = (n: string): { subnet: string; vtepMac: string; publicIp: string } => {
    const l = leaseOfNode(leases, lab, n);
    return { subnet: l.subnet, vtepMac: l.value.BackendData?.VtepMAC ?? '', publicIp: l.value.PublicIP ?? '' };
  };
  const gone = peerOf('n3');
  for (const n of ['n1', 'n2']) {
    assert.deepEqual(await vxlanPeerEntries(lab.node(n).ns, gone), { route: true, neighbour: true, fdb: true }, `${n} reaches n3 over VXLAN`);
  }

  // The node is removed: its agent stops (as flanneld, it leaves its lease to expire) and never comes back.
  await stopDaemon(lab, 'n3');
  const stoppedAt = Date.now();
  await waitFor(`n3's lease ${gone.subnet} to expire in etcd`, async () => !(await subnetLeases(lab)).some((l) => l.subnet === gone.subnet), 90_000, 250);
  const expiredAt = Date.now();
  const cleaned = new Map<string, number>();
  for (const n of ['n1', 'n2']) {
    const ns = lab.node(n).ns;
    await waitFor(`${n} to drop everything about n3`, async () => (await tracesOf(ns, gone.subnet, gone.vtepMac)).length === 0, 60_000, 200)
      .catch(async (e: Error) => assert.fail(`${e.message}: ${(await tracesOf(ns, gone.subnet, gone.vtepMac)).join('; ')}`));
    cleaned.set(n, Date.now());
    assert.deepEqual(await vxlanPeerEntries(ns, gone), { route: false, neighbour: false, fdb: false });
    const s = await status(lab, n);
    assert.deepEqual(s?.peers.map((p) => p.subnet), [peerOf(n === 'n1' ? 'n2' : 'n1').subnet], `${n} knows only the remaining node`);
  }
  t.diagnostic(`n3's lease expired ${((expiredAt - stoppedAt) / 1000).toFixed(1)} s after its agent stopped (TTL 20 s); ` +
    `n1/n2 clean ${(((cleaned.get('n1') ?? 0) - expiredAt) / 1000).toFixed(1)}/${(((cleaned.get('n2') ?? 0) - expiredAt) / 1000).toFixed(1)} s after (polled every 0.2 s)`);

  // The remaining nodes still reach each other.
  assert.deepEqual(await vxlanPeerEntries(lab.node('n1').ns, peerOf('n2')), { route: true, neighbour: true, fdb: true });
  assert.deepEqual(await vxlanPeerEntries(lab.node('n2').ns, peerOf('n1')), { route: true, neighbour: true, fdb: true });
  assert.ok((await pingCount(podNs(lab, 'n1-p1'), lab.podIp('n2-p1'), 5)) >= 4, 'n1-p1 still reaches n2-p1');
  assert.equal(await pingCount(podNs(lab, 'n1-p1'), lab.podIp('n3-p1'), 2), 0, 'n3\'s pods are unreachable: nothing routes there any more');
});

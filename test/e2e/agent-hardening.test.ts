// The agent as an operator and an attacker try it, in a `weft lab --store etcd` cluster (root
// only): hostile peer leases, oversized values, readiness that must tell the truth, and config
// changes on running nodes. Each test has its own lab, brought down in an after hook whatever
// happens; only processes these tests start (by PID) are signalled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exists } from '../../src/lab/processes.ts';
import { cniAdd, cniDel } from '../../src/lab/cni-exec.ts';
import { pluginRequestConfig, type Conflist } from '../../src/lab/cni-config.ts';
import { createNetns, deleteNetns } from '../../src/lab/netns.ts';
import { nodeFiles } from '../../src/lab/paths.ts';
import { fetchStatus } from '../../src/agent/status.ts';
import {
  agentCommand, agentLog, etcdctl, inNs, labPrerequisiteProblem, readSubnetEnv, startAgent, startTestLab, status, stopDaemon, waitFor, type TestLab,
} from './support/lab-harness.ts';

const skip = await labPrerequisiteProblem();
const PREFIX = '/coreos.com/network';

const vxlanLease = (publicIp: string, mac: string, vni = 1): string => JSON.stringify({ PublicIP: publicIp, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: vni, VtepMAC: mac } });

async function putLease(lab: TestLab, name: string, value: string): Promise<string> {
  await etcdctl(lab, ['put', `${PREFIX}/subnets/${name}`, value]);
  return `subnets/${name}`;
}

const routes = (lab: TestLab, node: string): Promise<string> => inNs(lab.node(node).ns, ['ip', '-4', 'route', 'show']);
const fdb = (lab: TestLab, node: string): Promise<string> => inNs(lab.node(node).ns, ['bridge', 'fdb', 'show', 'dev', 'flannel.1']);

test('hostile peer leases are refused and named once; no route outside the Network; a route that cut the node off etcd does not survive a restart', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 2 });
  const outside = await putLease(lab, '172.31.1.0-24', vxlanLease('172.31.2.12', '02:00:00:00:00:91')); // the etcd server's own subnet
  const loopback = await putLease(lab, '10.16.200.0-24', vxlanLease('127.0.0.1', '02:00:00:00:00:92'));
  const multicast = await putLease(lab, '10.16.201.0-24', vxlanLease('224.0.0.5', '02:00:00:00:00:93'));
  const unspecified = await putLease(lab, '10.16.202.0-24', vxlanLease('0.0.0.0', '02:00:00:00:00:94'));
  const s = await waitFor('n1 refuses the four hostile leases', async () => {
    const st = await status(lab, 'n1');
    return st && st.rejected.length >= 4 ? st : undefined;
  });
  const reasonOf = (key: string): string => s.rejected.find((r) => r.key === key)?.reason ?? '';
  assert.match(reasonOf(outside), /outside/i);
  for (const k of [loopback, multicast, unspecified]) assert.match(reasonOf(k), /PublicIP/i, `${k}: ${reasonOf(k)}`);
  assert.ok(!s.peers.some((p) => p.subnets.some((x) => ['172.31.1.0/24', '10.16.200.0/24', '10.16.201.0/24', '10.16.202.0/24'].includes(x))), 'a refused lease is never a peer');
  assert.equal(s.ready, true, 'refused leases are not peers: the node stays ready');
  assert.doesNotMatch(await routes(lab, 'n1'), /^172\.31\.1\.0\/24 .*flannel\.1/m);
  assert.doesNotMatch(await fdb(lab, 'n1'), /dst (127\.0\.0\.1|224\.0\.0\.5|0\.0\.0\.0)/);
  // Once in the log, however many reconciles follow.
  const firstSync = s.lastSync;
  await waitFor('two more reconciles', async () => {
    const st = await status(lab, 'n1');
    return st && st.lastSync !== firstSync ? st : undefined;
  });
  const lines = (await agentLog(lab, 'n1')).filter((e) => e.msg.includes(outside));
  assert.equal(lines.length, 1, lines.map((e) => e.msg).join('\n'));
  const again = (await status(lab, 'n1'))!;
  assert.equal(again.rejected.filter((r) => r.key === outside).length, 1, 'one entry per refused key');
  assert.ok(!again.errors.some((e) => e.message.includes(outside)), 'refusals never crowd the problem log');

  // A weft route that sends the etcd server into flannel.1 (as a bad lease once could): the agent
  // removes it at start, before it talks to etcd, so it can start at all.
  await stopDaemon(lab, 'n1');
  await inNs(lab.node('n1').ns, ['ip', 'route', 'add', '172.31.1.5/32', 'dev', 'flannel.1', 'proto', '0x57']);
  await startAgent(lab, 'n1');
  assert.doesNotMatch(await routes(lab, 'n1'), /^172\.31\.1\.5 /m);
});

test('oversized lease values: agents still start and list; the key is refused by name, with its size', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 2 });
  const script = `
    const b64 = (s) => Buffer.from(s).toString('base64');
    for (const i of [0, 1, 2]) {
      const res = await fetch('${lab.etcd.clientUrl}/v3/kv/put', { method: 'POST', body: JSON.stringify({ key: b64('${PREFIX}/subnets/10.16.' + (210 + i) + '.0-24'), value: b64(JSON.stringify({ PublicIP: '172.31.1.9' + i, BackendType: 'vxlan', pad: 'x'.repeat(1_400_000) })) }) });
      if (!res.ok) { console.error(await res.text()); process.exit(1); }
    }`;
  await inNs(lab.node('n1').ns, [process.execPath, '--input-type=module', '-e', script], 60_000);
  await stopDaemon(lab, 'n2');
  await startAgent(lab, 'n2');
  const s = (await status(lab, 'n2'))!;
  assert.equal(s.ready, true);
  const refused = s.rejected.filter((r) => /10\.16\.21[012]\.0-24/.test(r.key));
  assert.equal(refused.length, 3, JSON.stringify(s.rejected));
  for (const r of refused) assert.match(r.reason, /bytes|KiB|MB|large|size/i);
  assert.ok(s.peers.some((p) => p.publicIp === lab.node('n1').address), 'the real peer is still there');
});

test('readiness tells the truth: status and health while etcd is away, subnet.env written again, a peer on another backend makes the node degraded', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 2 });
  // An agent whose etcd never answers still serves status and /healthz from the first second.
  const dir = await mkdtemp(join(tmpdir(), 'weft-waiting-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const socket = join(dir, 'agent.sock');
  const argv = [...agentCommand(lab, 'n1', { endpoint: 'http://172.31.1.5:1', subnetFile: join(dir, 'subnet.env'), statusSocket: socket }),
    '--lock-file', join(dir, 'agent.lock'), '--cni-socket', '', '--healthz-ip', '127.0.0.1', '--healthz-port', '18471'];
  const child = spawn('nsenter', [`--net=/run/netns/${lab.node('n1').ns}`, ...argv], { stdio: 'ignore' });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  const waiting = await waitFor('the waiting agent answers on its status socket', async () => {
    try {
      return await fetchStatus(socket);
    } catch {
      return undefined;
    }
  });
  assert.equal(waiting.phase, 'waiting-for-store');
  assert.equal(waiting.ready, false);
  assert.ok(waiting.reasons.length > 0);
  const get = async (path: string): Promise<string> => (await inNs(lab.node('n1').ns, [process.execPath, '-e', `fetch('http://127.0.0.1:18471${path}').then(async (r) => console.log(r.status, await r.text()))`])).trim();
  assert.match(await get('/healthz'), /^200 /);
  assert.match(await get('/readyz'), /^503 .*waiting-for-store/);
  child.kill('SIGTERM');

  // subnet.env deleted under a running agent comes back.
  const env = lab.files('n1').subnetEnv;
  const before = await readSubnetEnv(env);
  await unlink(env);
  await waitFor('subnet.env written again', () => exists(env));
  assert.deepEqual(await readSubnetEnv(env), before);

  // A valid peer this node cannot reach (it announced host-gw in a vxlan cluster): not ready, and why.
  const key = await putLease(lab, '10.16.220.0-24', JSON.stringify({ PublicIP: '172.31.2.77', PublicIPv6: null, BackendType: 'host-gw' }));
  const degraded = await waitFor('n1 degraded', async () => {
    const st = await status(lab, 'n1');
    return st && !st.ready ? st : undefined;
  });
  assert.equal(degraded.phase, 'degraded');
  assert.match(degraded.reasons.join(), /unreachable.*10\.16\.220\.0\/24/);
  await etcdctl(lab, ['del', `${PREFIX}/${key}`]);
  await waitFor('n1 ready again', async () => (await status(lab, 'n1'))?.ready === true);

  // Its own lease deleted: re-acquired, and the revocation stays in the problem log.
  const own = (await status(lab, 'n1'))!.lease!.subnet.replace('/', '-');
  await etcdctl(lab, ['del', `${PREFIX}/subnets/${own}`]);
  await waitFor('the revocation reported', async () => (await status(lab, 'n1'))?.errors.some((e) => /revoked/.test(e.message)));
  await waitFor('n1 ready again after re-acquiring', async () => (await status(lab, 'n1'))?.ready === true);
});

test('config changes on running nodes: a new backend is applied live and the old device goes; a new Network is reported as restart required, and a restart cleans up', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 2, zones: 1 });
  const n1 = lab.node('n1').ns;
  await etcdctl(lab, ['put', `${PREFIX}/config`, JSON.stringify({ Network: '10.16.0.0/16', Backend: { Type: 'host-gw' } })]);
  const live = await waitFor('n1 on host-gw', async () => {
    const st = await status(lab, 'n1');
    return st?.backend === 'host-gw' && st.peers.every((p) => p.path === 'direct') && st.ready ? st : undefined;
  });
  assert.equal(live.mtu, 1500);
  assert.equal((await readSubnetEnv(lab.files('n1').subnetEnv)).FLANNEL_MTU, '1500');
  await waitFor('flannel.1 removed', async () => !(await inNs(n1, ['ip', '-o', 'link', 'show'])).includes('flannel.1'));
  const n2subnet = (await status(lab, 'n2'))!.lease!.subnet;
  assert.match(await routes(lab, 'n1'), new RegExp(`^${n2subnet.replace(/\./g, '\\.')} via ${lab.node('n2').address.replace(/\./g, '\\.')} dev eth0`, 'm'));
  // The lease now says host-gw, so flanneld-era tools read it right.
  const leases = await etcdctl(lab, ['get', '--prefix', `${PREFIX}/subnets/`, '--print-value-only']);
  assert.equal((leases.match(/"BackendType":"host-gw"/g) ?? []).length, 2);

  await etcdctl(lab, ['put', `${PREFIX}/config`, JSON.stringify({ Network: '10.17.0.0/16', Backend: { Type: 'host-gw' } })]);
  const held = await waitFor('restart required', async () => {
    const st = await status(lab, 'n1');
    return st && /restart required/.test(st.reasons.join()) ? st : undefined;
  });
  assert.equal(held.ready, false);
  assert.equal(held.network, '10.16.0.0/16', 'still serving the old plan');
  assert.match(held.lease!.subnet, /^10\.16\./);

  // A restart moves the node to the new plan and leaves nothing of the old one on cni0.
  await stopDaemon(lab, 'n1');
  await startAgent(lab, 'n1');
  const moved = (await status(lab, 'n1'))!;
  assert.match(moved.lease!.subnet, /^10\.17\./);
  assert.doesNotMatch(await inNs(n1, ['ip', '-4', '-o', 'addr', 'show']), /inet 10\.16\./);
});

test('/metrics on a running agent: readiness, lease expiry, peers by path, CNI requests by verb and result, IPAM usage, build info', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 2, podsPerNode: 0 });
  const node = lab.node('n1');
  await stopDaemon(lab, 'n1');
  await startAgent(lab, 'n1', { extra: ['--healthz-ip', '127.0.0.1', '--healthz-port', '18473'] });
  // One pod ADD and DEL through the real plugin, served by this agent's CNI server.
  const podNs = `${node.ns}-mp`;
  await createNetns(podNs);
  t.after(() => deleteNetns(podNs).catch(() => undefined));
  const conflist = JSON.parse(await readFile(nodeFiles(node.dir).conflist, 'utf8')) as Conflist;
  const inv = { plugin: lab.state.plugin, hostNs: node.ns, podNs, containerId: 'metrics-probe', podName: 'metrics-probe' };
  const added = await cniAdd(inv, pluginRequestConfig(conflist));
  assert.equal(added.addresses.length, 1);
  const scrape = async (): Promise<string> => inNs(node.ns, [process.execPath, '-e', "fetch('http://127.0.0.1:18473/metrics').then(async (r) => process.stdout.write(await r.text()))"]);
  // The usage gauge is counted in the background after an ADD: wait for it rather than for a time.
  const text = await waitFor('IPAM usage in the metrics', async () => {
    const m = await scrape();
    return /weft_ipam_addresses\{state="used"\} 1\b/.test(m) ? m : undefined;
  });
  assert.match(text, /weft_build_info\{version="[^"]+",mode="etcd",nodejs="v24\.[\d.]+"\} 1/);
  assert.match(text, /^weft_ready 1$/m);
  assert.match(text, /weft_phase\{phase="ready"\} 1/);
  assert.match(text, /weft_peers\{path="vxlan"\} 1/);
  assert.match(text, /^weft_rejected_peers 0$/m);
  const expiry = Number(/^weft_lease_expiry_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
  assert.ok(expiry > Date.now() / 1000, `the lease expires in the future: ${expiry}`);
  assert.match(text, /weft_cni_requests_total\{verb="ADD",result="ok"\} 1/);
  assert.match(text, /weft_cni_request_duration_seconds_count\{verb="ADD"\} 1/);
  assert.match(text, /weft_reconcile_duration_seconds_count [1-9]/);
  assert.match(text, /weft_event_loop_delay_seconds\{quantile="max"\}/);
  await cniDel(inv, pluginRequestConfig(conflist, 0, added.raw));
  await waitFor('the DEL counted', async () => /weft_cni_requests_total\{verb="DEL",result="ok"\} 1/.test(await scrape()));
});

// End-to-end test of `weft agent` against etcd over TLS with client certificates (root only):
// a lab's nodes move to a second etcd that serves https on the lab's etcd address and
// requires client certificates (a CA, server and client certificates made by the test with
// openssl). The lab is brought down in an after hook whatever happens; that etcd runs in the
// lab's etcd namespace and is stopped by PID (support/etcd.ts) before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { exists } from '../../src/lab/processes.ts';
import { etcdPrerequisiteProblem, makeTestPki, scratchDirFor, startEtcd } from './support/etcd.ts';
import {
  labPrerequisiteProblem, pingCount, runAgent, startAgent, startTestLab, status, stopDaemon, waitFor, waitPingable,
} from './support/lab-harness.ts';

const skip = (await labPrerequisiteProblem()) || etcdPrerequisiteProblem();

test('etcd with TLS and client certificates: agents with --etcd-cafile/--etcd-certfile/--etcd-keyfile work; without the client certificate the agent is refused and says why', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 2, podsPerNode: 1, prefix: 't' });
  const pkiDir = scratchDirFor('weft-pki');
  t.after(() => rm(pkiDir, { recursive: true, force: true }));
  const pki = await makeTestPki(pkiDir, [lab.etcd.address]);
  const etcd = await startEtcd({ netns: lab.etcd.ns, host: lab.etcd.address, tls: pki, clientCertAuth: true });
  t.after(() => etcd.close());
  assert.match(etcd.endpoint, /^https:\/\/172\.31\.1\.5:\d+$/);
  await etcd.etcdctl(3, ['put', '/coreos.com/network/config', lab.state.etcd?.networkConfig ?? '']);

  // Move both nodes to the TLS etcd. Each keeps its subnet.env, so it asks for its subnet again (free there).
  const tls = ['--etcd-cafile', pki.caFile, '--etcd-certfile', pki.clientCertFile, '--etcd-keyfile', pki.clientKeyFile];
  const subnets = new Map<string, string>();
  for (const n of ['n1', 'n2']) {
    subnets.set(n, (await status(lab, n))?.lease?.subnet ?? '');
    await stopDaemon(lab, n);
  }
  for (const n of ['n1', 'n2']) await startAgent(lab, n, { endpoint: etcd.endpoint, extra: tls });
  for (const n of ['n1', 'n2']) {
    const s = await waitFor(`${n} to program its peer from the TLS etcd`, async () => {
      const st = await status(lab, n);
      return st?.peers.length === 1 && st.lastSync !== null ? st : undefined;
    });
    assert.deepEqual(s.store.endpoints, [etcd.endpoint]);
    assert.equal(s.lease?.subnet, subnets.get(n), `${n} got its subnet back from the TLS etcd`);
  }
  const keys = (await etcd.etcdctl(3, ['get', '--prefix', '--keys-only', '/coreos.com/network/subnets/'])).split('\n').filter(Boolean);
  assert.deepEqual(keys.sort(), [...subnets.values()].map((s) => `/coreos.com/network/subnets/${s.replace('/', '-')}`).sort(), 'the leases live in the TLS etcd');
  await waitPingable(`weft-${lab.name}-n1-p1`, lab.podIp('n2-p1'));
  assert.ok((await pingCount(`weft-${lab.name}-n1-p1`, lab.podIp('n2-p1'), 5)) >= 4, 'pods reach each other across nodes');

  // The same agent without its client certificate: etcd refuses the TLS handshake.
  await stopDaemon(lab, 'n2');
  const dir = lab.node('n2').dir;
  const r = await runAgent(lab, 'n2', {
    endpoint: etcd.endpoint, subnetFile: `${dir}/nocert-subnet.env`, statusSocket: `${dir}/nocert.sock`,
    extra: ['--etcd-cafile', pki.caFile, '--cni-socket', ''],
  }, 20_000);
  const output = `${r.stdout}\n${r.stderr}`;
  const lines = output.split('\n').filter((l) => /error|warn|"level":[45]0/i.test(l));
  t.diagnostic(`without a client certificate: ${r.signal === null ? `exit ${r.code}` : `still running after 20 s (killed: ${r.signal})`}; ` +
    `${lines.length} warning/error lines, first: ${lines[0]?.slice(0, 600) ?? 'none'}`);
  assert.equal(await exists(`${dir}/nocert-subnet.env`), false, 'it got no lease and wrote no subnet.env');
  // It does what flanneld does with an etcd it cannot use: keeps retrying (every second), saying why.
  assert.equal(r.signal, 'SIGKILL', `it was still retrying after 20 s:\n${output.slice(-1500)}`);
  assert.match(output, /not ready yet; retrying/);
  assert.match(output, /bad certificate/, 'the message says etcd refused its certificate');
  assert.match(output, new RegExp(etcd.endpoint.replace(/[.]/g, '\\.')), 'names the endpoint');
  assert.match(output, /--etcd-certfile/, 'and points at the TLS flags');
});

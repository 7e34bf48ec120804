// End-to-end tests of `weft agent` acquiring leases in a `weft lab --store etcd` cluster (root
// only): 20 agents racing for subnets against one etcd, a subnet space that runs out, and
// network configs that are not valid. Each test has its own lab, brought down in an after
// hook whatever happens; only the lab's own processes (recorded PIDs) are signalled, and the
// agents these tests start themselves run in lab namespaces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { cpus } from 'node:os';
import { exists } from '../../src/lab/processes.ts';
import {
  agentLog, etcdctl, labPrerequisiteProblem, readSubnetEnv, runAgent, startAgent, startTestLab, status, stopDaemon, subnetLeases, waitFor, type TestLab,
} from './support/lab-harness.ts';

const skip = await labPrerequisiteProblem();

const nodeNames = (lab: TestLab): string[] => lab.state.topology.nodes.map((n) => n.name);

/** One key per node, distinct subnets, each agent's status and subnet.env agreeing with its key. */
async function assertDistinctLeases(lab: TestLab, prefix?: string): Promise<string[]> {
  const nodes = nodeNames(lab);
  const leases = await subnetLeases(lab, prefix);
  assert.equal(leases.length, nodes.length, `${nodes.length} keys under subnets/: ${leases.map((l) => l.id).join(' ')}`);
  assert.equal(new Set(leases.map((l) => l.subnet)).size, nodes.length, `distinct subnets: ${leases.map((l) => l.subnet).sort().join(' ')}`);
  for (const n of nodes) {
    const address = lab.node(n).address;
    const mine = leases.filter((l) => l.value.PublicIP === address);
    assert.equal(mine.length, 1, `one lease carries ${n}'s public IP ${address}`);
    const subnet = mine[0]?.subnet ?? '';
    const s = await status(lab, n);
    assert.equal(s?.lease?.subnet, subnet, `${n}'s agent reports its key's subnet`);
    const env = await readSubnetEnv(lab.files(n).subnetEnv);
    assert.equal(env.FLANNEL_SUBNET, subnet.replace(/\.0\/(\d+)$/, '.1/$1'), `${n}'s subnet.env has its lease`);
  }
  return leases.map((l) => l.subnet);
}

test('20 agents started at once against one etcd: 20 distinct subnets, every agent sees the 19 others', { skip }, async (t) => {
  // The lab starts its 20 agents concurrently (one setup task per node, all at once).
  const builtAt = Date.now();
  const lab = await startTestLab(t, { nodes: 20, podsPerNode: 0, parallelism: 20, prefix: 'm' });
  const nodes = nodeNames(lab);
  t.diagnostic(`lab up with 20 agents in ${((Date.now() - builtAt) / 1000).toFixed(1)} s`);
  await assertDistinctLeases(lab);

  // Then the harder race: stop them all, forget every lease (etcd keys and subnet.env), and
  // start all 20 in the same instant. Nothing is left to give any of them its old subnet back.
  await Promise.all(nodes.map((n) => stopDaemon(lab, n)));
  await etcdctl(lab, ['del', '--prefix', '/coreos.com/network/subnets/']);
  await Promise.all(nodes.map((n) => rm(lab.files(n).subnetEnv, { force: true })));
  const startedAt = Date.now();
  await Promise.all(nodes.map((n) => startAgent(lab, n)));
  const readyAt = Date.now();
  await waitFor('every agent to see and program the 19 other nodes', async () => {
    const all = await Promise.all(nodes.map((n) => status(lab, n)));
    return all.every((s) => s?.lastSync !== null && s?.peers.length === 19 && s.peers.every((p) => p.path === 'vxlan'));
  }, 120_000, 250);
  t.diagnostic(`20 agents started at once: all ready ${((readyAt - startedAt) / 1000).toFixed(1)} s later, all peers programmed after ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  // Where the time went (the machine's CPUs start 20 Node processes at once): first log line, lease, ready.
  const phases = await Promise.all(nodes.map(async (n) => {
    const log = await agentLog(lab, n, startedAt);
    const at = (msg: string): number => ((log.find((e) => e.msg === msg)?.time ?? NaN) - startedAt) / 1000;
    return { first: ((log[0]?.time ?? NaN) - startedAt) / 1000, lease: at('lease acquired'), ready: at('weft agent ready') };
  }));
  const range = (k: 'first' | 'lease' | 'ready'): string => `${Math.min(...phases.map((p) => p[k])).toFixed(1)}-${Math.max(...phases.map((p) => p[k])).toFixed(1)} s`;
  t.diagnostic(`after the start: first log line ${range('first')}, lease acquired ${range('lease')}, ready ${range('ready')} (${cpus().length} CPUs)`);
  const subnets = await assertDistinctLeases(lab);
  for (const n of nodes) {
    const s = await status(lab, n);
    const own = s?.lease?.subnet;
    assert.deepEqual(s?.peers.map((p) => p.subnet).sort(), subnets.filter((x) => x !== own).sort(), `${n} knows exactly the other 19 leases`);
  }
});

test('subnet space exhausted: with 3 subnets (10.99.0.0/26, SubnetLen 28, flannel\'s SubnetMin/Max) the fourth agent exits non-zero and says what to do', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 4, podsPerNode: 0, prefix: 'x' });
  // A network of its own under another prefix: /26 in /28s is .0, .16, .32, .48; flannel skips
  // the first (SubnetMin = network + one subnet) and ends at the last (SubnetMax), leaving three.
  const prefix = '/weft-exhausted/network';
  await etcdctl(lab, ['put', `${prefix}/config`, '{"Network":"10.99.0.0/26","SubnetLen":28,"Backend":{"Type":"vxlan"}}']);
  const nodes = nodeNames(lab);
  await Promise.all(nodes.map((n) => stopDaemon(lab, n)));
  await Promise.all(nodes.map((n) => rm(lab.files(n).subnetEnv, { force: true })));
  for (const n of ['n1', 'n2', 'n3']) await startAgent(lab, n, { prefix });
  const leases = await subnetLeases(lab, prefix);
  assert.deepEqual(leases.map((l) => l.subnet).sort(), ['10.99.0.16/28', '10.99.0.32/28', '10.99.0.48/28']);

  const r = await runAgent(lab, 'n4', { prefix }, 60_000);
  const output = `${r.stdout}\n${r.stderr}`;
  t.diagnostic(`fourth agent: exit ${r.code ?? r.signal}; stderr: ${r.stderr.trim()}`);
  assert.equal(r.signal, null, `the agent exited by itself within 60 s instead of hanging:\n${output.slice(-2000)}`);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /out of subnets/);
  assert.match(r.stderr, /10\.99\.0\.0\/26/, 'names the network');
  assert.match(r.stderr, /10\.99\.0\.16\/28 and 10\.99\.0\.48\/28/, 'names the range it searched');
  assert.match(r.stderr, /delete stale keys|larger network|SubnetLen/, 'says what to do');
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'a message, not a stack trace');
  assert.equal(await exists(lab.files('n4').subnetEnv), false, 'n4 wrote no subnet.env');
  assert.equal((await subnetLeases(lab, prefix)).length, 3, 'and no key');
});

test('malformed network config in etcd: the agent exits non-zero naming the field and the value', { skip }, async (t) => {
  const lab = await startTestLab(t, { nodes: 1, podsPerNode: 0, prefix: 'c' });
  await stopDaemon(lab, 'n1');
  await rm(lab.files('n1').subnetEnv, { force: true });
  const cases: { config: string; expect: RegExp[] }[] = [
    { config: '{"Network":"10.16.0.0/16","SubnetLen":"big"}', expect: [/"SubnetLen"/, /"big"/, /whole number/] },
    { config: '{"Network":"10.16.0.0/33"}', expect: [/"Network"/, /10\.16\.0\.0\/33/, /not a CIDR|prefix 33/] },
    { config: 'Network=10.16.0.0/16', expect: [/network config/, /not valid JSON/] },
    { config: '{"Network":"10.16.0.0/16","Backend":{"Type":"udp"}}', expect: [/"Backend\.Type"/, /"udp"/, /vxlan/] },
  ];
  for (const [i, c] of cases.entries()) {
    const prefix = `/weft-bad${i}/network`;
    await etcdctl(lab, ['put', `${prefix}/config`, c.config]);
    const r = await runAgent(lab, 'n1', { prefix }, 60_000);
    t.diagnostic(`${c.config} -> exit ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    assert.equal(r.signal, null, `${c.config}: the agent exited by itself within 60 s:\n${r.stdout.slice(-1500)}`);
    assert.notEqual(r.code, 0, c.config);
    for (const re of c.expect) assert.match(r.stderr, re, c.config);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'a message, not a stack trace');
    assert.deepEqual(await subnetLeases(lab, prefix), [], 'nothing leased');
    assert.equal(await exists(lab.files('n1').subnetEnv), false, 'no subnet.env');
  }
});

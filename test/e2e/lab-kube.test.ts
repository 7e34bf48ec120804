// End-to-end: `weft lab up --store kube` (root only). The lab's API server is weft's stand-in
// (not Kubernetes); each node runs `weft agent --store kube`, which claims its subnet through it.
// The full `lab check`, an agent restart that keeps its subnet, and a Node deletion whose claim
// the garbage collector removes; `down` leaves nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { listNetns, PROBE_KINDS, type CheckReport, type LabState, type LabStatus } from '../../src/lab/index.ts';
import { kubeAdmin } from '../../src/lab/kube.ts';
import { REPO_ROOT } from '../../src/lab/paths.ts';
import { run, type RunResult } from '../../src/lab/run.ts';
import { downAfter, labPrerequisiteProblem, uniqueLabName, waitFor } from './support/lab-harness.ts';

const missing = await labPrerequisiteProblem();
const weft = (...args: string[]): Promise<RunResult> => run([`${REPO_ROOT}/bin/weft`, ...args], { timeoutMs: 180_000 });
const state = async (name: string): Promise<LabState> => JSON.parse(await readFile(`/run/weft/lab/${name}/state.json`, 'utf8')) as LabState;
type ClaimRow = { name: string; holder: string; owner: string };

test('lab up --store kube: agents claim subnets through the API; every probe passes; restart keeps the subnet; a deleted Node frees its claim', { skip: missing }, async (t) => {
  const name = uniqueLabName('k');
  downAfter(t, name);
  const up = await weft('lab', 'up', '--name', name, '--nodes', '3', '--store', 'kube', '--json');
  assert.equal(up.code, 0, up.stderr);
  const status = JSON.parse(up.stdout) as LabStatus;
  assert.equal(status.store, 'kube');
  assert.equal(status.etcd?.name, 'apiserver');

  const plan = (await state(name)).topology.etcd!;
  const claims = async (): Promise<ClaimRow[]> => (await kubeAdmin(plan, 'claims', ['weft'])) as ClaimRow[];
  const before = await claims();
  assert.deepEqual(before.map((c) => c.holder).sort(), ['n1', 'n2', 'n3']);
  const leases = (await state(name)).leases ?? {};
  for (const c of before) assert.equal(c.name, `subnet-${leases[c.holder]!.subnet.replace(/[./]/g, '-')}`, 'each node runs on the subnet it claimed');

  const check = await weft('lab', 'check', '--name', name, '--json');
  const report = JSON.parse(check.stdout) as CheckReport;
  assert.equal(check.code, 0, report.probes.filter((p) => !p.ok).map((p) => `${p.kind} ${p.from}->${p.to}`).join('\n'));
  // Routed pods (the second e2e pass) have a link-local gateway that nothing answers: no pod-gateway probes.
  const routed = (await state(name)).dataPath?.podLink === 'routed';
  assert.deepEqual([...new Set(report.probes.map((p) => p.kind))].sort(), PROBE_KINDS.filter((k) => !routed || k !== 'pod-gateway').sort());

  const restart = await weft('lab', 'node', 'restart', '--name', name, 'n2');
  assert.equal(restart.code, 0, restart.stderr);
  const after = await claims();
  assert.deepEqual(after.find((c) => c.holder === 'n2'), before.find((c) => c.holder === 'n2'), 'the restarted agent kept its claim');

  const remove = await weft('lab', 'node', 'remove', '--name', name, 'n3');
  assert.equal(remove.code, 0, remove.stderr);
  await waitFor('the removed Node\'s claim collected', async () => !(await claims()).some((c) => c.holder === 'n3'));
  const again = await weft('lab', 'check', '--name', name, '--json');
  const rest = JSON.parse(again.stdout) as CheckReport;
  assert.equal(again.code, 0, rest.probes.filter((p) => !p.ok).map((p) => `${p.kind} ${p.from}->${p.to}`).join('\n'));

  const down = await weft('lab', 'down', '--name', name);
  assert.equal(down.code, 0, down.stderr);
  assert.deepEqual((await listNetns()).filter((ns) => ns.startsWith(`weft-${name}-`)), []);
});

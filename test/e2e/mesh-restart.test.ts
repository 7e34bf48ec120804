// Mesh mode across an agent crash (root only): n2's agent SIGKILLed and started again keeps
// its blocks (subnet.env's FLANNEL_SUBNET and the status lease's subnets unchanged, so its
// identity and block state came back from its --mesh-dir), its pods keep their addresses, and
// traffic to them flows again. No timing is asserted: only that it works again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labNodeStart, labNodeStop } from '../../src/lab/index.ts';
import { isAlive } from '../../src/lab/processes.ts';
import { Ping } from './support/lab-harness.ts';
import { addPods, checkPasses, connectedTo, inNs, ipOf, meshPrerequisiteProblem, status, startMeshLab, subnetEnv, waitMesh } from './support/mesh-lab.ts';

const skip = await meshPrerequisiteProblem();

test('restart: SIGKILL n2\'s agent and start it again: same blocks, same pod addresses, traffic works again', { skip, timeout: 240_000 }, async (t) => {
  const lab = await startMeshLab(t, { nodes: 3, podsPerNode: 1 });
  const before = {
    env: (await subnetEnv(lab, 'n2')).FLANNEL_SUBNET,
    subnets: [...((await status(lab, 'n2'))?.lease?.subnets ?? [])].sort(),
    name: (await waitMesh(lab, 'n2', 'its mesh view', () => true)).name,
    pods: (await lab.state()).pods,
  };
  assert.ok(before.env, 'n2 has a first block');
  assert.ok(before.subnets.length > 0, 'n2 reports its blocks');
  const pod = before.pods['n2-p1']?.addresses[0];
  assert.ok(pod);

  // A ping from n1's pod to n2's pod runs across the crash.
  const ping = new Ping(lab.node('n1').pods[0]?.ns ?? '', ipOf(pod));
  t.after(() => ping.kill());
  await ping.more(3);

  const [pid] = await labNodeStop(lab.name, ['n2'], { kill: true });
  assert.ok(pid !== undefined && !(await isAlive(pid)));
  const [started] = await labNodeStart(lab.name, ['n2'], { pods: false });
  assert.ok(started?.started && started.pid !== pid, 'a new agent process');

  const after = await status(lab, 'n2');
  assert.equal((await subnetEnv(lab, 'n2')).FLANNEL_SUBNET, before.env, 'subnet.env names the same first block');
  assert.deepEqual([...(after?.lease?.subnets ?? [])].sort(), before.subnets, 'the same blocks');
  const m = await waitMesh(lab, 'n2', 'connected to n1 and n3 again', (v) => connectedTo(v, 'n1') && connectedTo(v, 'n3'));
  assert.equal(m.name, before.name, 'the same peer name, from its mesh dir');

  await ping.more(5, 90_000);
  const summary = await ping.stop();
  assert.ok(summary.received >= 8, `replies before and after the restart: ${summary.received} of ${summary.transmitted}`);

  // Its pods kept their addresses, in the lab's record and in the kernel.
  assert.deepEqual((await lab.state()).pods, before.pods);
  const podNs = lab.node('n2').pods[0]?.ns ?? '';
  assert.match(await inNs(podNs, ['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0']), new RegExp(` ${pod.replace(/\./g, '\\.')} `));
  // The restarted agent remembers what it handed out: a new pod gets another address.
  const [fresh] = await addPods(lab, 'n2', 1);
  assert.ok(fresh);
  assert.notEqual(ipOf(fresh.addresses[0] ?? ''), ipOf(pod));
  await checkPasses(lab);
});

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KernelQueue, SerialWork, kernelQueue } from './serial.ts';

/** A pass the test finishes by hand, recording what it was started with. */
function manualPasses(): { started: string[][]; finish: (i: number, result?: string | Error) => void; pass: (peers: string[]) => Promise<string> } {
  const started: string[][] = [];
  const resolvers: ((v: string) => void)[] = [];
  const rejecters: ((e: Error) => void)[] = [];
  return {
    started,
    finish: (i, result) => (result instanceof Error ? rejecters[i]!(result) : resolvers[i]!(result ?? `pass ${i}`)),
    pass: (peers) => {
      started.push(peers);
      return new Promise<string>((resolve, reject) => {
        resolvers.push(resolve);
        rejecters.push(reject);
      });
    },
  };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('SerialWork', () => {
  test('never runs two passes at once; calls made during a pass coalesce into one more pass with the newest peers', async () => {
    const work = new SerialWork();
    const m = manualPasses();
    const first = work.reconcile(['a'], m.pass);
    await settle();
    assert.deepEqual(m.started, [['a']]);
    const second = work.reconcile(['b'], m.pass);
    const third = work.reconcile(['c'], m.pass);
    await settle();
    assert.deepEqual(m.started, [['a']], 'nothing starts while a pass runs');
    m.finish(0);
    assert.equal(await first, 'pass 0');
    await settle();
    assert.deepEqual(m.started, [['a'], ['c']], 'one more pass, with the newest peers');
    m.finish(1);
    assert.deepEqual([await second, await third], ['pass 1', 'pass 1'], 'both waiters get that pass\'s report');
    const fourth = work.reconcile(['d'], m.pass);
    await settle();
    assert.deepEqual(m.started.at(-1), ['d'], 'idle again: a new call starts its own pass');
    m.finish(2);
    assert.equal(await fourth, 'pass 2');
  });

  test('a failed pass rejects its callers only; the queued pass still runs', async () => {
    const work = new SerialWork();
    const m = manualPasses();
    const first = work.reconcile(['a'], m.pass);
    await settle();
    const second = work.reconcile(['b'], m.pass);
    m.finish(0, new Error('dump failed'));
    await assert.rejects(first, /dump failed/);
    await settle();
    assert.deepEqual(m.started, [['a'], ['b']]);
    m.finish(1);
    assert.equal(await second, 'pass 1');
  });

  test('exclusive work (teardown) waits for the running and the queued pass, and a later reconcile waits for it', async () => {
    const work = new SerialWork();
    const m = manualPasses();
    const order: string[] = [];
    void work.reconcile(['a'], m.pass).then(() => order.push('a'));
    await settle();
    void work.reconcile(['b'], m.pass).then(() => order.push('b'));
    const teardown = work.exclusive(() => {
      order.push('teardown');
    });
    const after = work.reconcile(['c'], m.pass);
    m.finish(0);
    await settle();
    m.finish(1);
    await teardown;
    await settle();
    assert.deepEqual(m.started, [['a'], ['b'], ['c']], 'the call after the teardown got a pass of its own');
    m.finish(2);
    await after;
    assert.deepEqual(order, ['a', 'b', 'teardown']);
  });
});

test('two backends on one kernel queue take turns: a pass of the second never starts inside a pass of the first', async () => {
  const queue = kernelQueue({});
  const shared = new KernelQueue();
  const a = new SerialWork(shared);
  const b = new SerialWork(shared);
  const events: string[] = [];
  const pass = (name: string) => async (): Promise<string> => {
    events.push(`${name} start`);
    await new Promise((r) => setImmediate(r));
    events.push(`${name} end`);
    return name;
  };
  await Promise.all([a.reconcile(1, pass('old')), b.reconcile(1, pass('new'))]);
  assert.deepEqual(events, ['old start', 'old end', 'new start', 'new end']);
  const socket = {};
  assert.equal(kernelQueue(socket), kernelQueue(socket), 'one queue per socket');
  assert.notEqual(kernelQueue(socket), queue);
});

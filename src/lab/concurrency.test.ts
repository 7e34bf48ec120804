import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapLimit } from './concurrency.ts';

test('mapLimit keeps input order and never exceeds the limit', async () => {
  let running = 0;
  let peak = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setImmediate(r));
    running--;
    return x * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(peak, 2);
});

test('mapLimit runs every item before rethrowing the first failure', async () => {
  const done: number[] = [];
  await assert.rejects(
    mapLimit([1, 2, 3], 1, async (x) => {
      if (x === 1) throw new Error('one');
      done.push(x);
    }),
    /one/,
  );
  assert.deepEqual(done, [2, 3]);
  await assert.rejects(mapLimit([], 0, async () => {}), RangeError);
});

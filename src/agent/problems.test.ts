import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProblemLog } from './problems.ts';

test('a repeated problem is one entry with a count and first/last seen times', () => {
  let now = Date.UTC(2026, 0, 1);
  const log = new ProblemLog(20, () => now);
  assert.equal(log.note('peer subnets/10.9.0.0-24', 'outside the Network'), true);
  now += 10_000;
  assert.equal(log.note('peer subnets/10.9.0.0-24', 'outside the Network'), false);
  const [entry, ...rest] = log.list();
  assert.equal(rest.length, 0);
  assert.equal(entry?.count, 2);
  assert.equal(entry?.firstSeen, '2026-01-01T00:00:00.000Z');
  assert.equal(entry?.lastSeen, '2026-01-01T00:00:10.000Z');
});

test('a peer rejected on every reconcile never pushes out a lease revocation', () => {
  const log = new ProblemLog(20);
  log.note('lease', 'lease 10.16.1.0/24 revoked (deleted)');
  for (let i = 0; i < 1000; i++) log.note('peer subnets/10.9.0.0-24', 'outside the Network');
  assert.deepEqual(log.list().map((p) => p.key).sort(), ['lease', 'peer subnets/10.9.0.0-24']);
});

test('the log is bounded: the problem seen longest ago goes first', () => {
  const log = new ProblemLog(3);
  for (const k of ['a', 'b', 'c']) log.note(k, 'x');
  log.note('a', 'x'); // a is now the most recent
  log.note('d', 'x');
  assert.deepEqual(log.list().map((p) => p.key), ['d', 'a', 'c']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readiness, type ReadinessView } from './readiness.ts';

test('not ready during start-up: the phase and its reason', () => {
  const r = new Readiness();
  r.phase('waiting-for-store', 'etcd at http://10.0.0.1:2379: connection refused');
  assert.deepEqual(r.view(), { phase: 'waiting-for-store', ready: false, reasons: ['etcd at http://10.0.0.1:2379: connection refused'] });
});

test('ready once programmed with no failing condition; degraded with one, with its reason', () => {
  const r = new Readiness();
  r.programmed();
  assert.equal(r.view().ready, true);
  assert.equal(r.view().phase, 'ready');
  assert.equal(r.fail('lease', 'the lease expired at 12:00'), true);
  assert.equal(r.fail('lease', 'the lease expired at 12:00'), false);
  assert.deepEqual(r.view(), { phase: 'degraded', ready: false, reasons: ['the lease expired at 12:00'] });
  assert.equal(r.clear('lease'), true);
  assert.equal(r.view().phase, 'ready');
});

test('a start-up phase after programming changes nothing; changes are reported once each', () => {
  const seen: ReadinessView[] = [];
  const r = new Readiness((v) => seen.push(v));
  r.programmed();
  r.phase('acquiring-lease', 'again');
  r.set('subnet.env', 'missing');
  r.set('subnet.env', 'missing');
  r.set('subnet.env', undefined);
  assert.deepEqual(seen.map((v) => v.phase), ['ready', 'degraded', 'ready']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { parseProbeReport } from './report.ts';
import { parseTargets } from './targets.ts';

test('targets: plain ones get every method (tcp/udp on --port), METHOD:// ones only theirs', () => {
  assert.deepEqual(parseTargets(['10.0.0.1,10.0.0.2:99', 'udp://[fd00::1]:7'], ['icmp', 'tcp'], 6785), [
    { method: 'icmp', address: '10.0.0.1' },
    { method: 'tcp', address: '10.0.0.1', port: 6785 },
    { method: 'icmp', address: '10.0.0.2' },
    { method: 'tcp', address: '10.0.0.2', port: 99 },
    { method: 'udp', address: 'fd00::1', port: 7 },
  ]);
  assert.deepEqual(parseTargets(['fd00::2'], ['icmp'], 1), [{ method: 'icmp', address: 'fd00::2' }]);
});

test('targets: names, bad ports, unknown methods and an empty list are refused with what to write', () => {
  for (const [spec, why] of [['example.com', /expected an IP address/], ['10.0.0.1:0', /1-65535/], ['10.0.0.1:99999', /1-65535/], ['sctp://10.0.0.1', /unknown method sctp/], [',', /no target given/]] as const) {
    assert.throws(() => parseTargets([spec], ['icmp'], 1), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && why.test(e.message), spec);
  }
});

const line = (results: unknown[]): string => JSON.stringify({ weft_probe: 1, results });

test('a report is read from the last report line; records that do not check out are dropped', () => {
  const good = { method: 'tcp', address: '10.0.0.5', port: 6785, ok: true, rtt_ms: 0.5, error: null, seen: '10.0.1.2', nonce: 'ab', attempts: 1 };
  const text = [
    'warning: something',
    line([{ ...good, ok: false }]),
    line([good, { ...good, address: 'not-an-ip' }, { ...good, method: 'sctp' }, { ...good, ok: 'yes' }, 'junk', { ...good, ok: false, rtt_ms: 3, error: 42, port: 70000 }]),
    '{not json',
  ].join('\n');
  const r = parseProbeReport(text);
  assert.ok(r);
  assert.deepEqual(r.results, [good, { ...good, ok: false, rtt_ms: null, error: 'failed (no reason given)', port: null }]);
  assert.deepEqual([r.passed, r.failed], [1, 1]);
});

test('no report: undefined (a crashed probe, a log of something else)', () => {
  assert.equal(parseProbeReport(''), undefined);
  assert.equal(parseProbeReport('Error: boom\n{"weft_probe":2,"results":[]}\n'), undefined);
  assert.equal(parseProbeReport('{"weft_probe":1,"results":"x"}')?.results.length, 0);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderCheckMatrix } from './render.ts';

test('the matrix has a row per source, a column per target, ✓ with rtt, ✗, · and a summary', () => {
  const text = renderCheckMatrix({
    probes: [
      { from: 'n1-p1', to: 'n1-p2', kind: 'pod-pod-same-node', ok: true, rtt_ms: 0.062 },
      { from: 'n1-p2', to: 'n1-p1', kind: 'pod-pod-same-node', ok: false, rtt_ms: null },
      { from: 'n1', to: 'n1-p1', kind: 'node-pod', ok: true, rtt_ms: 12.34 },
    ],
    passed: 2,
    failed: 1,
    skipped: [],
  });
  const lines = text.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^from \\ to\s+n1-p1\s+n1-p2$/);
  assert.match(lines[1] ?? '', /^n1\s+✓12\.3\s+·$/);
  assert.match(lines[2] ?? '', /^n1-p1\s+·\s+✓0\.06$/);
  assert.match(lines[3] ?? '', /^n1-p2\s+✗\s+·$/);
  assert.ok(lines.includes('✗ n1-p2 → n1-p1 (pod-pod-same-node)'));
  assert.equal(lines.at(-1), '3 probes: 2 passed, 1 failed (rtt in ms)');
});

test('a lab without pods says so', () => {
  const text = renderCheckMatrix({ probes: [], passed: 0, failed: 0, skipped: [{ kind: 'pod-node', reason: 'the lab has no pods (lab up --pods-per-node)' }] });
  assert.match(text, /^no probes/);
  assert.match(text, /^not run: pod-node: the lab has no pods/m);
});

test('a failed pod-outside probe says what the outside host saw', () => {
  const text = renderCheckMatrix({
    probes: [
      { from: 'n1-p1', to: 'outside', kind: 'pod-outside', ok: false, rtt_ms: null, source_seen: '10.16.4.2', expected_source: '172.31.1.11' },
      { from: 'n1-p2', to: 'outside', kind: 'pod-outside', ok: false, rtt_ms: null, source_seen: null, expected_source: '172.31.1.11' },
    ],
    passed: 0,
    failed: 2,
    skipped: [],
  });
  assert.match(text, /✗ n1-p1 → outside \(pod-outside\): outside saw source 10\.16\.4\.2, not the node's 172\.31\.1\.11 \(not masqueraded\)/);
  assert.match(text, /✗ n1-p2 → outside \(pod-outside\): nothing arrived at outside/);
});

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from './logger.ts';
import { LogThrottle } from './throttle.ts';

interface Line { level: number; msg: string; repeated?: number; [k: string]: unknown }

function memoryLog(): { log: ReturnType<typeof createLogger>; lines: Line[] } {
  const lines: Line[] = [];
  const log = createLogger({ name: 'test', level: 'info', destination: { write: (s: string) => { lines.push(JSON.parse(s) as Line); } } });
  return { log, lines };
}

function fakeClock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

describe('LogThrottle', () => {
  it('logs the first occurrence, counts repeats, and sums them up once the window has passed', () => {
    const { log, lines } = memoryLog();
    const clock = fakeClock();
    const throttle = new LogThrottle(log, 60_000, clock.now);
    for (let i = 0; i < 1000; i++) throttle.warn('refused', { uid: 1000 + i }, 'refused a CNI request from a non-root caller');
    assert.equal(lines.length, 1);
    assert.deepEqual([lines[0]!.msg, lines[0]!.uid, lines[0]!.level], ['refused a CNI request from a non-root caller', 1000, 40]);
    clock.advance(59_999);
    throttle.flush();
    assert.equal(lines.length, 1, 'nothing before the window ends');
    clock.advance(1);
    throttle.flush();
    assert.equal(lines.length, 2);
    assert.equal(lines[1]!.msg, 'refused a CNI request from a non-root caller (repeated 999 times in the last 60s)');
    assert.equal(lines[1]!.repeated, 999);
    assert.equal(lines[1]!.uid, 1999, 'the summary carries the latest occurrence');
    throttle.flush();
    assert.equal(lines.length, 2, 'a summary is logged once');
    throttle.warn('refused', { uid: 1 }, 'refused a CNI request from a non-root caller');
    assert.equal(lines.length, 3, 'after the window, the next occurrence is logged again');
    throttle.close();
  });

  it('keeps keys apart, and writes no summary for a key that did not repeat', () => {
    const { log, lines } = memoryLog();
    const clock = fakeClock();
    const throttle = new LogThrottle(log, 10_000, clock.now);
    throttle.warn('a', {}, 'A');
    throttle.error('b', {}, 'B');
    throttle.error('b', {}, 'B');
    assert.deepEqual(lines.map((l) => l.msg), ['A', 'B']);
    assert.equal(lines[1]!.level, 50);
    clock.advance(10_000);
    throttle.flush();
    assert.deepEqual(lines.map((l) => l.msg), ['A', 'B', 'B (repeated 1 times in the last 10s)']);
  });

  it('sums up a passed window when the key comes back before flush() runs', () => {
    const { log, lines } = memoryLog();
    const clock = fakeClock();
    const throttle = new LogThrottle(log, 5_000, clock.now);
    throttle.warn('k', {}, 'M');
    throttle.warn('k', {}, 'M');
    clock.advance(6_000);
    throttle.warn('k', {}, 'M');
    assert.deepEqual(lines.map((l) => l.msg), ['M', 'M (repeated 1 times in the last 5s)', 'M']);
  });

  it('folds keys beyond maxKeys into one entry, so keys taken from input cannot grow it', () => {
    const { log, lines } = memoryLog();
    const clock = fakeClock();
    const throttle = new LogThrottle(log, 5_000, clock.now, { maxKeys: 2 });
    for (let i = 0; i < 100; i++) throttle.warn(`peer-${i}`, { i }, 'bad value');
    assert.equal(lines.length, 3, 'two keys, then one shared entry');
    throttle.close();
    assert.equal(lines[3]!.msg, 'bad value (repeated 97 times in the last 5s)');
  });

  it('close() writes pending summaries and stops its timer', () => {
    const { log, lines } = memoryLog();
    const throttle = new LogThrottle(log, 3_600_000);
    throttle.warn('k', {}, 'M');
    throttle.warn('k', {}, 'M');
    throttle.close();
    assert.deepEqual(lines.map((l) => l.msg), ['M', 'M (repeated 1 times in the last 3600s)']);
  });
});

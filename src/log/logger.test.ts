import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, formatTextLine } from './logger.ts';
import { isWeftError } from '../errors.ts';

function capture(): { lines: string[]; destination: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => void lines.push(s) } };
}

test('json (default): pino JSON lines with numeric levels, below the level dropped', () => {
  const c = capture();
  const log = createLogger({ name: 'weft-test', level: 'warn', destination: c.destination });
  log.info('not shown');
  log.warn({ subnet: '10.16.5.0/24' }, 'shown');
  assert.equal(c.lines.length, 1);
  const e = JSON.parse(c.lines[0] ?? '') as Record<string, unknown>;
  assert.equal(e.level, 40);
  assert.equal(e.msg, 'shown');
  assert.equal(e.subnet, '10.16.5.0/24');
  assert.equal(e.name, 'weft-test');
});

test('text: one readable line per event: time, level, name: message, then key=value', () => {
  const c = capture();
  const log = createLogger({ name: 'weft-agent', level: 'trace', format: 'text', destination: c.destination });
  log.trace({ n: 3, why: 'two words', nested: { a: 1 } }, 'lease acquired\nsecond line');
  assert.equal(c.lines.length, 1);
  const line = c.lines[0] ?? '';
  assert.match(line, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z TRACE weft-agent: lease acquired second line n=3 why="two words" nested=\{"a":1\}\n$/);
  assert.doesNotMatch(line, /pid=|hostname=/);
});

test('text renders an Error field by its message, and passes non-JSON through', () => {
  const line = formatTextLine(JSON.stringify({ level: 50, time: 0, msg: 'failed', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n at x' } }));
  assert.equal(line, '1970-01-01T00:00:00.000Z ERROR failed err="boom"\n');
  assert.equal(formatTextLine('plain'), 'plain\n');
});

test('level and format come from WEFT_LOG_LEVEL / WEFT_LOG_FORMAT when not given; bad values are refused by name', () => {
  const saved = { level: process.env.WEFT_LOG_LEVEL, format: process.env.WEFT_LOG_FORMAT };
  try {
    process.env.WEFT_LOG_LEVEL = 'error';
    process.env.WEFT_LOG_FORMAT = 'text';
    const c = capture();
    const log = createLogger({ name: 'x', destination: c.destination });
    log.warn('dropped');
    log.error('kept');
    assert.equal(c.lines.length, 1);
    assert.match(c.lines[0] ?? '', / ERROR x: kept\n$/);
    process.env.WEFT_LOG_LEVEL = 'loud';
    assert.throws(() => createLogger({ name: 'x', destination: c.destination }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /WEFT_LOG_LEVEL "loud" is not one of trace, debug, info, warn, error/.test(e.message));
    assert.throws(() => createLogger({ name: 'x', level: 'info', format: 'yaml' as 'json', destination: c.destination }), /log format "yaml"/);
  } finally {
    for (const [k, v] of [['WEFT_LOG_LEVEL', saved.level], ['WEFT_LOG_FORMAT', saved.format]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

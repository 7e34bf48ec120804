import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BodyTooLargeError, ElidingJsonScanner, elidedLength, parseBounded } from './bounded-json.ts';

const opts = { maxBytes: 1000, elideValuesOver: 10 };

test('a long "value" string becomes minus its length; other strings and short values stay', () => {
  const doc = { kvs: [{ key: 'k1', value: 'short' }, { key: 'k2', value: 'x'.repeat(500) }, { key: 'y'.repeat(40), value: 'ok' }], note: 'z'.repeat(50) };
  const parsed = parseBounded(Buffer.from(JSON.stringify(doc)), opts) as typeof doc;
  assert.equal(parsed.kvs[0]!.value, 'short');
  assert.equal(elidedLength(parsed.kvs[1]!.value), 500);
  assert.equal(parsed.kvs[2]!.key, 'y'.repeat(40));
  assert.equal(parsed.note, 'z'.repeat(50));
  assert.equal(elidedLength('abc'), null);
});

test('escaped quotes and backslashes do not end a string; the result is the same JSON', () => {
  const doc = { value: 'a\\"b', other: 'q"\\"\\\\', nested: { value: '"\\' } };
  assert.deepEqual(parseBounded(Buffer.from(JSON.stringify(doc)), opts), doc);
  const long = { value: `${'\\"'.repeat(20)}end` };
  assert.equal(elidedLength((parseBounded(Buffer.from(JSON.stringify(long)), opts) as { value: unknown }).value), JSON.stringify(long.value).length - 2);
});

test('byte-at-a-time feeding gives the same answer as one chunk', () => {
  const text = JSON.stringify({ a: [{ value: 'x'.repeat(30), key: 'k"\\' }, { value: 'v' }] });
  const s = new ElidingJsonScanner(opts);
  for (const b of Buffer.from(text)) s.push(Buffer.from([b]));
  assert.deepEqual(JSON.parse(s.end().toString()), { a: [{ value: -30, key: 'k"\\' }, { value: 'v' }] });
});

test('line mode: one document per newline outside strings; a newline inside a string is data', () => {
  const docs: unknown[] = [];
  const s = new ElidingJsonScanner({ ...opts, onDocument: (d) => docs.push(JSON.parse(d.toString())) });
  s.push(Buffer.from('{"a":1}\n{"value":"'));
  s.push(Buffer.from(`${'x'.repeat(5000)}"}\n{"b":"c\\nd"}\n`));
  assert.deepEqual(docs, [{ a: 1 }, { value: -5000 }, { b: 'c\nd' }]);
});

test('past maxBytes of kept bytes: BodyTooLargeError, even when values are left out', () => {
  const s = new ElidingJsonScanner(opts);
  assert.throws(() => s.push(Buffer.from(JSON.stringify({ key: 'k'.repeat(2000) }))), BodyTooLargeError);
  const many = JSON.stringify(Array.from({ length: 200 }, () => ({ value: 'x'.repeat(100) })));
  assert.throws(() => parseBounded(Buffer.from(many), opts), BodyTooLargeError);
  // 50 elided values fit: each leaves only a few bytes.
  const some = JSON.stringify(Array.from({ length: 50 }, () => ({ value: 'x'.repeat(100_000) })));
  assert.equal((parseBounded(Buffer.from(some), opts) as unknown[]).length, 50);
});

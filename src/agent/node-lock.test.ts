import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { acquireNodeLock } from './node-lock.ts';
import { isWeftError } from '../errors.ts';

// The test runner marks its children with NODE_TEST_CONTEXT; a plain child must not inherit it.
const { NODE_TEST_CONTEXT: _ctx, ...childEnv } = process.env;
const dir = mkdtempSync(join(tmpdir(), 'weft-lock-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the lock holds our PID; a second taker is refused naming it; release lets the next one in', () => {
  const path = join(dir, 'sub', 'agent.lock');
  const lock = acquireNodeLock(path);
  assert.equal(lock.path, path);
  assert.equal(readFileSync(path, 'utf8'), `${process.pid}\n`);
  assert.throws(() => acquireNodeLock(path), (e) =>
    isWeftError(e) && e.message.includes(`another weft agent (PID ${process.pid}) already runs on this node`) && /stop it first/.test(e.message) && /weft status/.test(e.message));
  lock.release();
  lock.release(); // idempotent
  const again = acquireNodeLock(path);
  again.release();
});

test('a lock held by another process is refused naming that process; its death frees the lock', async () => {
  const path = join(dir, 'other.lock');
  const holder = spawn(process.execPath, ['--input-type=module', '-e',
    `import { acquireNodeLock } from ${JSON.stringify(new URL('./node-lock.ts', import.meta.url).href)};
     acquireNodeLock(${JSON.stringify(path)}); process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv });
  const exited = once(holder, 'exit');
  try {
    await once(holder.stdout, 'data');
    assert.throws(() => acquireNodeLock(path), new RegExp(`\\(PID ${holder.pid}\\)`));
  } finally {
    holder.kill('SIGKILL');
    await exited;
  }
  acquireNodeLock(path).release();
});

test('a lock file that cannot be created names the path and why', () => {
  const notADir = join(dir, 'plain-file');
  writeFileSync(notADir, '');
  const path = join(notADir, 'agent.lock');
  assert.throws(() => acquireNodeLock(path), (e) => isWeftError(e, 'WEFT_IO') && e.message.includes(path));
});

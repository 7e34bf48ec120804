import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connectKube } from '../client.ts';

const MAIN = new URL('./main.ts', import.meta.url).pathname;

function start(args: string[]): { child: ChildProcess; firstLine: Promise<string>; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => void (err += c.toString()));
  const lines = createInterface({ input: child.stdout! });
  const firstLine = new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`exited with ${code} before printing`)));
  });
  firstLine.catch(() => undefined); // awaited by the tests that expect a line
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, firstLine, exited, stderr: () => err };
}

test('main.ts: prints {"url"} when listening, writes a kubeconfig the client uses, stops on SIGTERM, keeps objects with --state', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-standin-main-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kubeconfig = join(dir, 'kubeconfig');
  const args = ['--listen', '127.0.0.1:0', '--kubeconfig', kubeconfig, '--state', join(dir, 'state.json')];
  const first = start(args);
  t.after(() => first.child.kill('SIGKILL'));
  const printed = JSON.parse(await first.firstLine) as { url: string };
  assert.match(printed.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const client = await connectKube({ kubeconfigFile: kubeconfig });
  assert.equal(client.server, printed.url);
  assert.notEqual(await client.createLease('weft', { metadata: { name: 'kept' }, spec: { holderIdentity: 'x' } }), 'exists');
  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0);

  const second = start(args);
  t.after(() => second.child.kill('SIGKILL'));
  await second.firstLine;
  const again = await connectKube({ kubeconfigFile: kubeconfig });
  assert.equal((await again.getLease('weft', 'kept'))?.spec?.holderIdentity, 'x');
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);
});

test('main.ts: a bad --listen is refused by name with exit code 2', async () => {
  const p = start(['--listen', 'nonsense', '--kubeconfig', '/nonexistent/x']);
  assert.equal(await p.exited, 2);
  assert.match(p.stderr(), /--listen nonsense: use HOST:PORT/);
});

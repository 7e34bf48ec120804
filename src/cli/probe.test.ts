// `weft probe` and `weft probe serve` as a user runs them: the real bin/weft on loopback, no root.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const WEFT = fileURLToPath(new URL('../../bin/weft', import.meta.url));
const weft = (...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    const c = spawn(WEFT, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });

const server = spawn(WEFT, ['probe', 'serve', '--port', '0', '--address', '127.0.0.1', '--json', '--exit-after', '5m'], { stdio: ['ignore', 'pipe', 'inherit'] });
after(() => void server.kill('SIGKILL'));
const [first] = (await once(createInterface({ input: server.stdout }), 'line')) as [string];
const port = (JSON.parse(first) as { listening: { port: number } }).listening.port;

test('probe serve answers tcp and udp; probe --json reports them, exit 0', async () => {
  const r = await weft('probe', '--json', '--kinds', 'tcp,udp', '--to', `127.0.0.1:${port}`);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { weft_probe: number; results: { method: string; ok: boolean; seen: string }[]; passed: number };
  assert.deepEqual(report.results.map((x) => [x.method, x.ok, x.seen]), [['tcp', true, '127.0.0.1'], ['udp', true, '127.0.0.1']]);
  assert.equal(r.stdout.trim().split('\n').length, 1, 'one line');
});

test('text output names each failure with its reason; any failure exits 1', async () => {
  const r = await weft('probe', '--to', `tcp://127.0.0.1:${port},udp://127.0.0.1:1`, '--attempts', '1', '--timeout', '300ms');
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`^✓ tcp 127\\.0\\.0\\.1:${port} [\\d.]+ ms \\(seen as 127\\.0\\.0\\.1\\)\\n✗ udp 127\\.0\\.0\\.1:1: no answer to 1 datagram \\(300 ms each\\)\\n2 probes: 1 passed, 1 failed\\n$`));
});

test('bad flags: one line and exit 2; a bad target: one line and exit 1; never a stack trace', () => {
  const kinds = spawnSync(WEFT, ['probe', '--kinds', 'sctp', '--to', '127.0.0.1'], { encoding: 'utf8' });
  assert.equal(kinds.status, 2);
  assert.match(kinds.stderr, /^weft probe: option '--kinds <methods>' argument 'sctp' is invalid\. expected a comma-separated list of: icmp, tcp, udp\.\nsee `weft probe --help`\n$/);
  const target = spawnSync(WEFT, ['probe', '--to', 'example.com'], { encoding: 'utf8' });
  assert.equal(target.status, 1);
  assert.equal(target.stderr, 'weft: --to "example.com": expected an IP address (optionally with :port), e.g. 10.244.1.5 or 10.244.1.5:6785 or [fd00::5]:6785\n');
  const none = spawnSync(WEFT, ['probe'], { encoding: 'utf8' });
  assert.equal(none.status, 1);
  assert.match(none.stderr, /^weft: --to: no target given/);
});

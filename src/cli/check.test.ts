// `weft check` as a user runs it: the real bin/weft against the stand-in API server, whose pods
// a fake kubelet in this process plays with the real probe code (no root). SIGINT and SIGTERM
// must leave no namespace behind.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeKubelet, type FakeKubeletOptions } from '../check/testing.ts';
import { KubeStandin } from '../kube/standin/server.ts';

const WEFT = fileURLToPath(new URL('../../bin/weft', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'weft-check-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

async function cluster(t: { after: (fn: () => Promise<void>) => void }, kubelet: FakeKubeletOptions = {}): Promise<{ standin: KubeStandin; kubeconfig: string }> {
  const standin = await KubeStandin.start();
  const kubeconfig = join(dir, `kc-${Math.random().toString(36).slice(2)}.yaml`);
  standin.writeKubeconfig(kubeconfig);
  standin.addNode('n1', { internalIP: '127.0.2.1' });
  standin.addNode('n2', { internalIP: '127.0.2.2' });
  const fake = new FakeKubelet(standin, kubelet);
  t.after(async () => {
    await fake.stop();
    await standin.close();
  });
  return { standin, kubeconfig };
}

interface Ran { code: number | null; stdout: string; stderr: string }

function weft(args: string[], onStart?: (child: ChildProcess) => void): Promise<Ran> {
  const child = spawn(WEFT, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  onStart?.(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code, stdout, stderr });
  }));
}

const checkNamespaces = (s: KubeStandin): string[] =>
  (s.list('namespaces') as V1Namespace[]).map((n) => n.metadata?.name ?? '').filter((n) => n.startsWith('weft-check-'));

test('weft check --json: the report on stdout, progress on stderr, exit 0, no namespace left', async (t) => {
  const c = await cluster(t);
  const port = await freePort();
  const r = await weft(['check', '--kubeconfig', c.kubeconfig, '--image', 'weft:test', '--port', String(port), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { passed: number; failed: number; problems: string[]; namespace_deleted: boolean; probes: { kind: string }[] };
  assert.deepEqual([report.passed, report.failed, report.problems], [2 * 2 * 3 * 2 + 4, 0, []]);
  assert.equal(report.namespace_deleted, true);
  assert.match(r.stderr, /responders ready on 2 of 2 nodes/);
  assert.deepEqual(checkNamespaces(c.standin), []);
});

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
  test(`${signal} while the clients run: the namespace is deleted, exit ${code}`, async (t) => {
    let child: ChildProcess | undefined;
    const c = await cluster(t, {
      part: (p: V1Pod) => (p.metadata?.labels?.['weft.dev/check-role'] === 'server' ? { kind: 'normal' } : { kind: 'hang' }),
      onPod: (p: V1Pod) => {
        if (p.metadata?.name === 'pod-0') setTimeout(() => child?.kill(signal), 200);
      },
    });
    const r = await weft(['check', '--kubeconfig', c.kubeconfig, '--image', 'weft:test', '--port', String(await freePort())], (ch) => (child = ch));
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr, new RegExp(`${signal}: stopping, deleting the check's namespace`));
    assert.match(r.stderr, /interrupted; namespace weft-check-[0-9a-f]{6} deleted\n$/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.deepEqual(checkNamespaces(c.standin), []);
  });
}

test('weft check --cleanup deletes a leftover namespace older than --older-than; a bad kubeconfig is one line', async (t) => {
  const c = await cluster(t);
  c.standin.create('namespaces', { metadata: { name: 'weft-check-abcdef', labels: { app: 'weft-check' }, annotations: { 'weft.dev/check-started': new Date(Date.now() - 7200_000).toISOString() } } });
  const r = await weft(['check', '--kubeconfig', c.kubeconfig, '--cleanup']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'deleted namespace weft-check-abcdef\n');
  assert.deepEqual(checkNamespaces(c.standin), []);
  const none = await weft(['check', '--kubeconfig', c.kubeconfig, '--cleanup']);
  assert.equal(none.stdout, 'no weft-check-* namespace left by a check\n');
  const bad = await weft(['check', '--kubeconfig', join(dir, 'missing.yaml')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^weft: --kubeconfig .*missing\.yaml: /);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
});

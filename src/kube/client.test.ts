import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Lease } from '@kubernetes/client-node';
import { isWeftError } from '../errors.ts';
import { connectKube } from './client.ts';
import { kubeError } from './errors.ts';
import { SERVICE_ACCOUNT_DIR } from './config.ts';
import { KubeStandin } from './standin/server.ts';
import { startStandinWithClient } from './testing.ts';

const lease = (name: string, extra: Partial<V1Lease['spec']> = {}): V1Lease => ({
  metadata: { name, labels: { 'weft.dev/claim': 'subnet' } },
  spec: { holderIdentity: 'n1', leaseDurationSeconds: 30, ...extra },
});

test('create: the object comes back with server-set fields; the same name again is "exists" (409 AlreadyExists)', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const made = await f.client.createLease('weft', lease('subnet-10-244-3-0-24', { renewTime: f.client.microTime(new Date('2026-01-02T03:04:05.678Z')) }));
  assert.notEqual(made, 'exists');
  if (made === 'exists') return;
  assert.equal(made.metadata?.namespace, 'weft');
  assert.match(made.metadata?.uid ?? '', /^[0-9a-f-]{36}$/);
  assert.match(made.metadata?.resourceVersion ?? '', /^\d+$/);
  assert.equal(String(made.spec?.renewTime), '2026-01-02T03:04:05.678000Z');
  assert.equal(await f.client.createLease('weft', lease('subnet-10-244-3-0-24')), 'exists');
  const list = await f.client.listLeases('weft', 'weft.dev/claim=subnet');
  assert.equal(list.items.length, 1);
  assert.equal(list.resourceVersion, f.standin.resourceVersion);
  assert.equal((await f.client.listLeases('weft', 'weft.dev/claim=mesh-peer')).items.length, 0);
});

test('Lease times must be MicroTime: a plain Date (3 fractional digits) is refused with 400 naming the field', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  await assert.rejects(f.client.createLease('weft', lease('l1', { renewTime: new Date() })),
    (e) => isWeftError(e, 'WEFT_KUBE') && /HTTP 400 BadRequest: .*spec\.renewTime needs exactly six fractional digits/.test(e.message));
});

test('update: PUT with the current resourceVersion wins, a stale one is "conflict" (409 Conflict), none is 422 for a Lease', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const made = await f.client.createLease('weft', lease('l1'));
  assert.ok(made !== 'exists');
  const stale = structuredClone(made);
  made.spec = { ...made.spec, holderIdentity: 'n2' };
  const updated = await f.client.replaceLease('weft', made);
  assert.ok(updated !== 'conflict');
  assert.equal(updated.spec?.holderIdentity, 'n2');
  assert.notEqual(updated.metadata?.resourceVersion, stale.metadata?.resourceVersion);
  stale.spec = { ...stale.spec, holderIdentity: 'n3' };
  assert.equal(await f.client.replaceLease('weft', stale), 'conflict');
  assert.equal((await f.client.getLease('weft', 'l1'))?.spec?.holderIdentity, 'n2');
  const noRv = lease('l1');
  await assert.rejects(f.client.replaceLease('weft', noRv),
    (e) => isWeftError(e, 'WEFT_KUBE') && /HTTP 422 Invalid: Lease\.coordination\.k8s\.io "l1" is invalid: metadata\.resourceVersion: .*must be specified for an update/.test(e.message));
});

test('delete: a failed uid or resourceVersion precondition is "conflict", a match deletes, a second delete is "gone"', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const made = await f.client.createLease('weft', lease('l1'));
  assert.ok(made !== 'exists');
  assert.equal(await f.client.deleteLease('weft', 'l1', { uid: '00000000-0000-0000-0000-000000000000' }), 'conflict');
  assert.equal(await f.client.deleteLease('weft', 'l1', { resourceVersion: '1' }), 'conflict');
  assert.ok(await f.client.getLease('weft', 'l1'));
  assert.equal(await f.client.deleteLease('weft', 'l1', { uid: made.metadata?.uid ?? '', resourceVersion: made.metadata?.resourceVersion ?? '' }), 'deleted');
  assert.equal(await f.client.getLease('weft', 'l1'), null);
  assert.equal(await f.client.deleteLease('weft', 'l1'), 'gone');
});

test('patchNodeAnnotations: merge patch on nodes/status sets and deletes keys, keeps spec; a no-op patch does not bump the resourceVersion', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  f.standin.addNode('n1', { internalIP: '10.0.0.1', podCIDR: '10.244.1.0/24' });
  await f.client.patchNodeAnnotations('n1', { 'flannel.alpha.coreos.com/public-ip': '10.0.0.1', 'weft.dev/subnet': '10.244.7.0/24' });
  await f.client.patchNodeAnnotations('n1', { 'weft.dev/subnet': null });
  const node = await f.client.getNode('n1');
  assert.deepEqual(node?.metadata?.annotations, { 'flannel.alpha.coreos.com/public-ip': '10.0.0.1' });
  assert.equal(node?.spec?.podCIDR, '10.244.1.0/24');
  const patch = f.standin.requests.filter((r) => r.method === 'PATCH');
  assert.deepEqual(patch.map((r) => r.path), ['/api/v1/nodes/n1/status', '/api/v1/nodes/n1/status']);
  const rv = f.standin.resourceVersion;
  await f.client.patchNodeAnnotations('n1', { 'flannel.alpha.coreos.com/public-ip': '10.0.0.1' });
  assert.equal(f.standin.resourceVersion, rv);
  await assert.rejects(f.client.patchNodeAnnotations('nope', { a: 'b' }), (e) => isWeftError(e, 'WEFT_KUBE') && /HTTP 404 NotFound: nodes "nope" not found/.test(e.message));
});

test('get on a missing object is null; getConfigMap reads data', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  assert.equal(await f.client.getNode('n1'), null);
  assert.equal(await f.client.getConfigMap('weft', 'weft-cfg'), null);
  f.standin.create('configmaps', { metadata: { name: 'weft-cfg', namespace: 'weft' }, data: { 'net-conf.json': '{"Network":"10.244.0.0/16"}' } });
  assert.deepEqual((await f.client.getConfigMap('weft', 'weft-cfg'))?.data, { 'net-conf.json': '{"Network":"10.244.0.0/16"}' });
});

function makeCert(dir: string): { cert: string; key: string } {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=weft-standin', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
}

function withEnv(t: { after(fn: () => void): void }, vars: Record<string, string>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  t.after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

test('in-cluster: ServiceAccount token, ca.crt and namespace files + KUBERNETES_SERVICE_HOST/PORT, over HTTPS; a wrong token is 401 with the RBAC hint', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-incluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tls = makeCert(dir);
  const standin = await KubeStandin.start({ tls, token: 'sa-token-123' });
  t.after(() => standin.close());
  standin.addNode('n1');
  const sa = join(dir, 'root', SERVICE_ACCOUNT_DIR);
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), 'sa-token-123');
  writeFileSync(join(sa, 'ca.crt'), tls.cert);
  writeFileSync(join(sa, 'namespace'), 'weft');
  withEnv(t, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(standin.url).port });
  const client = await connectKube({ inClusterRoot: join(dir, 'root') });
  assert.equal(client.server, standin.url);
  assert.equal(client.source, 'in-cluster ServiceAccount');
  assert.equal(client.namespace, 'weft');
  assert.equal((await client.getNode('n1'))?.metadata?.name, 'n1');
  assert.ok(standin.requests.some((r) => r.path === '/api/v1/nodes/n1'));
  const before = standin.connections;
  for (let i = 0; i < 10; i++) await client.getNode('n1');
  assert.ok(standin.connections - before <= 1, `10 requests opened ${standin.connections - before} TLS connections; one pool should serve them`);

  const wrongDir = join(dir, 'wrong', SERVICE_ACCOUNT_DIR);
  mkdirSync(wrongDir, { recursive: true });
  writeFileSync(join(wrongDir, 'token'), 'not-the-token');
  writeFileSync(join(wrongDir, 'ca.crt'), tls.cert);
  const wrong = await connectKube({ inClusterRoot: join(dir, 'wrong') });
  await assert.rejects(wrong.getNode('n1'), (e) => isWeftError(e, 'WEFT_NOT_READY') && /HTTP 401 .*check the ServiceAccount's RBAC \(ClusterRole weft\)/.test(e.message));
});

test('in-cluster over HTTPS with a CA that did not sign the server: the TLS failure names the CA to check', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-incluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const tls = makeCert(dir);
  const standin = await KubeStandin.start({ tls });
  t.after(() => standin.close());
  const otherDir = join(dir, 'other');
  mkdirSync(otherDir);
  const other = makeCert(otherDir);
  const sa = join(dir, 'root', SERVICE_ACCOUNT_DIR);
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), 't');
  writeFileSync(join(sa, 'ca.crt'), other.cert);
  withEnv(t, { KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: new URL(standin.url).port });
  const client = await connectKube({ inClusterRoot: join(dir, 'root') });
  await assert.rejects(client.getNode('n1'), (e) => isWeftError(e, 'WEFT_NOT_READY') && /TLS certificate was refused .*ca\.crt/.test(e.message));
});

test('a token mounted without KUBERNETES_SERVICE_HOST is refused by name; no credentials at all is refused by name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-incluster-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sa = join(dir, SERVICE_ACCOUNT_DIR);
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, 'token'), 't');
  withEnv(t, { KUBERNETES_SERVICE_HOST: '', KUBERNETES_SERVICE_PORT: '', KUBECONFIG: '', HOME: join(dir, 'home') });
  await assert.rejects(connectKube({ inClusterRoot: dir }), (e) => isWeftError(e, 'WEFT_INVALID_ENV') && /KUBERNETES_SERVICE_HOST/.test(e.message));
  await assert.rejects(connectKube({ inClusterRoot: join(dir, 'empty') }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /no Kubernetes credentials/.test(e.message));
  await assert.rejects(connectKube({ kubeconfigFile: join(dir, 'missing') }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /kubeconfig .*missing cannot be used/.test(e.message));
});

test('apiUrl overrides the kubeconfig server; plain http needs no skipTLSVerify in the kubeconfig', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const plain = join(f.dir, 'plain');
  writeFileSync(plain, readFileSync(f.kubeconfig, 'utf8').replace(/\n\s*insecure-skip-tls-verify: true/, '').replace(f.standin.url, 'https://192.0.2.1:6443'));
  const c = await connectKube({ kubeconfigFile: plain, apiUrl: f.standin.url });
  assert.equal(c.server, f.standin.url);
  f.standin.addNode('n1');
  assert.equal((await c.listNodes()).items.length, 1);
});

test('a hung API server times out (WEFT_NOT_READY), a closed port is "connection refused", 403 and 503 say what to do', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const held = new Set<net.Socket>();
  const hung = net.createServer((s) => void held.add(s));
  await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of held) s.destroy();
    hung.close();
  });
  const hungUrl = `http://127.0.0.1:${(hung.address() as net.AddressInfo).port}`;
  const slow = await connectKube({ kubeconfigFile: f.kubeconfig, apiUrl: hungUrl, requestTimeoutMs: 300 });
  await assert.rejects(slow.getNode('n1'), (e) => isWeftError(e, 'WEFT_NOT_READY') && /GET node n1 failed: no answer in time/.test(e.message));

  const closed = await new Promise<number>((r) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => r(port));
    });
  });
  const refused = await connectKube({ kubeconfigFile: f.kubeconfig, apiUrl: `http://127.0.0.1:${closed}` });
  await assert.rejects(refused.listNodes(), (e) => isWeftError(e, 'WEFT_NOT_READY') && /list nodes failed: connection refused \(ECONNREFUSED\); check that the API server is reachable/.test(e.message));

  const forbidding = http.createServer((_req, res) => {
    res.writeHead(403, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403, message: 'nodes is forbidden: User "system:serviceaccount:weft:weft" cannot list resource "nodes"' }));
  });
  await new Promise<void>((r) => forbidding.listen(0, '127.0.0.1', r));
  t.after(() => {
    forbidding.closeAllConnections();
    forbidding.close();
  });
  const denied = await connectKube({ kubeconfigFile: f.kubeconfig, apiUrl: `http://127.0.0.1:${(forbidding.address() as net.AddressInfo).port}` });
  await assert.rejects(denied.listNodes(), (e) => isWeftError(e, 'WEFT_NOT_READY') && /HTTP 403 Forbidden: nodes is forbidden: .*; check the ServiceAccount's RBAC \(ClusterRole weft\)$/.test(e.message));

  f.standin.setAvailable(false);
  await assert.rejects(f.client.listNodes(), (e) => isWeftError(e, 'WEFT_NOT_READY') && /HTTP 503 ServiceUnavailable: .*weft retries/.test(e.message));
});

test('kubeError: a raw-text 409 body is parsed for its reason; an unparseable body is kept as the message', () => {
  const e = kubeError('https://k', 'create lease weft/x', { code: 409, body: '{"kind":"Status","reason":"AlreadyExists","message":"leases.coordination.k8s.io \\"x\\" already exists","code":409}' });
  assert.equal(e.code, 'WEFT_KUBE');
  assert.equal(e.message, 'kubernetes API https://k: create lease weft/x failed: HTTP 409 AlreadyExists: leases.coordination.k8s.io "x" already exists');
  assert.match(kubeError('https://k', 'x', { code: 418, body: 'teapot' }).message, /HTTP 418: teapot$/);
  assert.equal(kubeError('https://k', 'x', { code: 429, body: '' }).code, 'WEFT_NOT_READY');
});

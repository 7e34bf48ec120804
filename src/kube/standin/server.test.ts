import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { startStandinWithClient, waitFor, type StandinFixture } from '../testing.ts';
import { StatusError } from './server.ts';

async function raw(f: StandinFixture, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(f.standin.url + path, { method, body, headers: { 'Content-Type': 'application/json', ...headers } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

interface Watched { kind?: string; code?: number; reason?: string; metadata?: { name?: string; resourceVersion?: string }; spec?: { holderIdentity?: string } }

function collect(f: StandinFixture, path: string, query: Record<string, string>): { events: { type: string; obj: Watched }[]; ended: () => boolean; stop: () => void } {
  const events: { type: string; obj: Watched }[] = [];
  let done = false;
  let ctrl: AbortController | undefined;
  void f.client.watch(path, query, (type, obj) => void events.push({ type, obj: obj as Watched }), () => (done = true)).then((c) => (ctrl = c));
  return { events, ended: () => done, stop: () => ctrl?.abort() };
}

test('errors are Status objects like the real server\'s: AlreadyExists names the qualified resource', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const body = JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l1' } });
  assert.equal((await raw(f, 'POST', '/apis/coordination.k8s.io/v1/namespaces/weft/leases', body)).status, 201);
  const again = await raw(f, 'POST', '/apis/coordination.k8s.io/v1/namespaces/weft/leases', body);
  assert.equal(again.status, 409);
  assert.deepEqual(again.json, {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'leases.coordination.k8s.io "l1" already exists',
    reason: 'AlreadyExists', details: { name: 'l1', group: 'coordination.k8s.io', kind: 'leases' }, code: 409,
  });
  const missingNs = await raw(f, 'POST', '/api/v1/namespaces/nope/configmaps', JSON.stringify({ metadata: { name: 'c' } }));
  assert.equal(missingNs.status, 404);
  assert.equal(missingNs.json.message, 'namespaces "nope" not found');
  const withRv = await raw(f, 'POST', '/api/v1/namespaces/weft/configmaps', JSON.stringify({ metadata: { name: 'c', resourceVersion: '5' } }));
  assert.equal(withRv.status, 422);
});

test('malformed, oversized and unknown requests are refused with a Status', async (t) => {
  const f = await startStandinWithClient({ maxBodyBytes: 4096 });
  t.after(() => f.close());
  const bad = await raw(f, 'POST', '/api/v1/nodes', '{"metadata": {');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.kind, 'Status');
  assert.equal(bad.json.reason, 'BadRequest');
  const wrongType = await raw(f, 'POST', '/api/v1/nodes', JSON.stringify({ metadata: { name: 'n1', labels: { a: 1 } } }));
  assert.equal(wrongType.status, 400);
  const badName = await raw(f, 'POST', '/api/v1/nodes', JSON.stringify({ metadata: { name: 'Not_A_Name' } }));
  assert.equal(badName.status, 422);
  assert.equal(badName.json.reason, 'Invalid');
  // through the real client: a ConfigMap above the body bound
  const core = f.client.config.makeApiClient(CoreV1Api);
  await assert.rejects(core.createNamespacedConfigMap({ namespace: 'weft', body: { metadata: { name: 'big' }, data: { x: 'y'.repeat(10_000) } } }),
    (e: { code?: number; body?: string }) => e.code === 413 && /"reason":"RequestEntityTooLarge"/.test(e.body ?? ''));
  const unknown = await raw(f, 'GET', '/apis/apps/v1/daemonsets');
  assert.equal(unknown.status, 404);
  assert.match(String(unknown.json.message), /not implemented by the weft stand-in/);
  const smp = await raw(f, 'PATCH', '/api/v1/nodes/n1', '{}', { 'Content-Type': 'application/apply-patch+yaml' });
  assert.equal(smp.status, 415);
  assert.equal(f.standin.list('nodes').length, 0);
});

test('a token is required when configured (401 Status); setAvailable(false) answers 503', async (t) => {
  const f = await startStandinWithClient({ token: 's3cret' });
  t.after(() => f.close());
  assert.equal((await f.client.listNodes()).items.length, 0);
  const anon = await raw(f, 'GET', '/api/v1/nodes');
  assert.equal(anon.status, 401);
  assert.equal(anon.json.reason, 'Unauthorized');
  f.standin.setAvailable(false);
  assert.equal((await raw(f, 'GET', '/api/v1/nodes', undefined, { Authorization: 'Bearer s3cret' })).status, 503);
});

test('one global resourceVersion; a no-op write bumps nothing; Node PUT without RV is allowed, status is kept by the main endpoint', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const core = f.client.config.makeApiClient(CoreV1Api);
  const n = await core.createNode({ body: { metadata: { name: 'n1' }, spec: { podCIDR: '10.244.1.0/24' }, status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }] } } });
  const cm = await core.createNamespacedConfigMap({ namespace: 'weft', body: { metadata: { name: 'c' }, data: { a: '1' } } });
  assert.equal(Number(cm.metadata?.resourceVersion), Number(n.metadata?.resourceVersion) + 1);
  const rv = f.standin.resourceVersion;
  await core.replaceNamespacedConfigMap({ namespace: 'weft', name: 'c', body: { metadata: { name: 'c' }, data: { a: '1' } } });
  assert.equal(f.standin.resourceVersion, rv, 'no-op PUT');
  const replaced = await core.replaceNode({ name: 'n1', body: { metadata: { name: 'n1', labels: { x: 'y' } }, spec: { podCIDR: '10.244.1.0/24' }, status: {} } });
  assert.deepEqual(JSON.parse(JSON.stringify(replaced.status?.addresses)), [{ type: 'InternalIP', address: '10.0.0.1' }]);
  assert.equal(replaced.metadata?.labels?.x, 'y');
  await assert.rejects(core.replaceNode({ name: 'n1', body: { metadata: { name: 'n1' }, spec: { podCIDR: '10.244.2.0/24' } } }), (e: { code?: number }) => e.code === 422);
  // a merge patch carrying a stale resourceVersion is a compare-and-swap
  await assert.rejects(core.patchNode({ name: 'n1', body: { metadata: { resourceVersion: '1', labels: { x: 'z' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch)),
    (e: { code?: number; body?: string }) => e.code === 409 && /"reason":"Conflict"/.test(e.body ?? ''));
  const smp = await core.patchNode({ name: 'n1', body: { metadata: { labels: { x: 'z' } } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
  assert.equal(smp.metadata?.labels?.x, 'z');
  const jp = await core.patchNode({ name: 'n1', body: [{ op: 'add', path: '/metadata/labels/j', value: 'p' }] });
  assert.equal(jp.metadata?.labels?.j, 'p');
});

test('watch: DELETED carries the last state at the deletion RV; selector transitions are ADDED/DELETED; a too old RV is ERROR 410 in a 200 stream', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const w = collect(f, '/apis/coordination.k8s.io/v1/namespaces/weft/leases', { labelSelector: 'weft.dev/claim=subnet' });
  t.after(() => w.stop());
  await waitFor('the watch open', () => f.standin.openWatches === 1);
  const l = f.standin.create('leases', { metadata: { name: 'l1', namespace: 'weft', labels: { 'weft.dev/claim': 'subnet' } }, spec: { holderIdentity: 'a' } }) as { metadata: Record<string, unknown> };
  f.standin.update('leases', { ...l, metadata: { ...l.metadata, labels: { 'weft.dev/claim': 'other' } } });
  const back = f.standin.update('leases', { ...l, metadata: { ...l.metadata, labels: { 'weft.dev/claim': 'subnet' } }, spec: { holderIdentity: 'b' } }) as { metadata: Record<string, unknown> };
  f.standin.create('leases', { metadata: { name: 'unlabelled', namespace: 'weft' } });
  f.standin.delete('leases', 'weft', 'l1');
  await waitFor('four events', () => w.events.length >= 4);
  assert.deepEqual(w.events.map((e) => e.type), ['ADDED', 'DELETED', 'ADDED', 'DELETED']);
  const deleted = w.events[3]?.obj;
  assert.equal(deleted?.spec?.holderIdentity, 'b');
  assert.equal(Number(deleted?.metadata?.resourceVersion), Number(back.metadata.resourceVersion) + 2);
  assert.equal(deleted?.kind, 'Lease');

  const oldRv = String(Number(f.standin.resourceVersion) - 2);
  f.standin.compact();
  const expired = collect(f, '/apis/coordination.k8s.io/v1/namespaces/weft/leases', { resourceVersion: oldRv });
  await waitFor('the end of the expired watch', () => expired.ended());
  assert.equal(expired.events.length, 1);
  assert.equal(expired.events[0]?.type, 'ERROR');
  assert.deepEqual({ code: expired.events[0]?.obj.code, reason: expired.events[0]?.obj.reason, kind: expired.events[0]?.obj.kind }, { code: 410, reason: 'Expired', kind: 'Status' });
  // the latest RV is never too old
  const current = collect(f, '/apis/coordination.k8s.io/v1/namespaces/weft/leases', { resourceVersion: f.standin.resourceVersion });
  t.after(() => current.stop());
  f.standin.create('leases', { metadata: { name: 'l2', namespace: 'weft' } });
  await waitFor('l2', () => current.events.some((e) => e.type === 'ADDED' && e.obj.metadata?.name === 'l2'));
});

test('watch: timeoutSeconds ends the stream after a BOOKMARK when allowed; a bounded history answers 410 for older RVs', async (t) => {
  const f = await startStandinWithClient({ historyLimit: 2 });
  t.after(() => f.close());
  const w = collect(f, '/api/v1/nodes', { timeoutSeconds: '1', allowWatchBookmarks: 'true', resourceVersion: f.standin.resourceVersion });
  await waitFor('the server-side timeout', () => w.ended());
  assert.deepEqual(w.events.map((e) => e.type), ['BOOKMARK']);
  assert.equal(w.events[0]?.obj.metadata?.resourceVersion, f.standin.resourceVersion);
  const start = f.standin.resourceVersion;
  for (const n of ['a', 'b', 'c']) f.standin.addNode(n);
  const old = collect(f, '/api/v1/nodes', { resourceVersion: start });
  await waitFor('the 410', () => old.ended());
  assert.equal(old.events[0]?.obj.code, 410);
});

test('namespace deletion removes the objects in it; pods: field selector spec.nodeName, status kept Pending, log from the in-process kubelet', async (t) => {
  const f = await startStandinWithClient({ namespaces: ['weft', 'probe'] });
  t.after(() => f.close());
  const core = f.client.config.makeApiClient(CoreV1Api);
  const pod = (name: string, node: string): V1Pod => ({ metadata: { name }, spec: { nodeName: node, containers: [{ name: 'c', image: 'x' }] } });
  const p1 = await core.createNamespacedPod({ namespace: 'probe', body: pod('p1', 'n1') });
  assert.equal(p1.status?.phase, 'Pending');
  await core.createNamespacedPod({ namespace: 'probe', body: pod('p2', 'n2') });
  const mine = await core.listNamespacedPod({ namespace: 'probe', fieldSelector: 'spec.nodeName=n1' });
  assert.deepEqual(mine.items.map((p) => p.metadata?.name), ['p1']);
  await assert.rejects(core.listNamespacedPod({ namespace: 'probe', fieldSelector: 'spec.schedulerName=x' }), (e: { code?: number }) => e.code === 400);
  f.standin.setPodLog('probe', 'p1', 'line 1\nline 2\n');
  assert.equal(await core.readNamespacedPodLog({ namespace: 'probe', name: 'p1' }), 'line 1\nline 2\n');
  assert.equal(await core.readNamespacedPodLog({ namespace: 'probe', name: 'p1', tailLines: 1 }), 'line 2\n');
  const running = f.standin.update('pods', { ...(f.standin.get('pods', 'probe', 'p1') as object), status: { phase: 'Running', podIP: '10.244.1.5' } }) as V1Pod;
  assert.equal(running.status?.phase, 'Running');
  await core.deleteNamespace({ name: 'probe' });
  assert.equal(f.standin.list('pods').length, 0);
  assert.equal(f.standin.get('namespaces', undefined, 'probe'), undefined);
  assert.throws(() => f.standin.create('pods', { metadata: { name: 'p3', namespace: 'probe' } }), (e) => e instanceof StatusError && e.code === 404);
});

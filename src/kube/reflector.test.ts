import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Node } from '@kubernetes/client-node';
import { Reflector, type ReflectorOptions } from './reflector.ts';
import { memoryLogger, startStandinWithClient, waitFor, type StandinFixture } from './testing.ts';

interface Seen {
  last: ReadonlyMap<string, V1Node>;
  syncs: number;
  errors: string[];
  healthy: number;
}

function nodeReflector(f: StandinFixture, o: Partial<ReflectorOptions<V1Node>> = {}): { r: Reflector<V1Node>; seen: Seen; lines: string[] } {
  const { log, lines } = memoryLogger();
  const r = new Reflector<V1Node>({ client: f.client, path: '/api/v1/nodes', list: () => f.client.listNodes(), log, backoffMs: [20, 200], ...o });
  const seen: Seen = { last: new Map(), syncs: 0, errors: [], healthy: 0 };
  r.start({
    onSync: (m) => {
      seen.last = m;
      seen.syncs++;
    },
    onError: (e) => void seen.errors.push(e),
    onHealthy: () => void seen.healthy++,
  });
  return { r, seen, lines };
}

const watchQueries = (f: StandinFixture): URLSearchParams[] =>
  f.standin.requests.filter((q) => q.path === '/api/v1/nodes' && q.query.includes('watch=true')).map((q) => new URLSearchParams(q.query));

test('the API: a list gives a resourceVersion, a watch from it sends only later events; from "0" every object first', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  f.standin.addNode('n1');
  const list = await f.client.listNodes();
  f.standin.addNode('n2');
  const events: string[] = [];
  let ended = false;
  const watchFrom = async (rv: string, until: () => boolean): Promise<void> => {
    events.length = 0;
    ended = false;
    const c = await f.client.watch('/api/v1/nodes', { resourceVersion: rv }, (type, obj) => void events.push(`${type} ${(obj as V1Node).metadata?.name}`), () => (ended = true));
    await waitFor('the events', until);
    c.abort();
    await waitFor('the end of the watch', () => ended);
  };
  await watchFrom(list.resourceVersion, () => events.length >= 1);
  assert.deepEqual(events, ['ADDED n2']);
  await watchFrom('0', () => events.length >= 2);
  assert.deepEqual(events.sort(), ['ADDED n1', 'ADDED n2']);
});

test('reflector: lists, then watches from the list RV with bookmarks and a jittered timeout; events update the set', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  f.standin.addNode('n1');
  const { r, seen } = nodeReflector(f, { timeoutSeconds: [300, 600] });
  t.after(() => r.stop());
  await waitFor('the first sync', () => seen.last.has('n1'));
  assert.equal(r.synced, true);
  f.standin.addNode('n2');
  await waitFor('n2', () => seen.last.has('n2'));
  f.standin.delete('nodes', undefined, 'n1');
  await waitFor('n1 gone', () => !seen.last.has('n1'));
  const q = watchQueries(f)[0];
  assert.ok(q);
  assert.equal(q.get('allowWatchBookmarks'), 'true');
  const timeout = Number(q.get('timeoutSeconds'));
  assert.ok(timeout >= 300 && timeout < 600, `timeoutSeconds ${timeout}`);
  assert.match(q.get('resourceVersion') ?? '', /^\d+$/);
  assert.deepEqual({ lists: r.stats.lists, watches: r.stats.watches }, { lists: 1, watches: 1 });
  assert.equal(seen.errors.length, 0);
});

test('reflector: a stream ended by the server is re-watched from the last RV (a BOOKMARK advances it), without a relist', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const { r, seen } = nodeReflector(f, { timeoutSeconds: [1, 2] });
  t.after(() => r.stop());
  await waitFor('the first sync', () => r.synced);
  f.standin.addNode('n0');
  await waitFor('n0', () => seen.last.has('n0'));
  // the server-side timeout (1 s) ends the stream after a BOOKMARK at the current RV
  f.standin.create('configmaps', { metadata: { name: 'unrelated', namespace: 'weft' } });
  const rvAfter = f.standin.resourceVersion;
  await waitFor('a second watch', () => r.stats.watches >= 2);
  await waitFor('the bookmark RV used', () => watchQueries(f).some((q) => q.get('resourceVersion') === rvAfter));
  f.standin.endWatches();
  await waitFor('a third watch', () => r.stats.watches >= 3);
  f.standin.addNode('n1');
  await waitFor('n1 after the re-watch', () => seen.last.has('n1'));
  assert.equal(r.stats.lists, 1);
  assert.deepEqual(seen.errors, []);
});

test('reflector: ERROR 410 Expired → relist; objects deleted meanwhile vanish, new ones appear', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  f.standin.addNode('n1');
  f.standin.addNode('n2');
  const { r, seen } = nodeReflector(f);
  t.after(() => r.stop());
  await waitFor('the first sync', () => seen.last.size === 2);
  // in one tick: the stream ends, n2 goes and n3 comes unseen, and the history is forgotten
  f.standin.endWatches();
  f.standin.delete('nodes', undefined, 'n2');
  f.standin.addNode('n3');
  f.standin.compact();
  await waitFor('the relist', () => r.stats.lists >= 2 && seen.last.has('n3'));
  assert.deepEqual([...seen.last.keys()].sort(), ['n1', 'n3']);
  assert.deepEqual(seen.errors, [], 'a 410 is routine, not an error');
});

test('reflector: an outage is reported once per message and recovers with onHealthy', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  f.standin.addNode('n1');
  const { r, seen } = nodeReflector(f);
  t.after(() => r.stop());
  await waitFor('the first sync', () => seen.last.has('n1'));
  f.standin.setAvailable(false);
  await waitFor('an error', () => seen.errors.some((e) => /HTTP 503/.test(e)));
  const listsDuringOutage = r.stats.lists;
  await waitFor('a few retries', () => r.stats.lists >= listsDuringOutage + 2);
  assert.equal(new Set(seen.errors).size, seen.errors.length, 'each distinct message once');
  assert.ok(seen.errors.every((e) => e.includes(f.standin.url)));
  assert.equal(seen.healthy, 0);
  f.standin.setAvailable(true);
  await waitFor('healthy again', () => seen.healthy === 1);
  f.standin.addNode('n2');
  await waitFor('n2 after the outage', () => seen.last.has('n2'));
});

test('reflector: the watchdog relists a watch silent for too long', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const { r, lines } = nodeReflector(f, { watchdogMs: 100 });
  t.after(() => r.stop());
  await waitFor('two relists', () => r.stats.lists >= 3);
  assert.ok(lines.some((l) => l.includes('silent for too long')));
});

test('reflector: malformed objects are skipped and reported once; more than maxObjects is refused', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const malformed = nodeReflector(f, {
    list: async () => ({ items: [{ metadata: {} }, { metadata: { name: 'ok' } }, {}] as V1Node[], resourceVersion: f.standin.resourceVersion }),
  });
  t.after(() => malformed.r.stop());
  await waitFor('the sync', () => malformed.seen.syncs >= 1);
  assert.deepEqual([...malformed.seen.last.keys()], ['ok']);
  assert.equal(malformed.seen.errors.length, 1);
  assert.match(malformed.seen.errors[0] ?? '', /malformed object \(no metadata\.name\); skipping it/);

  for (const n of ['a', 'b', 'c']) f.standin.addNode(n);
  const bounded = nodeReflector(f, { maxObjects: 2 });
  t.after(() => bounded.r.stop());
  await waitFor('the refusal', () => bounded.seen.errors.length >= 1);
  assert.match(bounded.seen.errors[0] ?? '', /lists 3 objects, more than weft's bound of 2/);
  assert.equal(bounded.r.synced, false);
});

test('reflector: no callback after stop() resolves, and its watch is closed', async (t) => {
  const f = await startStandinWithClient();
  t.after(() => f.close());
  const { r, seen } = nodeReflector(f);
  await waitFor('the first sync', () => r.synced && f.standin.openWatches === 1);
  f.standin.addNode('n1');
  await r.stop();
  const syncs = seen.syncs;
  f.standin.addNode('n2');
  f.standin.setAvailable(false);
  await waitFor('the watch closed', () => f.standin.openWatches === 0);
  await new Promise((res) => setImmediate(res));
  assert.equal(seen.syncs, syncs);
  assert.equal(seen.errors.length, 0);
  await r.stop();
});

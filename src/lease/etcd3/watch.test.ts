// The v3 watch's reactions to what the gateway streams, with a scripted gateway: a message it
// cannot decode is a reset (re-list), not a reconnect that would receive it again forever; a
// progress notification with a bad header revision does not poison the next start revision.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WeftError } from '../../errors.ts';
import { silentLogger } from '../../log/logger.ts';
import type { WatchEvent } from '../store.ts';
import type { EtcdGateway } from './gateway.ts';
import { V3Watch, type GatewayKv } from './watch.ts';

function scripted(messages: unknown[]): { gateway: EtcdGateway; requests: unknown[] } {
  const requests: unknown[] = [];
  const gateway = {
    stream: async (_path: string, body: unknown, handlers: { onMessage(doc: unknown): void }) => {
      requests.push(body);
      const batch = messages.splice(0);
      setImmediate(() => { for (const m of batch) handlers.onMessage(m); });
      return { close: () => undefined };
    },
    invalidateToken: () => undefined,
  } as unknown as EtcdGateway;
  return { gateway, requests };
}

function watch(gateway: EtcdGateway, out: { events: WatchEvent[]; resets: string[]; errors: Error[] }): V3Watch {
  return new V3Watch({
    gateway, key: 'a2V5', rangeEnd: 'a2V6', start: 10, elideValuesOver: 1 << 20, log: silentLogger, onClose: () => undefined,
    handlers: { onEvent: (e) => out.events.push(e), onReset: (r) => out.resets.push(r), onError: (e) => out.errors.push(e) },
    toKey: (k) => String(k),
    toPut: async (kv: GatewayKv, revision) => ({ type: 'put', lease: { key: String(kv.key), value: '', expiresAt: null, hasTtl: false, version: revision }, revision }),
    describe: (e) => new WeftError('WEFT_NOT_READY', String((e as Error).message)),
  });
}

const until = async (what: string, holds: () => boolean): Promise<void> => {
  for (let i = 0; i < 400 && !holds(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(holds(), what);
};

test('an event weft cannot decode resets the watch (the caller lists again) instead of reconnecting into it', async () => {
  const out = { events: [] as WatchEvent[], resets: [] as string[], errors: [] as Error[] };
  const { gateway, requests } = scripted([{ result: { events: [{ type: 'PUT', kv: { key: 'x', mod_revision: 'not a number' } }] } }]);
  const w = watch(gateway, out);
  await until('a reset', () => out.resets.length === 1);
  w.close();
  assert.match(out.resets[0]!, /cannot decode/);
  assert.equal(requests.length, 1, 'no reconnect into the same event');
  assert.deepEqual(out.errors, []);
});

test('a progress notification with a bad header revision leaves the start revision alone', async () => {
  const out = { events: [] as WatchEvent[], resets: [] as string[], errors: [] as Error[] };
  const messages: unknown[] = [{ result: { header: { revision: 'garbage' } } }, { error: { message: 'boom', grpc_code: 14 } }];
  const { gateway, requests } = scripted(messages);
  const w = watch(gateway, out);
  await until('a reconnect after the error', () => requests.length === 2);
  w.close();
  assert.equal((requests[1] as { create_request: { start_revision: string } }).create_request.start_revision, '10');
});

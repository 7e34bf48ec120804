// What both etcd stores need from node:http(s): https loaded only for https:// endpoints (it
// brings node:tls, several MB of RSS an http:// cluster never uses), and one wording of a
// network error for the messages that name an endpoint.
import type https from 'node:https';

export const loadHttps = (): typeof https => process.getBuiltinModule('node:https');

/** "ECONNREFUSED connect ECONNREFUSED 10.0.0.1:2379" without saying the code twice; a timeout in words. */
export function describeNetError(e: unknown): string {
  const err = e as Error & { code?: string };
  if (err?.name === 'TimeoutError' || err?.name === 'AbortError') return 'no answer in time';
  return err?.code && !err.message.includes(err.code) ? `${err.code} ${err.message}` : String(err?.message ?? e);
}

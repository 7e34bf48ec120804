// Opens the lease store behind flannel's etcd flags (--etcd-endpoints, --etcd-prefix,
// --etcd-keyfile/--etcd-certfile/--etcd-cafile, --etcd-username/--etcd-password): the v3 API,
// the v2 keys API, or `auto`, which picks the API by where the network config already lives.
import { readFile } from 'node:fs/promises';
import { errnoCode, WeftError } from '../errors.ts';
import { silentLogger, type Logger } from '../log/logger.ts';
import { Etcd2LeaseStore } from './etcd2/etcd2-store.ts';
import { DEFAULT_ETCD_PREFIX, Etcd3LeaseStore, type EtcdTlsMaterial } from './etcd3/etcd3-store.ts';
import type { LeaseStore } from './store.ts';

export { DEFAULT_ETCD_PREFIX };

/** flanneld's default --etcd-endpoints. */
export const DEFAULT_ETCD_ENDPOINTS = ['http://127.0.0.1:4001', 'http://127.0.0.1:2379'];

export type EtcdApi = 'v2' | 'v3';

export interface EtcdTlsFiles {
  /** --etcd-cafile: PEM CA bundle for the server certificate (else the system roots). */
  caFile?: string;
  /** --etcd-certfile / --etcd-keyfile: the client certificate; both or neither. */
  certFile?: string;
  keyFile?: string;
}

export interface OpenLeaseStoreOptions {
  api: EtcdApi | 'auto';
  /** Client URLs, http:// or https://, e.g. parseEndpoints('http://10.0.0.1:2379,http://10.0.0.2:2379'). */
  endpoints: readonly string[];
  /** --etcd-prefix; default /coreos.com/network. */
  prefix?: string;
  tls?: EtcdTlsFiles;
  username?: string;
  password?: string;
  logger?: Logger;
  /** Deadline of each store request; default 10 s. */
  requestTimeoutMs?: number;
}

export interface StoreSelection {
  api: EtcdApi;
  /** Why this API, in words, for the log. */
  reason: string;
}

export type OpenedLeaseStore = LeaseStore & { readonly selection: StoreSelection };

/**
 * Parses a comma-separated --etcd-endpoints value (or a list) into normalized client URLs:
 * http(s)://host:port, no path, no credentials. Throws WEFT_INVALID_CONFIG naming the bad one.
 */
export function parseEndpoints(value: string | readonly string[]): string[] {
  const items = (typeof value === 'string' ? value.split(',') : value).map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new WeftError('WEFT_INVALID_CONFIG', '--etcd-endpoints is empty: give at least one URL such as http://127.0.0.1:2379');
  const out = items.map((item) => {
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      throw new WeftError('WEFT_INVALID_CONFIG', `--etcd-endpoints: ${JSON.stringify(item)} is not a URL; write it as http://HOST:PORT or https://HOST:PORT`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new WeftError('WEFT_INVALID_CONFIG', `--etcd-endpoints: ${JSON.stringify(item)} must start with http:// or https://`);
    }
    if (url.username || url.password) {
      throw new WeftError('WEFT_INVALID_CONFIG', `--etcd-endpoints: ${JSON.stringify(item)} carries credentials; use --etcd-username/--etcd-password`);
    }
    if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
      throw new WeftError('WEFT_INVALID_CONFIG', `--etcd-endpoints: ${JSON.stringify(item)} has a path or query; give only scheme, host and port`);
    }
    if (url.hostname === '') throw new WeftError('WEFT_INVALID_CONFIG', `--etcd-endpoints: ${JSON.stringify(item)} has no host`);
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    return `${url.protocol}//${url.hostname}:${port}`;
  });
  const schemes = new Set(out.map((u) => u.slice(0, u.indexOf(':'))));
  if (schemes.size > 1) {
    throw new WeftError('WEFT_INVALID_CONFIG', `--etcd-endpoints mixes http:// and https:// (${out.join(', ')}); use one scheme for all`);
  }
  return [...new Set(out)];
}

/** Reads the TLS files; the scheme of the endpoints decides whether TLS is used at all. */
export async function loadTls(tls: EtcdTlsFiles | undefined, endpoints: readonly string[]): Promise<EtcdTlsMaterial | undefined> {
  const caFile = tls?.caFile || undefined;
  const certFile = tls?.certFile || undefined;
  const keyFile = tls?.keyFile || undefined;
  if (!caFile && !certFile && !keyFile) return undefined;
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new WeftError('WEFT_INVALID_CONFIG', `--etcd-certfile and --etcd-keyfile go together (got only ${certFile ? '--etcd-certfile' : '--etcd-keyfile'}); `
      + 'a client certificate needs both');
  }
  if (!endpoints.every((e) => e.startsWith('https://'))) {
    throw new WeftError('WEFT_INVALID_CONFIG', `TLS files are set but --etcd-endpoints (${endpoints.join(', ')}) are not https:// URLs`);
  }
  const read = async (flag: string, file: string | undefined): Promise<Buffer | undefined> => {
    if (file === undefined) return undefined;
    try {
      return await readFile(file);
    } catch (e) {
      throw new WeftError('WEFT_INVALID_CONFIG', `${flag} ${file}: cannot read it (${errnoCode(e) ?? (e as Error).message})`, { cause: e });
    }
  };
  const [ca, cert, key] = await Promise.all([read('--etcd-cafile', caFile), read('--etcd-certfile', certFile), read('--etcd-keyfile', keyFile)]);
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

/**
 * Opens a LeaseStore. With api 'auto':
 *  1. the v3 keyspace has <prefix>/config -> v3;
 *  2. else the v2 keys API answers and has <prefix>/config -> v2 (a flannel <= v0.17 cluster);
 *  3. else v3 if the server speaks v3 (flannel >= v0.18's choice), else v2 if only it answers.
 * Nothing answering is WEFT_NOT_READY naming the endpoints.
 */
export async function openLeaseStore(options: OpenLeaseStoreOptions): Promise<OpenedLeaseStore> {
  if (options.api !== 'v2' && options.api !== 'v3' && options.api !== 'auto') {
    throw new WeftError('WEFT_INVALID_CONFIG', `etcd API ${JSON.stringify(options.api)}: use v2, v3 or auto`);
  }
  const endpoints = parseEndpoints(options.endpoints);
  if ((options.username === undefined || options.username === '') !== (options.password === undefined || options.password === '')) {
    throw new WeftError('WEFT_INVALID_CONFIG', '--etcd-username and --etcd-password go together');
  }
  const tls = await loadTls(options.tls, endpoints);
  const common = {
    endpoints,
    prefix: options.prefix ?? DEFAULT_ETCD_PREFIX,
    ...(tls ? { tls } : {}),
    ...(options.username ? { username: options.username, password: options.password ?? '' } : {}),
    logger: options.logger ?? silentLogger,
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
  };
  const v3 = (): Etcd3LeaseStore => new Etcd3LeaseStore(common);
  const v2 = (): Etcd2LeaseStore => new Etcd2LeaseStore(common);
  if (options.api === 'v3') return select(v3(), 'v3', 'asked for the v3 API');
  if (options.api === 'v2') return select(v2(), 'v2', 'asked for the v2 API');

  const prefix = common.prefix;
  const s3 = v3();
  let v3Error: unknown;
  try {
    if ((await s3.getConfig()) !== null) return select(s3, 'v3', `the v3 keyspace has ${s3.prefix}/config`);
  } catch (e) {
    v3Error = e;
  }
  const s2 = v2();
  let v2Error: unknown;
  try {
    if ((await s2.getConfig()) !== null) {
      await s3.close();
      return select(s2, 'v2', `only the v2 keyspace has ${s2.prefix}/config (a flannel <= v0.17 layout)`);
    }
  } catch (e) {
    v2Error = e;
  }
  if (v3Error === undefined) {
    await s2.close();
    return select(s3, 'v3', `no network config under ${prefix} in either keyspace; the server speaks v3, which flannel >= v0.18 uses`);
  }
  await s3.close();
  if (v2Error === undefined) {
    return select(s2, 'v2', `no network config under ${prefix}; the v3 API failed (${(v3Error as Error).message}) but the v2 API answers`);
  }
  await s2.close();
  throw new WeftError('WEFT_NOT_READY', `etcd at ${endpoints.join(', ')} answers neither the v3 nor the v2 API. `
    + `v3: ${(v3Error as Error).message} v2: ${(v2Error as Error).message}`, { cause: v3Error });
}

function select(store: Etcd3LeaseStore | Etcd2LeaseStore, api: EtcdApi, reason: string): OpenedLeaseStore {
  return Object.assign(store, { selection: { api, reason } });
}

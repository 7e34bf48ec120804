// The etcd side of bench:control. run.ts re-execs itself with --inner inside the lab's etcd
// member namespace (nsenter --net), so this process reaches etcd at 127.0.0.1:2379 while
// every node's kernel is watched with `ip -n <node ns> monitor route`; both ends are timed
// with one clock (process.hrtime, CLOCK_MONOTONIC).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { EtcdGateway } from '../../src/lease/etcd3/gateway.ts';

export type InnerSpec =
  | { kind: 'populate'; endpoint: string; prefix: string; config: string; count: number; ttlSeconds: number; resultFile: string }
  | { kind: 'clear'; endpoint: string; prefix: string; resultFile: string }
  | {
    kind: 'converge'; endpoint: string; prefix: string; count: number; ttlSeconds: number; timeoutMs: number;
    /** Node namespaces to watch; a lease counts as converged on a node when its route is in that kernel. */
    nodes: { name: string; ns: string }[];
    /** Random pause between two leases, ms. */
    gapMs: [number, number];
    resultFile: string;
  };

export interface ConvergeResult {
  /** Per node: ms from just before the put to the route's arrival (null: not within timeoutMs). */
  add: Record<string, (number | null)[]>;
  /** Per node: ms from just before the delete to the route's removal. */
  remove: Record<string, (number | null)[]>;
  /** Round trip of the put itself (the store's share). */
  putMs: number[];
  subnets: string[];
}

export interface PopulateResult { ms: number; written: number }

const hr = (): number => Number(process.hrtime.bigint()) / 1e6;

export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** flanneld's lease value (docs/flannel-compat.md §1.4), for a fake peer. */
export function leaseValue(publicIp: string): string {
  return JSON.stringify({ PublicIP: publicIp, PublicIPv6: null, BackendType: 'vxlan', BackendData: { VNI: 1, VtepMAC: randomMac() } });
}

/** Fake peers' addresses: on the lab's two zone segments, never the cold-start node's .250. */
export const fakePublicIp = (i: number): string => `172.31.${1 + (i % 2)}.${20 + (Math.floor(i / 2) % 200)}`;

/** The i-th /24 of 10.0.0.0/8, i ≥ 1: 10.0.1.0/24, …, 10.19.136.0/24 for i = 5000. */
export const coldSubnet = (i: number): string => `10.${(i >> 8) & 255}.${i & 255}.0/24`;

const subnetKey = (prefix: string, subnet: string): string => `${prefix}/subnets/${subnet.replace('/', '-')}`;

/** The few etcd v3 calls this file makes, over etcd's JSON gateway (keys and values base64). */
class V3 {
  readonly #g: EtcdGateway;
  constructor(endpoint: string) {
    this.#g = new EtcdGateway({ endpoints: [endpoint], timeoutMs: 30_000, maxSockets: 64 });
  }
  deleteRange(key: string, rangeEnd?: string): Promise<unknown> {
    return this.#g.call('/v3/kv/deleterange', { key: b64(key), ...(rangeEnd ? { range_end: b64(rangeEnd) } : {}) });
  }
  put(key: string, value: string, lease?: string): Promise<unknown> {
    return this.#g.call('/v3/kv/put', { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) });
  }
  async grant(ttlSeconds: number): Promise<string> {
    return String((await this.#g.call('/v3/lease/grant', { TTL: String(ttlSeconds) }) as { ID: string }).ID);
  }
  revoke(id: string): Promise<unknown> {
    return this.#g.call('/v3/lease/revoke', { ID: id });
  }
  async keys(key: string, rangeEnd: string): Promise<string[]> {
    const res = await this.#g.call('/v3/kv/range', { key: b64(key), range_end: b64(rangeEnd), keys_only: true }, { maxBytes: 64 * 1024 * 1024 }) as { kvs?: { key: string }[] };
    return (res.kvs ?? []).map((kv) => Buffer.from(kv.key, 'base64').toString());
  }
  close(): void {
    this.#g.close();
  }
}
const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function mapLimit<T>(items: readonly T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function populate(client: V3, s: Extract<InnerSpec, { kind: 'populate' }>): Promise<PopulateResult> {
  const t0 = hr();
  await client.deleteRange(`${s.prefix}/`, `${s.prefix}0`);
  await client.put(`${s.prefix}/config`, s.config);
  // One etcd lease per subnet lease, as flanneld grants them.
  const indexes = Array.from({ length: s.count }, (_, i) => i + 1);
  await mapLimit(indexes, 64, async (i) => {
    const lease = await client.grant(s.ttlSeconds);
    await client.put(subnetKey(s.prefix, coldSubnet(i)), leaseValue(fakePublicIp(i)), lease);
  });
  return { ms: hr() - t0, written: s.count };
}

interface Watcher { child: ChildProcess; waiters: Map<string, (t: number) => void>; seen: Map<string, number> }

/** `ip monitor route` in a node's namespace: resolves waiters on "<subnet> … dev flannel.1" (add) or "Deleted <subnet> …". */
function watchRoutes(ns: string): Watcher {
  const child = spawn('ip', ['-n', ns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const w: Watcher = { child, waiters: new Map(), seen: new Map() };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const t = hr();
    const m = /^(Deleted )?(\d+\.\d+\.\d+\.\d+\/\d+) .*dev flannel\.1/.exec(line);
    if (!m) return;
    const k = `${m[1] ? 'del' : 'add'} ${m[2]}`;
    if (!w.seen.has(k)) w.seen.set(k, t);
    w.waiters.get(k)?.(t);
  });
  return w;
}

function waitFor(w: Watcher, k: string, timeoutMs: number): Promise<number | null> {
  const already = w.seen.get(k);
  if (already !== undefined) return Promise.resolve(already);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      w.waiters.delete(k);
      resolve(null);
    }, timeoutMs);
    w.waiters.set(k, (t) => {
      clearTimeout(timer);
      w.waiters.delete(k);
      resolve(t);
    });
  });
}

async function converge(client: V3, s: Extract<InnerSpec, { kind: 'converge' }>): Promise<ConvergeResult> {
  const existing = await client.keys(`${s.prefix}/subnets/`, `${s.prefix}/subnets0`);
  const used = new Set(existing.map((k) => k.split('/').pop()));
  const subnets: string[] = [];
  for (let x = 1; x <= 254 && subnets.length < s.count; x++) if (!used.has(`10.16.${x}.0-24`)) subnets.push(`10.16.${x}.0/24`);
  if (subnets.length < s.count) throw new Error(`only ${subnets.length} free /24s in 10.16.0.0/16 for ${s.count} leases`);

  const watchers = s.nodes.map((n) => ({ n, w: watchRoutes(n.ns) }));
  await new Promise((r) => setTimeout(r, 500)); // the monitors subscribe
  const result: ConvergeResult = { add: {}, remove: {}, putMs: [], subnets };
  for (const { n } of watchers) {
    result.add[n.name] = [];
    result.remove[n.name] = [];
  }
  const gap = (): Promise<void> => new Promise((r) => setTimeout(r, s.gapMs[0] + Math.random() * (s.gapMs[1] - s.gapMs[0])));
  const grants = new Map<string, string>();
  try {
    for (const [i, subnet] of subnets.entries()) {
      const lease = await client.grant(s.ttlSeconds);
      grants.set(subnet, lease);
      const waits = watchers.map(({ w }) => waitFor(w, `add ${subnet}`, s.timeoutMs));
      const t0 = hr();
      await client.put(subnetKey(s.prefix, subnet), leaseValue(fakePublicIp(i)), lease);
      result.putMs.push(hr() - t0);
      const seen = await Promise.all(waits);
      watchers.forEach(({ n }, j) => result.add[n.name]!.push(seen[j] === null ? null : seen[j]! - t0));
      await gap();
    }
    for (const subnet of subnets) {
      const waits = watchers.map(({ w }) => waitFor(w, `del ${subnet}`, s.timeoutMs));
      const t0 = hr();
      await client.deleteRange(subnetKey(s.prefix, subnet));
      const seen = await Promise.all(waits);
      watchers.forEach(({ n }, j) => result.remove[n.name]!.push(seen[j] === null ? null : seen[j]! - t0));
      const id = grants.get(subnet);
      if (id !== undefined) await client.revoke(id).catch(() => undefined);
      await gap();
    }
  } finally {
    for (const { w } of watchers) w.child.kill('SIGTERM');
  }
  return result;
}

export async function runInner(specFile: string): Promise<void> {
  const spec = JSON.parse(readFileSync(specFile, 'utf8')) as InnerSpec;
  const client = new V3(spec.endpoint);
  try {
    let result: unknown;
    if (spec.kind === 'populate') result = await populate(client, spec);
    else if (spec.kind === 'converge') result = await converge(client, spec);
    else {
      await client.deleteRange(`${spec.prefix}/`, `${spec.prefix}0`);
      result = {};
    }
    writeFileSync(spec.resultFile, JSON.stringify(result));
  } finally {
    client.close();
  }
}

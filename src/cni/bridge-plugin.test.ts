// BridgeOperations' IPAM wiring without root: the verbs that need no network namespace (DEL
// without one, STATUS, GC) against an injected Ipam, the usage it reports for the metrics,
// and store problems logged through a throttle. ADD and CHECK run for real in test/e2e/cni.test.ts.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../log/logger.ts';
import { memoryIpamFactory } from '../ipam/memory-ipam.ts';
import { hostLocalIpamFactory } from '../ipam/allocator.ts';
import { parseRangeSets } from '../ipam/ranges.ts';
import { MAX_STORE_FILE_BYTES } from '../ipam/disk-store.ts';
import type { IpamFactory } from '../ipam/ipam.ts';
import { blockIpamFactory, type BlockSource } from '../ipam/block-ipam.ts';
import { BridgeOperations } from './bridge-plugin.ts';
import { parsePluginConfig, type PluginConfig } from './config.ts';
import type { CniEnv } from './env.ts';

interface Line { level: number; msg: string; repeated?: number; network?: string }

const RANGES = parseRangeSets([[{ subnet: '10.77.5.0/24' }]]);

function fixture(t: TestContext, ipam: IpamFactory) {
  const dir = mkdtempSync(join(tmpdir(), 'weft-bridge-ops-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const subnetFile = join(dir, 'subnet.env');
  writeFileSync(subnetFile, 'FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=10.77.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  const dataDir = join(dir, 'ipam');
  let now = 1_000_000;
  const lines: Line[] = [];
  const log = createLogger({ name: 'test', level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Line) } });
  const ops = new BridgeOperations({ log, ipam, clock: () => now });
  t.after(() => ops.close());
  const config = (extra: Record<string, unknown> = {}): PluginConfig =>
    parsePluginConfig({ cniVersion: '1.1.0', name: 'weftnet', type: 'weft', subnetFile, dataDir, ...extra });
  const del = (containerId: string): Promise<void> => {
    const env: CniEnv = { command: 'DEL', containerId, netns: '', ifname: 'eth0', args: '', path: '' };
    return ops.del(env, config());
  };
  /** The Ipam the plugin's requests use, as another process sharing the store would. */
  const direct = ipam({ name: 'weftnet', dataDir, rangeSets: RANGES });
  return { ops, config, del, direct, dataDir, subnetFile, lines, advance: (ms: number) => { now += ms; } };
}

describe('BridgeOperations: an injected Ipam', () => {
  it('serves DEL, STATUS and GC from the injected allocator and never touches the disk store', async (t) => {
    const f = fixture(t, memoryIpamFactory());
    await f.direct.allocate({ containerId: 'a', ifname: 'eth0' });
    await f.direct.allocate({ containerId: 'b', ifname: 'eth0' });
    await f.direct.allocate({ containerId: 'c', ifname: 'eth0' });
    await f.del('a');
    assert.deepEqual(await f.direct.lookup({ containerId: 'a', ifname: 'eth0' }), []);
    await f.ops.gc(f.config({ 'cni.dev/valid-attachments': [{ containerID: 'b', ifname: 'eth0' }] }));
    assert.deepEqual(await f.direct.usage(), [{ allocated: 1, capacity: 253 }]);
    await f.ops.status(f.config());
    assert.equal(existsSync(f.dataDir), false, 'no disk store was made');
  });

  it('reports STATUS exhaustion from the injected allocator', async (t) => {
    const f = fixture(t, memoryIpamFactory());
    for (let i = 0; i < 253; i++) await f.direct.allocate({ containerId: `c${i}`, ifname: 'eth0' });
    await assert.rejects(f.ops.status(f.config()), /no free addresses in 10\.77\.5\.1\/24 on this node \(253 of 253 in use\)/);
  });
});

describe('BridgeOperations over block IPAM', () => {
  const source = (blocks: string[]): BlockSource => {
    const active: string[] = [];
    return {
      blocks: () => blocks,
      active: () => active,
      activate: (b) => void active.push(b),
      grow: () => Promise.reject(new Error('no block to spare')),
    };
  };

  it("STATUS counts every owned block, and names them when they are all full, not subnet.env's subnet", async (t) => {
    const f = fixture(t, blockIpamFactory(source(['10.77.5.0/30', '10.77.9.4/30'])));
    await f.ops.status(f.config());
    for (const id of ['a', 'b']) await f.direct.allocate({ containerId: id, ifname: 'eth0' });
    await assert.rejects(f.ops.status(f.config()), /^WeftError: no free addresses in 2 blocks \(10\.77\.5\.0\/30, \.\.\.\) on this node \(2 of 2 in use\)$/);
  });

  it('DEL and GC release block addresses without reading the blocks', async (t) => {
    const f = fixture(t, blockIpamFactory(source(['10.77.200.0/26'])));
    const [a] = await f.direct.allocate({ containerId: 'a', ifname: 'eth0' });
    assert.equal(a!.gateway, '10.77.200.1');
    rmSync(f.subnetFile);
    await f.del('a');
    assert.deepEqual(await f.direct.lookup({ containerId: 'a', ifname: 'eth0' }), []);
  });
});

describe('BridgeOperations.usage(): the metric without a scan per scrape', () => {
  it('is undefined until a request tells which network and ranges are served', async (t) => {
    const f = fixture(t, memoryIpamFactory());
    await f.direct.allocate({ containerId: 'a', ifname: 'eth0' });
    assert.equal(f.ops.usage(), undefined);
    await f.del('nobody');
    await f.ops.usageSettled();
    assert.deepEqual(f.ops.usage(), { used: 1, free: 252 });
  });

  it('scans nothing while nobody reads it (the standalone plugin)', async (t) => {
    let scans = 0;
    const memory = memoryIpamFactory();
    const f = fixture(t, (n) => Object.assign(memory(n), { usage: async () => (scans++, []) }));
    await f.del('a');
    await f.ops.gc(f.config({ 'cni.dev/valid-attachments': [] }));
    await f.ops.usageSettled();
    assert.equal(scans, 0);
    f.ops.usage();
    await f.ops.usageSettled();
    assert.equal(scans, 1);
  });

  it('takes its value from STATUS, and is refreshed after DEL and GC', async (t) => {
    const f = fixture(t, memoryIpamFactory());
    for (const id of ['a', 'b', 'c']) await f.direct.allocate({ containerId: id, ifname: 'eth0' });
    await f.ops.status(f.config());
    assert.deepEqual(f.ops.usage(), { used: 3, free: 250 }, 'STATUS computed it: no refresh needed');
    await f.del('a');
    await f.ops.usageSettled();
    assert.deepEqual(f.ops.usage(), { used: 2, free: 251 });
    await f.ops.gc(f.config({ 'cni.dev/valid-attachments': [] }));
    await f.ops.usageSettled();
    assert.deepEqual(f.ops.usage(), { used: 0, free: 253 });
  });

  it("sees another writer's changes only once its reading is older than the TTL", async (t) => {
    const f = fixture(t, memoryIpamFactory());
    await f.ops.status(f.config());
    await f.direct.allocate({ containerId: 'elsewhere', ifname: 'eth0' });
    f.advance(9_999);
    assert.deepEqual(f.ops.usage(), { used: 0, free: 253 }, 'a scrape within the TTL reads the cache');
    await f.ops.usageSettled();
    assert.deepEqual(f.ops.usage(), { used: 0, free: 253 }, 'and started no refresh');
    f.advance(1);
    assert.deepEqual(f.ops.usage(), { used: 0, free: 253 }, 'a stale scrape does not wait for the refresh it starts');
    await f.ops.usageSettled();
    assert.deepEqual(f.ops.usage(), { used: 1, free: 252 });
  });

  it('counts the disk store too, dual stack summed', async (t) => {
    const f = fixture(t, hostLocalIpamFactory);
    writeFileSync(f.subnetFile, 'FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=10.77.5.1/24\nFLANNEL_IPV6_NETWORK=fd77::/56\nFLANNEL_IPV6_SUBNET=fd77:0:0:5::1/120\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    const dual = hostLocalIpamFactory({ name: 'weftnet', dataDir: f.dataDir, rangeSets: parseRangeSets([[{ subnet: '10.77.5.0/24' }], [{ subnet: 'fd77:0:0:5::/120' }]]) });
    await dual.allocate({ containerId: 'a', ifname: 'eth0' });
    assert.equal(f.ops.usage(), undefined);
    await f.del('nobody');
    await f.ops.usageSettled();
    assert.deepEqual(f.ops.usage(), { used: 2, free: 252 + 253 });
  });
});

describe('BridgeOperations: IPAM store problems are logged, once per window', () => {
  it('names an oversized store file once, and sums up the repeats', async (t) => {
    const f = fixture(t, hostLocalIpamFactory);
    const store = join(f.dataDir, 'weftnet');
    mkdirSync(store, { recursive: true });
    writeFileSync(join(store, '10.77.5.9'), 'x'.repeat(MAX_STORE_FILE_BYTES + 1));
    for (let i = 0; i < 3; i++) await f.ops.gc(f.config({ 'cni.dev/valid-attachments': [] }));
    const warned = f.lines.filter((l) => l.level === 40);
    assert.equal(warned.length, 1, JSON.stringify(warned));
    assert.match(warned[0]!.msg, /IPAM file .*10\.77\.5\.9 is larger than 4096 bytes/);
    assert.equal(warned[0]!.network, 'weftnet');
    assert.ok(existsSync(join(store, '10.77.5.9')), 'GC leaves a file it cannot read');
    f.ops.close();
    const summary = f.lines.filter((l) => l.level === 40).at(-1)!;
    assert.equal(summary.repeated, 2);
  });
});

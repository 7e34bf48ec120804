import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { cidrsOverlap, formatCidr, parseCidr, type Cidr } from '../net/cidr.ts';
import { delegateStore, FakeClock } from './testing.ts';
import { formatLeaseValue, parseLeaseKey } from './lease.ts';
import { LeaseManager, type LeaseManagerOptions } from './manager.ts';
import { MemoryLeaseStore } from './memory/memory-store.ts';
import { parseNetworkConfig } from './network-config.ts';
import { freeSubnets, RACE_RETRIES } from './acquire.ts';
import type { LeaseStore } from './store.ts';

const config = parseNetworkConfig('{"Network":"10.16.0.0/16","Backend":{"Type":"vxlan"}}');
const DAY = 86_400_000;

function mac(n: number): string {
  return `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`;
}

function value(publicIp: string, n = 1): string {
  return formatLeaseValue({ publicIp, publicIpv6: null, backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac(n) }, backendV6Data: undefined });
}

function setup(random: () => number = () => 0) {
  const clock = new FakeClock();
  const store = new MemoryLeaseStore({ clock });
  const make = (options: Partial<LeaseManagerOptions> = {}) => new LeaseManager({
    store, config, publicIp: '192.168.1.10', backendType: 'vxlan', backendData: { VNI: 1, VtepMAC: mac(10) },
    timers: clock, random, ...options,
  });
  return { clock, store, make };
}

async function keys(store: LeaseStore): Promise<Map<string, { value: string; expiresAt: number | null }>> {
  return new Map((await store.listLeases()).leases.map((l) => [l.key, { value: l.value, expiresAt: l.expiresAt }]));
}

/** A deterministic PRNG (mulberry32), one stream per seed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('acquire: a fresh lease', () => {
  it('creates a key in range with our value and a 24 h TTL', async () => {
    const { clock, store, make } = setup();
    const m = make();
    const lease = await m.acquire();
    assert.equal(lease.key, 'subnets/10.16.1.0-24');
    assert.equal(lease.how, 'allocated');
    assert.equal(lease.expiresAt, clock.now() + DAY);
    const stored = (await keys(store)).get(lease.key);
    assert.deepEqual(stored, { value: '{"PublicIP":"192.168.1.10","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"02:00:00:00:00:0a"}}', expiresAt: clock.now() + DAY });
  });

  it('picks uniformly among the first 100 free subnets only', async () => {
    assert.equal((await setup(() => 0.999).make().acquire()).key, 'subnets/10.16.100.0-24');
    assert.equal((await setup(() => 0.5).make().acquire()).key, 'subnets/10.16.51.0-24');
  });
});

describe('acquire: reuse by public IP', () => {
  it('rewrites our own lease with the new value and a fresh TTL', async () => {
    const { clock, store, make } = setup();
    await store.create('subnets/10.16.7.0-24', value('192.168.1.10', 7), 3600);
    await store.create('subnets/10.16.8.0-24', value('192.168.1.11', 8), 3600);
    await clock.advance(1000 * 60);
    const lease = await make().acquire();
    assert.equal(lease.key, 'subnets/10.16.7.0-24');
    assert.equal(lease.how, 'public-ip');
    const stored = (await keys(store)).get(lease.key);
    assert.equal(stored?.expiresAt, clock.now() + DAY);
    assert.match(stored?.value ?? '', /"VtepMAC":"02:00:00:00:00:0a"/);
    assert.equal((await keys(store)).get('subnets/10.16.8.0-24')?.value, value('192.168.1.11', 8), 'a peer is untouched');
  });

  it('keeps a reservation a reservation (no TTL)', async () => {
    const { store, make } = setup();
    await store.put('subnets/10.16.200.0-24', value('192.168.1.10'), null);
    const lease = await make().acquire();
    assert.equal(lease.key, 'subnets/10.16.200.0-24');
    assert.equal(lease.expiresAt, null);
    assert.equal((await keys(store)).get(lease.key)?.expiresAt, null);
  });

  it('deletes our lease when it no longer fits the config, and leases a new one', async () => {
    const { store, make } = setup();
    await store.create('subnets/10.16.0.0-24', value('192.168.1.10'), 3600); // the first subnet is below SubnetMin
    await store.create('subnets/10.16.9.0-25', value('192.168.1.10'), 3600); // wrong length
    const lease = await make().acquire();
    assert.equal(lease.how, 'allocated');
    const now = await keys(store);
    assert.deepEqual([...now.keys()], [lease.key]);
    assert.equal(lease.key, 'subnets/10.16.1.0-24');
  });
});

describe('acquire: the previous subnet (subnet.env)', () => {
  const previous = { subnet: parseCidr('10.16.42.0/24') };

  it('is reused when no lease holds it', async () => {
    const { make } = setup();
    const lease = await make({ previous }).acquire();
    assert.equal(lease.key, 'subnets/10.16.42.0-24');
    assert.equal(lease.how, 'previous');
  });

  it('is not taken from the node it was reassigned to (flannel #1289)', async () => {
    const { store, make } = setup();
    await store.create('subnets/10.16.42.0-24', value('192.168.1.99', 99), 3600);
    const lease = await make({ previous }).acquire();
    assert.notEqual(lease.key, 'subnets/10.16.42.0-24');
    assert.equal(lease.how, 'allocated');
    assert.equal((await keys(store)).get('subnets/10.16.42.0-24')?.value, value('192.168.1.99', 99));
  });

  it('is not reused when a reservation of a larger block covers it, or when it does not fit the config', async () => {
    const { store, make } = setup();
    await store.put('subnets/10.16.32.0-19', value('192.168.1.98'), null);
    assert.equal((await make({ previous }).acquire()).how, 'allocated');
    for (const subnet of ['10.16.0.0/24', '10.17.5.0/24', '10.16.42.0/25']) {
      const s = setup();
      assert.equal((await s.make({ previous: { subnet: parseCidr(subnet) } }).acquire()).how, 'allocated', subnet);
    }
  });

  it('is second to a lease of our public IP', async () => {
    const { store, make } = setup();
    await store.create('subnets/10.16.7.0-24', value('192.168.1.10'), 3600);
    assert.equal((await make({ previous }).acquire()).key, 'subnets/10.16.7.0-24');
  });
});

describe('acquire: random pick', () => {
  const existing: [string, number | null][] = [
    ['subnets/10.16.1.0-24', 3600], ['subnets/10.16.2.0-24', 3600], ['subnets/10.16.5.0-24', null],
    ['subnets/10.16.16.0-20', null], // a reservation of a /20 blocks 16 candidates
    ['subnets/10.16.40.128-25', 3600], // a /25 from an older config still blocks its /24
    ['subnets/10.16.41.0-24', 3600],
  ];

  it('never overlaps an existing lease or reservation, whatever the random draw', async () => {
    const blockers = existing.map(([k]) => { const p = parseLeaseKey(k); assert.ok(p.ok); return p.value.ipv4 as Cidr; });
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const { store, make } = setup(() => (i + 0.5) / 100);
      for (const [k, ttl] of existing) await store.put(k, value('192.168.7.7'), ttl);
      const lease = await make().acquire();
      const mine = lease.subnets.ipv4 as Cidr;
      for (const b of blockers) assert.ok(!cidrsOverlap(mine, b), `${formatCidr(mine)} overlaps ${formatCidr(b)}`);
      seen.add(lease.key);
    }
    assert.equal(seen.size, 100, 'each draw maps to its own candidate');
  });

  it('freeSubnets skips blocked runs and stops at the limit', () => {
    const range = config.ipv4;
    assert.ok(range);
    const { free, total } = freeSubnets(range, [parseCidr('10.16.0.0/17')], 3);
    assert.equal(total, 255n);
    assert.deepEqual(free.map(formatCidr), ['10.16.128.0/24', '10.16.129.0/24', '10.16.130.0/24']);
  });
});

describe('acquire: running out', () => {
  it('says how many subnets exist, where, and what to do', async () => {
    const small = parseNetworkConfig('{"Network":"10.16.0.0/28"}');
    const { store, make } = setup();
    for (const s of ['10.16.0.4-30', '10.16.0.8-30', '10.16.0.12-30']) await store.create(`subnets/${s}`, value('192.168.5.5'), 3600);
    await assert.rejects(make({ config: small }).acquire(), (e) => {
      assert.ok(isWeftError(e, 'WEFT_IPAM_EXHAUSTED'));
      assert.match(e.message, /^out of subnets: all 3 subnets of 10.16.0.0\/28 between 10.16.0.4\/30 and 10.16.0.12\/30 are leased \(3 keys under subnets\/\)\. Leases of removed nodes stay until their TTL runs out: delete stale keys/);
      return true;
    });
  });
});

describe('acquire: races', () => {
  it('20 managers acquiring at once on one store get 20 distinct subnets', async () => {
    const { store, make } = setup();
    let lost = 0;
    const counting = delegateStore(store, { create: async (k, v, ttl) => (await store.create(k, v, ttl)) || (lost++, false) });
    const managers = Array.from({ length: 20 }, (_, i) => make({ store: counting, publicIp: `192.168.2.${i + 1}`, random: seeded((i % 5) + 1) })); // four managers per random stream: forced races
    const leases = await Promise.all(managers.map((m) => m.acquire()));
    assert.ok(lost > 0, 'some managers lost a race and retried');
    assert.equal(new Set(leases.map((l) => l.key)).size, 20);
    const stored = await keys(store);
    assert.equal(stored.size, 20);
    for (const l of leases) assert.equal(stored.get(l.key)?.value, l.value, 'each key holds its winner\'s value');
  });

  it('retries a lost race, and gives up after 10 with WEFT_NOT_READY', async () => {
    const { store, make } = setup();
    let creates = 0;
    let loseFirst = 3;
    const racy = delegateStore(store, {
      create: async (key, v, ttl) => {
        creates++;
        if (loseFirst-- > 0) return false;
        return store.create(key, v, ttl);
      },
    });
    assert.equal((await make({ store: racy }).acquire()).key, 'subnets/10.16.1.0-24');
    assert.equal(creates, 4);
    creates = 0;
    loseFirst = Infinity;
    await assert.rejects(make({ store: racy, publicIp: '192.168.3.3' }).acquire(), (e) => isWeftError(e, 'WEFT_NOT_READY') && /lost the race .* 10 times/.test(e.message));
    assert.equal(creates, RACE_RETRIES);
  });
});

describe('acquire: other shapes', () => {
  it('a lease with a broken value still holds its subnet', async () => {
    const { store, make } = setup();
    await store.put('subnets/10.16.1.0-24', 'garbage', 3600);
    assert.equal((await make().acquire()).key, 'subnets/10.16.2.0-24');
  });

  it('dual stack: families are chosen independently (previous IPv4 kept, IPv6 allocated)', async () => {
    const dual = parseNetworkConfig('{"Network":"10.16.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:16::/56"}');
    const { store, make } = setup();
    const lease = await make({ config: dual, publicIpv6: 'fd00:1::10', previous: { subnet: parseCidr('10.16.42.0/24') } }).acquire();
    assert.equal(lease.key, 'subnets/10.16.42.0-24&fd00:16:0:1::-64');
    assert.equal(lease.how, 'allocated');
    assert.match((await keys(store)).get(lease.key)?.value ?? '', /"PublicIPv6":"fd00:1::10"/);
  });

  it('IPv6 only: the IPv6 public IP identifies the node', async () => {
    const v6 = parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00:16::/56"}');
    const { store, make } = setup();
    const attrsOf = (ip6: string) => formatLeaseValue({ publicIp: '0.0.0.0', publicIpv6: ip6, backendType: 'vxlan', backendData: undefined, backendV6Data: undefined });
    await store.create('subnets/0.0.0.0-0&fd00:16:0:9::-64', attrsOf('fd00:1::99'), 3600);
    await store.create('subnets/0.0.0.0-0&fd00:16:0:7::-64', attrsOf('fd00:1::10'), 3600);
    const lease = await make({ config: v6, publicIp: undefined, publicIpv6: 'fd00:1::10' }).acquire();
    assert.equal(lease.key, 'subnets/0.0.0.0-0&fd00:16:0:7::-64');
    assert.equal(lease.how, 'public-ip');
  });

  it('needs the public IPs the network has, and valid timing options', () => {
    const { make } = setup();
    assert.throws(() => make({ publicIp: undefined }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && /needs an IPv4 public IP/.test(e.message));
    assert.throws(() => make({ publicIp: 'fd00::1' }), /publicIp "fd00::1" is not an IPv4 address/);
    assert.throws(() => make({ ttlSeconds: 60, renewMarginSeconds: 60 }), /renewMarginSeconds 60 must be less than ttlSeconds 60/);
    assert.throws(() => make({ retryIntervalSeconds: 0 }), /retryIntervalSeconds 0 must be a positive number/);
  });

  it('a store failure propagates (the agent retries)', async () => {
    const { store, make } = setup();
    store.failNext = 1;
    await assert.rejects(make().acquire(), /injected failure/);
  });
});

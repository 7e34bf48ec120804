import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type WeftErrorCode, isWeftError } from '../errors.ts';
import { HostLocalIpam } from './allocator.ts';
import { parseRangeSets } from './ranges.ts';

const NETWORK = 'testnet';

function newIpam(t: TestContext, ranges: unknown, network = NETWORK): HostLocalIpam {
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-ipam-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  return new HostLocalIpam({ dataDir, network, rangeSets: parseRangeSets(ranges) });
}

const v4 = (subnet: string, extra: object = {}): unknown => [[{ subnet, ...extra }]];

async function addresses(ipam: HostLocalIpam, containerId: string, requested?: string[]): Promise<string[]> {
  const allocations = await ipam.allocate({ containerId, ifname: 'eth0', ...(requested ? { requested } : {}) });
  return allocations.map((a) => a.address);
}

async function assertRejects(promise: Promise<unknown>, code: WeftErrorCode, message: string | RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isWeftError(e, code), `expected ${code}, got ${String(e)}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

const storeFiles = (ipam: HostLocalIpam): string[] => readdirSync(ipam.storeDir).sort();
/** Puts a file into the store as another writer (host-local, a crashed process) would have. */
function seed(ipam: HostLocalIpam, name: string, content: string): void {
  mkdirSync(ipam.storeDir, { recursive: true });
  writeFileSync(join(ipam.storeDir, name), content);
}
const fileText = (ipam: HostLocalIpam, name: string): string => readFileSync(join(ipam.storeDir, name), 'latin1');

describe('HostLocalIpam: store format', () => {
  it('writes host-local files: <ip> = "cid\\r\\nifname", last_reserved_ip.N, empty lock', async (t) => {
    const ipam = newIpam(t, v4('10.1.2.0/24'));
    const [allocation] = await ipam.allocate({ containerId: 'ctr1', ifname: 'eth0' });
    assert.deepEqual(allocation, { family: 4, address: '10.1.2.2', prefix: 24, gateway: '10.1.2.1', rangeSetIndex: 0 });
    assert.deepEqual(storeFiles(ipam), ['10.1.2.2', 'last_reserved_ip.0', 'lock']);
    assert.equal(fileText(ipam, '10.1.2.2'), 'ctr1\r\neth0');
    assert.equal(fileText(ipam, 'last_reserved_ip.0'), '10.1.2.2');
    assert.equal(fileText(ipam, 'lock'), '');
    const umask = process.umask();
    assert.equal(statSync(join(ipam.storeDir, '10.1.2.2')).mode & 0o777, 0o644 & ~umask);
    assert.equal(statSync(ipam.storeDir).mode & 0o777, 0o755 & ~umask);
    assert.equal(statSync(join(ipam.storeDir, 'lock')).mode & 0o777, 0o750 & ~umask);
  });

  it('names IPv6 files in canonical form and allocates one address per range set', async (t) => {
    const ipam = newIpam(t, [[{ subnet: '10.1.2.0/24' }], [{ subnet: 'fd00:0:0:7::/64' }]]);
    const allocations = await ipam.allocate({ containerId: 'ctr1', ifname: 'eth0' });
    assert.deepEqual(allocations, [
      { family: 4, address: '10.1.2.2', prefix: 24, gateway: '10.1.2.1', rangeSetIndex: 0 },
      { family: 6, address: 'fd00:0:0:7::2', prefix: 64, gateway: 'fd00:0:0:7::1', rangeSetIndex: 1 },
    ]);
    assert.deepEqual(storeFiles(ipam), ['10.1.2.2', 'fd00:0:0:7::2', 'last_reserved_ip.0', 'last_reserved_ip.1', 'lock']);
    assert.equal(fileText(ipam, 'last_reserved_ip.1'), 'fd00:0:0:7::2');
  });

  it('rejects network names that are not a single path component', (t) => {
    for (const bad of ['', '.', '..', 'a/b', '../x', '-x']) {
      assert.throws(() => newIpam(t, v4('10.0.0.0/24'), bad), (e: unknown) => isWeftError(e, 'WEFT_INVALID_CONFIG'), bad);
    }
  });

  it('rejects container IDs and interface names that would corrupt the file format', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    await assertRejects(ipam.allocate({ containerId: 'a\r\nb', ifname: 'eth0' }), 'WEFT_INVALID_ENV', /container ID/);
    await assertRejects(ipam.allocate({ containerId: '', ifname: 'eth0' }), 'WEFT_INVALID_ENV', /container ID ""/);
    await assertRejects(ipam.allocate({ containerId: 'c', ifname: 'eth 0' }), 'WEFT_INVALID_ENV', /interface name "eth 0"/);
    await assertRejects(ipam.allocate({ containerId: 'c', ifname: 'a-very-long-ifname' }), 'WEFT_INVALID_ENV', /1-15 characters/);
  });
});

describe('HostLocalIpam: allocation order', () => {
  it('hands out addresses round-robin: freed addresses are not reused until the range wraps', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    assert.deepEqual([...await addresses(ipam, 'a'), ...await addresses(ipam, 'b'), ...await addresses(ipam, 'c')], ['10.0.0.2', '10.0.0.3', '10.0.0.4']);
    assert.deepEqual(await ipam.release({ containerId: 'a', ifname: 'eth0' }), ['10.0.0.2']);
    assert.deepEqual(await addresses(ipam, 'd'), ['10.0.0.5']);
  });

  it('wraps in a /29, never handing out network, gateway or broadcast, then reports exhaustion', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/29'));
    const got: string[] = [];
    for (const id of ['a', 'b', 'c', 'd', 'e']) got.push(...await addresses(ipam, id));
    assert.deepEqual(got, ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
    await ipam.release({ containerId: 'b', ifname: 'eth0' });
    assert.deepEqual(await addresses(ipam, 'f'), ['10.0.0.3']);
    await assertRejects(ipam.allocate({ containerId: 'g', ifname: 'eth0' }), 'WEFT_IPAM_EXHAUSTED',
      'no IP addresses available in range set 10.0.0.1-10.0.0.6 of network testnet');
    assert.deepEqual(storeFiles(ipam).filter((f) => f.startsWith('10.')), ['10.0.0.2', '10.0.0.3', '10.0.0.4', '10.0.0.5', '10.0.0.6']);
  });

  it('skips addresses reserved by files it did not write, including empty crash leftovers', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    await addresses(ipam, 'a');
    seed(ipam, '10.0.0.3', '');
    seed(ipam, '10.0.0.4', 'other\r\neth0');
    assert.deepEqual(await addresses(ipam, 'b'), ['10.0.0.5']);
  });

  it('restarts at rangeStart when last_reserved_ip is unreadable', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    await addresses(ipam, 'a');
    seed(ipam, 'last_reserved_ip.0', '10.0.0.');
    assert.deepEqual(await addresses(ipam, 'b'), ['10.0.0.3']);
  });

  it('takes the next address after a requested one, as host-local records it as last reserved', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    assert.deepEqual(await addresses(ipam, 'a', ['10.0.0.50']), ['10.0.0.50']);
    assert.deepEqual(await addresses(ipam, 'b'), ['10.0.0.51']);
  });
});

describe('HostLocalIpam: requested addresses', () => {
  it('accepts an address with or without the subnet prefix, per range set', async (t) => {
    const ipam = newIpam(t, [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]]);
    assert.deepEqual(await addresses(ipam, 'a', ['fd00::99/64']), ['10.0.0.2', 'fd00::99']);
    assert.deepEqual(await addresses(ipam, 'b', ['10.0.0.7/24', 'fd00::0100']), ['10.0.0.7', 'fd00::100']);
    // The same address from two sources counts once.
    assert.deepEqual(await addresses(ipam, 'c', ['10.0.0.8', '10.0.0.8/24']), ['10.0.0.8', 'fd00::101']);
  });

  it('refuses taken, gateway, out-of-range and doubled requests without reserving anything', async (t) => {
    const ipam = newIpam(t, [[{ subnet: '10.0.0.0/24', rangeEnd: '10.0.0.100' }], [{ subnet: 'fd00::/64' }]]);
    await addresses(ipam, 'a', ['10.0.0.9']);
    const before = storeFiles(ipam);
    const attempt = (requested: string[]): Promise<unknown> => ipam.allocate({ containerId: 'b', ifname: 'eth0', requested });
    await assertRejects(attempt(['10.0.0.9']), 'WEFT_IPAM_CONFLICT', 'requested IP address 10.0.0.9 is not available in range set 10.0.0.1-10.0.0.100 of network testnet');
    await assertRejects(attempt(['10.0.0.1']), 'WEFT_IPAM_CONFLICT', /10\.0\.0\.1 is the gateway/);
    await assertRejects(attempt(['10.0.0.200']), 'WEFT_IPAM_CONFLICT', /10\.0\.0\.200 is not in any range of network testnet/);
    await assertRejects(attempt(['10.0.0.5', '10.0.0.6']), 'WEFT_IPAM_CONFLICT', /10\.0\.0\.5 and 10\.0\.0\.6 are both in range set 0/);
    await assertRejects(attempt(['10.0.0.5/16']), 'WEFT_IPAM_CONFLICT', /does not match the prefix length \/24/);
    await assertRejects(attempt(['10.0.0.300']), 'WEFT_INVALID_CONFIG', /requested IP address for network testnet: "10\.0\.0\.300"/);
    // The v4 request fails after the v6 set would have been served: nothing may be left behind.
    await assertRejects(attempt(['fd00::5', '10.0.0.9']), 'WEFT_IPAM_CONFLICT', /not available/);
    assert.deepEqual(storeFiles(ipam), before);
  });
});

describe('HostLocalIpam: duplicates, rollback, release, lookup', () => {
  it('refuses a second ADD for the same container and interface, but not another interface', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    await addresses(ipam, 'a');
    await assertRejects(ipam.allocate({ containerId: 'a', ifname: 'eth0' }), 'WEFT_IPAM_CONFLICT',
      '10.0.0.2 in network testnet is already allocated to container a interface eth0; duplicate allocation is not allowed');
    await assertRejects(ipam.allocate({ containerId: 'a', ifname: 'eth0', requested: ['10.0.0.20'] }), 'WEFT_IPAM_CONFLICT', /duplicate/);
    assert.deepEqual((await ipam.allocate({ containerId: 'a', ifname: 'net1' })).map((x) => x.address), ['10.0.0.3']);
  });

  it('releases what one failed dual-stack ADD took, and nothing older', async (t) => {
    const ipam = newIpam(t, [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/126' }]]);
    seed(ipam, 'fd00::2', 'x\r\neth0');
    seed(ipam, 'fd00::3', 'y\r\neth0');
    seed(ipam, '192.168.9.9', 'a\r\neth0'); // from an older config
    await assertRejects(ipam.allocate({ containerId: 'a', ifname: 'eth0' }), 'WEFT_IPAM_EXHAUSTED',
      'no IP addresses available in range set fd00::1-fd00::3 of network testnet');
    // last_reserved_ip.0 was created by the failed ADD, so it goes too.
    assert.deepEqual(storeFiles(ipam), ['192.168.9.9', 'fd00::2', 'fd00::3', 'lock']);
  });

  it('is idempotent on release and only touches the given interface', async (t) => {
    const ipam = newIpam(t, [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]]);
    await ipam.allocate({ containerId: 'a', ifname: 'eth0' });
    await ipam.allocate({ containerId: 'a', ifname: 'net1' });
    assert.deepEqual(await ipam.lookup({ containerId: 'a', ifname: 'eth0' }), ['10.0.0.2', 'fd00::2']);
    assert.deepEqual(await ipam.release({ containerId: 'a', ifname: 'eth0' }), ['10.0.0.2', 'fd00::2']);
    assert.deepEqual(await ipam.release({ containerId: 'a', ifname: 'eth0' }), []);
    assert.deepEqual(await ipam.release({ containerId: 'nobody', ifname: 'eth0' }), []);
    assert.deepEqual(await ipam.lookup({ containerId: 'a', ifname: 'eth0' }), []);
    assert.deepEqual(await ipam.lookup({ containerId: 'a', ifname: 'net1' }), ['10.0.0.3', 'fd00::3']);
  });

  it('releases from a store whose directory does not exist yet', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    assert.deepEqual(await ipam.release({ containerId: 'a', ifname: 'eth0' }), []);
    assert.deepEqual(await ipam.usage(), [{ allocated: 0, capacity: 253 }]);
  });

  it('recognises legacy files holding only the container ID', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    await addresses(ipam, 'other');
    seed(ipam, '10.0.0.9', 'old\n');
    assert.deepEqual(await ipam.lookup({ containerId: 'old', ifname: 'eth0' }), ['10.0.0.9']);
    await assertRejects(ipam.allocate({ containerId: 'old', ifname: 'eth0' }), 'WEFT_IPAM_CONFLICT', /10\.0\.0\.9 .*duplicate/);
    assert.deepEqual(await ipam.release({ containerId: 'old', ifname: 'eth0' }), ['10.0.0.9']);
    assert.deepEqual(storeFiles(ipam), ['10.0.0.2', 'last_reserved_ip.0', 'lock']);
  });

  it('like host-local, frees legacy files only when no current-format file matched', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    await addresses(ipam, 'mixed');
    seed(ipam, '10.0.0.9', 'mixed');
    assert.deepEqual(await ipam.release({ containerId: 'mixed', ifname: 'eth0' }), ['10.0.0.2']);
    assert.deepEqual(await ipam.release({ containerId: 'mixed', ifname: 'eth0' }), ['10.0.0.9']);
  });
});

describe('HostLocalIpam: gc and usage', () => {
  it('frees everything not held by a valid attachment, crash leftovers included', async (t) => {
    const ipam = newIpam(t, v4('10.0.0.0/24'));
    for (const id of ['keep', 'drop1', 'drop2']) await addresses(ipam, id);
    seed(ipam, '10.0.0.20', ''); // a reservation whose writer crashed
    seed(ipam, '10.0.0.21', 'keep'); // legacy, container still valid
    seed(ipam, '10.0.0.22', 'gone'); // legacy, container gone
    seed(ipam, '172.16.0.5', 'old\r\neth0'); // outside today's ranges
    const freed = await ipam.gc([{ containerId: 'keep', ifname: 'eth0' }, { containerId: 'unknown', ifname: 'eth0' }]);
    assert.deepEqual(freed, ['10.0.0.3', '10.0.0.4', '10.0.0.20', '10.0.0.22', '172.16.0.5']);
    assert.deepEqual(storeFiles(ipam), ['10.0.0.2', '10.0.0.21', 'last_reserved_ip.0', 'lock']);
    assert.deepEqual(await ipam.gc([]), ['10.0.0.2', '10.0.0.21']);
  });

  it('reports allocated and total addresses per range set', async (t) => {
    const ipam = newIpam(t, [[{ subnet: '10.0.0.0/29' }], [{ subnet: 'fd00::/120' }]]);
    await ipam.allocate({ containerId: 'a', ifname: 'eth0' });
    await ipam.allocate({ containerId: 'b', ifname: 'eth0' });
    seed(ipam, '10.9.9.9', 'x\r\neth0'); // counts for no range set
    assert.deepEqual(await ipam.usage(), [{ allocated: 2, capacity: 5 }, { allocated: 2, capacity: 254 }]);
  });
});

describe('HostLocalIpam: without range sets (the node subnet is unknown)', () => {
  it('still releases, looks up and collects, but refuses to allocate', async (t) => {
    const withRanges = newIpam(t, v4('10.1.2.0/24'));
    await withRanges.allocate({ containerId: 'c1', ifname: 'eth0' });
    await withRanges.allocate({ containerId: 'c2', ifname: 'eth0' });
    const storeOnly = new HostLocalIpam({ dataDir: join(withRanges.storeDir, '..'), network: NETWORK, rangeSets: [] });
    assert.deepEqual(await storeOnly.lookup({ containerId: 'c1', ifname: 'eth0' }), ['10.1.2.2']);
    assert.deepEqual(await storeOnly.release({ containerId: 'c1', ifname: 'eth0' }), ['10.1.2.2']);
    assert.deepEqual(await storeOnly.gc([]), ['10.1.2.3']);
    await assertRejects(storeOnly.allocate({ containerId: 'c3', ifname: 'eth0' }), 'WEFT_INVALID_CONFIG', /has no IPAM range sets/);
  });
});

// The behaviour every Ipam must have (ipam.ts), as one test suite run against each
// implementation: the in-memory one (memory-ipam.test.ts) and host-local's disk store
// (host-local-contract.test.ts). A new allocator (a mesh's block allocator) runs it too.
// Test code: it registers node:test tests when ipamContract() is called.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { type WeftErrorCode, isWeftError } from '../errors.ts';
import type { Attachment, Ipam, IpamFactory } from './ipam.ts';
import { parseRangeSets } from './ranges.ts';

export interface IpamContractHarness {
  /** Shown in test names, e.g. "host-local disk store". */
  name: string;
  /** A factory over fresh, empty state of its own, and the dataDir to hand it (cleaned up after t). */
  open(t: TestContext): { factory: IpamFactory; dataDir: string };
}

const V4 = [[{ subnet: '10.20.0.0/24' }]];
const DUAL = [[{ subnet: '10.20.0.0/24' }], [{ subnet: 'fd20::/120' }]];
/** rangeStart .1 is the gateway, .3 the broadcast: exactly one address, 10.20.9.2. */
const ONE = [[{ subnet: '10.20.9.0/30' }]];

const pod = (containerId: string, ifname = 'eth0'): Attachment => ({ containerId, ifname });

async function rejectsWith(promise: Promise<unknown>, code: WeftErrorCode, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isWeftError(e, code), `expected ${code}, got ${String(e)}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

export function ipamContract(h: IpamContractHarness): void {
  /** An Ipam for network "contract" over the given ranges ([] = unknown, as DEL without subnet.env). */
  const setup = (t: TestContext): ((ranges: unknown[], name?: string) => Ipam) => {
    const { factory, dataDir } = h.open(t);
    return (ranges, name = 'contract') => factory({ name, dataDir, rangeSets: ranges.length === 0 ? [] : parseRangeSets(ranges) });
  };
  const addressesOf = async (ipam: Ipam, a: Attachment, requested?: string[]): Promise<string[]> =>
    (await ipam.allocate({ ...a, ...(requested ? { requested } : {}) })).map((x) => x.address);

  describe(`Ipam contract: ${h.name}`, () => {
    it('allocates one address per range set, inside it and never its gateway, and lookup finds them', async (t) => {
      const ipam = setup(t)(DUAL);
      const allocations = await ipam.allocate(pod('c1'));
      assert.equal(allocations.length, 2);
      const [v4, v6] = allocations;
      assert.deepEqual({ family: v4!.family, prefix: v4!.prefix, gateway: v4!.gateway, rangeSetIndex: v4!.rangeSetIndex }, { family: 4, prefix: 24, gateway: '10.20.0.1', rangeSetIndex: 0 });
      assert.deepEqual({ family: v6!.family, prefix: v6!.prefix, gateway: v6!.gateway, rangeSetIndex: v6!.rangeSetIndex }, { family: 6, prefix: 120, gateway: 'fd20::1', rangeSetIndex: 1 });
      assert.match(v4!.address, /^10\.20\.0\.\d+$/);
      assert.notEqual(v4!.address, '10.20.0.1');
      assert.match(v6!.address, /^fd20::[0-9a-f]+$/);
      assert.notEqual(v6!.address, 'fd20::1');
      assert.deepEqual(await ipam.lookup(pod('c1')), [v4!.address, v6!.address]);
      assert.deepEqual(await ipam.lookup(pod('c1', 'net1')), [], 'another interface of the same container holds nothing');
    });

    it('gives distinct addresses to distinct attachments, also to two interfaces of one container', async (t) => {
      const ipam = setup(t)(V4);
      const all = [
        ...await addressesOf(ipam, pod('c1')), ...await addressesOf(ipam, pod('c1', 'net1')), ...await addressesOf(ipam, pod('c2')),
      ];
      assert.equal(new Set(all).size, 3, all.join(' '));
    });

    it('gives concurrent allocations distinct addresses', async (t) => {
      const ipam = setup(t)(V4);
      const all = (await Promise.all(Array.from({ length: 20 }, (_, i) => addressesOf(ipam, pod(`c${i}`))))).flat();
      assert.equal(new Set(all).size, 20);
      assert.deepEqual(await ipam.usage(), [{ allocated: 20, capacity: 253 }]);
    });

    it('refuses a second allocation for the same attachment and keeps the first', async (t) => {
      const ipam = setup(t)(V4);
      const first = await addressesOf(ipam, pod('c1'));
      await rejectsWith(ipam.allocate(pod('c1')), 'WEFT_IPAM_CONFLICT', /already allocated to container c1 interface eth0/);
      await rejectsWith(ipam.allocate({ ...pod('c1'), requested: ['10.20.0.99'] }), 'WEFT_IPAM_CONFLICT');
      assert.deepEqual(await ipam.lookup(pod('c1')), first);
      assert.deepEqual(await ipam.usage(), [{ allocated: 1, capacity: 253 }]);
    });

    it('honours a requested address, and refuses one that is taken, outside the ranges or a gateway', async (t) => {
      const ipam = setup(t)(V4);
      assert.deepEqual(await addressesOf(ipam, pod('c1'), ['10.20.0.77']), ['10.20.0.77']);
      assert.deepEqual(await addressesOf(ipam, pod('c2'), ['10.20.0.78/24']), ['10.20.0.78']);
      await rejectsWith(ipam.allocate({ ...pod('c3'), requested: ['10.20.0.77'] }), 'WEFT_IPAM_CONFLICT', /10\.20\.0\.77 is not available/);
      await rejectsWith(ipam.allocate({ ...pod('c3'), requested: ['10.21.0.5'] }), 'WEFT_IPAM_CONFLICT', /not in any range/);
      await rejectsWith(ipam.allocate({ ...pod('c3'), requested: ['10.20.0.1'] }), 'WEFT_IPAM_CONFLICT', /gateway/);
      await rejectsWith(ipam.allocate({ ...pod('c3'), requested: ['10.20.0.5/16'] }), 'WEFT_IPAM_CONFLICT', /prefix length/);
      await rejectsWith(ipam.allocate({ ...pod('c3'), requested: ['not-an-ip'] }), 'WEFT_INVALID_CONFIG');
      assert.deepEqual(await ipam.lookup(pod('c3')), []);
    });

    it('refuses IDs that break the CNI rules on allocate, and never fails a release on them', async (t) => {
      const ipam = setup(t)(V4);
      await rejectsWith(ipam.allocate(pod('-bad')), 'WEFT_INVALID_ENV', /container ID/);
      await rejectsWith(ipam.allocate(pod('c1', 'a/b')), 'WEFT_INVALID_ENV', /interface name/);
      await rejectsWith(ipam.allocate(pod('c1', 'x'.repeat(16))), 'WEFT_INVALID_ENV', /interface name/);
      assert.deepEqual(await ipam.release(pod('-bad', 'a/b')), []);
      assert.deepEqual(await ipam.usage(), [{ allocated: 0, capacity: 253 }]);
    });

    it('release frees every address of the attachment, is idempotent, and the address can be had again', async (t) => {
      const ipam = setup(t)(DUAL);
      const mine = await addressesOf(ipam, pod('c1'));
      const other = await addressesOf(ipam, pod('c2'));
      assert.deepEqual(await ipam.release(pod('c1')), mine);
      assert.deepEqual(await ipam.lookup(pod('c1')), []);
      assert.deepEqual(await ipam.release(pod('c1')), [], 'a second release');
      assert.deepEqual(await ipam.release(pod('never')), [], 'a release of something never allocated');
      assert.deepEqual(await ipam.lookup(pod('c2')), other, 'the other attachment keeps its addresses');
      assert.deepEqual(await addressesOf(ipam, pod('c3'), mine), mine, 'the freed addresses are free');
    });

    it('shares state between the Ipams the factory makes for one network, ranges known or not', async (t) => {
      const open = setup(t);
      const mine = await addressesOf(open(V4), pod('c1'));
      assert.deepEqual(await open(V4).lookup(pod('c1')), mine);
      assert.deepEqual(await open([]).lookup(pod('c1')), mine, 'CHECK without subnet.env');
      assert.deepEqual(await open(V4, 'other').lookup(pod('c1')), [], 'another network is separate');
      assert.deepEqual(await open([]).release(pod('c1')), mine, 'DEL without subnet.env');
      assert.deepEqual(await open(V4).usage(), [{ allocated: 0, capacity: 253 }]);
      await rejectsWith(open([]).allocate(pod('c2')), 'WEFT_INVALID_CONFIG', /no IPAM range sets/);
      assert.deepEqual(await open([]).usage(), []);
    });

    it('reports usage per range set', async (t) => {
      const ipam = setup(t)(DUAL);
      assert.deepEqual(await ipam.usage(), [{ allocated: 0, capacity: 253 }, { allocated: 0, capacity: 254 }]);
      await ipam.allocate(pod('c1'));
      await ipam.allocate(pod('c2'));
      assert.deepEqual(await ipam.usage(), [{ allocated: 2, capacity: 253 }, { allocated: 2, capacity: 254 }]);
      await ipam.release(pod('c1'));
      assert.deepEqual(await ipam.usage(), [{ allocated: 1, capacity: 253 }, { allocated: 1, capacity: 254 }]);
    });

    it('fails with WEFT_IPAM_EXHAUSTED when a range set is full, and takes nothing', async (t) => {
      const ipam = setup(t)(ONE);
      assert.deepEqual(await addressesOf(ipam, pod('c1')), ['10.20.9.2']);
      await rejectsWith(ipam.allocate(pod('c2')), 'WEFT_IPAM_EXHAUSTED', /no IP addresses available in range set 10\.20\.9\.1-10\.20\.9\.2/);
      assert.deepEqual(await ipam.lookup(pod('c2')), []);
      assert.deepEqual(await ipam.usage(), [{ allocated: 1, capacity: 1 }]);
      await ipam.release(pod('c1'));
      assert.deepEqual(await addressesOf(ipam, pod('c2')), ['10.20.9.2'], 'free again after the release');
    });

    it('rolls back a dual-stack allocation that fails in its second range set', async (t) => {
      const ipam = setup(t)(DUAL);
      await ipam.allocate({ ...pod('holder'), requested: ['fd20::50'] });
      const before = await ipam.usage();
      await rejectsWith(ipam.allocate({ ...pod('c1'), requested: ['fd20::50'] }), 'WEFT_IPAM_CONFLICT', /fd20::50 is not available/);
      assert.deepEqual(await ipam.lookup(pod('c1')), [], 'no IPv4 address is left behind');
      assert.deepEqual(await ipam.usage(), before);
      assert.equal((await ipam.allocate(pod('c1'))).length, 2, 'the attachment can allocate afterwards');
    });

    it('rolls back when the IPv6 set is exhausted after the IPv4 one succeeded', async (t) => {
      const ipam = setup(t)([[{ subnet: '10.20.0.0/24' }], [{ subnet: 'fd20::/126' }]]);
      await ipam.allocate(pod('c1'));
      await ipam.allocate(pod('c2'));
      await rejectsWith(ipam.allocate(pod('c3')), 'WEFT_IPAM_EXHAUSTED', /fd20::1-fd20::3/);
      assert.deepEqual(await ipam.lookup(pod('c3')), []);
      assert.deepEqual(await ipam.usage(), [{ allocated: 2, capacity: 253 }, { allocated: 2, capacity: 2 }]);
    });

    it('gc frees exactly the attachments not listed as valid (container and interface), and returns them', async (t) => {
      const ipam = setup(t)(V4);
      const keep = await addressesOf(ipam, pod('keep'));
      const gone = await addressesOf(ipam, pod('gone'));
      const otherIf = await addressesOf(ipam, pod('keep', 'net1'));
      const freed = await ipam.gc([pod('keep'), pod('not-allocated')]);
      assert.deepEqual([...freed].sort(), [...gone, ...otherIf].sort());
      assert.deepEqual(await ipam.lookup(pod('keep')), keep);
      assert.deepEqual(await ipam.lookup(pod('gone')), []);
      assert.deepEqual(await ipam.gc([pod('keep')]), [], 'a second gc has nothing to free');
      assert.deepEqual(await ipam.gc([]), keep, 'no valid attachments frees everything');
      assert.deepEqual(await ipam.usage(), [{ allocated: 0, capacity: 253 }]);
    });
  });
}

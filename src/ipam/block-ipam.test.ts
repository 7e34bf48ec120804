// Block IPAM (block-ipam.ts) over a fake in-memory BlockSource and a scratch disk store: the
// Ipam contract, then what only block IPAM does (activation, ordering, growth).
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WeftError, isWeftError } from '../errors.ts';
import { cidrContains, formatCidr, parseCidr, parseIp } from '../net/cidr.ts';
import { HostLocalIpam } from './allocator.ts';
import { type BlockIpamOptions, type BlockSource, blockIpamFactory, currentRangeSetsOf } from './block-ipam.ts';
import { ipamContract } from './ipam-contract.ts';
import type { Attachment, Ipam } from './ipam.ts';
import { formatRangeSet, parseRangeSets } from './ranges.ts';

/** An in-memory source: owned blocks, the active ones, and blocks a grow() hands out, one per call. */
class FakeSource implements BlockSource {
  owned: string[];
  activeBlocks: string[] = [];
  spare: string[];
  readonly events: string[] = [];
  growError = 'no peer can spare a block';
  /** Called inside activate(), e.g. to look at the store at that moment. */
  onActivate: (block: string) => void = () => undefined;
  #growCalled: (() => void) | undefined;

  constructor(owned: string[], spare: string[] = []) {
    this.owned = owned;
    this.spare = spare;
  }

  blocks(): readonly string[] {
    return this.owned;
  }

  activate(block: string): void {
    this.events.push(`activate ${block}`);
    this.onActivate(block);
    if (!this.activeBlocks.includes(block)) this.activeBlocks.push(block);
  }

  active(): readonly string[] {
    return this.activeBlocks;
  }

  async grow(): Promise<void> {
    this.events.push('grow');
    this.#growCalled?.();
    await Promise.resolve();
    const next = this.spare.shift();
    if (!next) throw new WeftError('WEFT_IPAM_EXHAUSTED', this.growError);
    this.owned = [...this.owned, next];
  }

  /** Resolves at the next grow() call. */
  nextGrow(): Promise<void> {
    return new Promise((resolve) => {
      this.#growCalled = resolve;
    });
  }
}

// The contract's ranges become the fake's blocks (IPv4), and its IPv6 range sets pass through.
ipamContract({
  name: 'block IPAM over a fake block source',
  open(t) {
    const dataDir = mkdtempSync(join(tmpdir(), 'weft-block-contract-'));
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    const source = new FakeSource([]);
    const inner = blockIpamFactory(source);
    return {
      dataDir,
      factory: (network) => {
        if (source.owned.length === 0) {
          source.owned = network.rangeSets.flat().filter((r) => r.subnet.family === 4).map((r) => formatCidr(r.subnet));
        }
        return inner(network);
      },
    };
  },
});

const pod = (containerId: string): Attachment => ({ containerId, ifname: 'eth0' });
/** subnet.env in mesh mode: FLANNEL_SUBNET is only the node's first block. */
const SUBNET_ENV = parseRangeSets([[{ subnet: '10.32.0.0/26' }]]);

function setup(t: TestContext, source: FakeSource, options: BlockIpamOptions = {}, rangeSets = SUBNET_ENV) {
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-block-ipam-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const warnings: string[] = [];
  const factory = blockIpamFactory(source, options);
  const ipam = factory({ name: 'mesh', dataDir, rangeSets, warn: (p) => warnings.push(p) });
  const address = async (id: string, requested?: string[]): Promise<string> =>
    (await ipam.allocate({ ...pod(id), ...(requested ? { requested } : {}) }))[0]!.address;
  return { ipam, factory, dataDir, warnings, address, storeFiles: () => (existsSync(join(dataDir, 'mesh')) ? readdirSync(join(dataDir, 'mesh')) : []) };
}

const inBlock = (block: string, address: string): boolean => cidrContains(parseCidr(block), parseIp(address));

async function fill(ipam: Ipam, prefix: string, n: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < n; i++) got.push((await ipam.allocate(pod(`${prefix}${i}`)))[0]!.address);
  return got;
}

describe('block IPAM', () => {
  it("gives a pod its block's address, prefix and gateway (the block's first address)", async (t) => {
    const source = new FakeSource(['10.32.1.64/26']);
    const { ipam } = setup(t, source);
    assert.deepEqual(await ipam.allocate(pod('c1')), [{ family: 4, address: '10.32.1.66', prefix: 26, gateway: '10.32.1.65', rangeSetIndex: 0 }]);
  });

  it('activates a block before the first address in it is reserved, and only once', async (t) => {
    const source = new FakeSource(['10.32.0.0/29', '10.32.0.8/29']);
    const f = setup(t, source, { growThreshold: 0 });
    const filesAtActivation: string[][] = [];
    source.onActivate = () => filesAtActivation.push(f.storeFiles().filter((x) => x.startsWith('10.')));
    const first = await fill(f.ipam, 'a', 5);
    assert.deepEqual(source.events, ['activate 10.32.0.0/29']);
    assert.ok(first.every((a) => inBlock('10.32.0.0/29', a)), first.join(' '));
    const next = await f.address('b0');
    assert.ok(inBlock('10.32.0.8/29', next), next);
    assert.deepEqual(source.events, ['activate 10.32.0.0/29', 'activate 10.32.0.8/29']);
    assert.deepEqual(filesAtActivation[0], [], 'nothing was reserved before the first activation');
    assert.equal(filesAtActivation[1]!.filter((a) => inBlock('10.32.0.8/29', a)).length, 0, 'nor in the second block before its activation');
  });

  it('fills active blocks first, in the source order, before opening another, and prefers an active block with room', async (t) => {
    const source = new FakeSource(['10.32.0.0/29', '10.32.0.8/29', '10.32.0.16/29']);
    source.activeBlocks = ['10.32.0.16/29'];
    const f = setup(t, source, { growThreshold: 0 });
    const third = await fill(f.ipam, 'c', 5);
    assert.ok(third.every((a) => inBlock('10.32.0.16/29', a)), `the active block first: ${third.join(' ')}`);
    assert.deepEqual(source.events, []);
    const opened = await f.address('d0');
    assert.ok(inBlock('10.32.0.0/29', opened), `then the first unopened block in source order: ${opened}`);
    assert.deepEqual(source.events, ['activate 10.32.0.0/29']);
    await f.ipam.release(pod('c2'));
    await fill(f.ipam, 'e', 4);
    await f.address('e4');
    assert.deepEqual(source.events, ['activate 10.32.0.0/29'], 'the freed address and the open block had room: nothing new opened');
    assert.deepEqual(await f.ipam.lookup(pod('e4')).then((a) => a.every((x) => !inBlock('10.32.0.8/29', x))), true);
    const sets = currentRangeSetsOf(f.ipam)!;
    assert.equal(formatRangeSet(sets[0]!), '10.32.0.1-10.32.0.6,10.32.0.17-10.32.0.22,10.32.0.9-10.32.0.14', 'active blocks first (in source order), then the others');
  });

  it('asks the source to grow once when every block is full, and uses the new block', async (t) => {
    const source = new FakeSource(['10.32.0.0/30'], ['10.32.7.192/30']);
    const f = setup(t, source, { growThreshold: 0 });
    assert.equal(await f.address('c1'), '10.32.0.2');
    assert.equal(await f.address('c2'), '10.32.7.194');
    assert.deepEqual(source.events, ['activate 10.32.0.0/30', 'grow', 'activate 10.32.7.192/30']);
    await assert.rejects(f.ipam.allocate(pod('c3')), (e: unknown) => {
      assert.ok(isWeftError(e, 'WEFT_IPAM_EXHAUSTED'), String(e));
      assert.match(e.message, /^no IP addresses available in range set 10\.32\.0\.1-10\.32\.0\.2,10\.32\.7\.193-10\.32\.7\.194 of network mesh, and no more address space can be had now: no peer can spare a block$/);
      return true;
    });
    assert.deepEqual(source.events.filter((e) => e === 'grow'), ['grow', 'grow'], 'one grow per exhausted ADD');
    assert.deepEqual(await f.ipam.lookup(pod('c3')), [], 'the failed ADD holds nothing');
  });

  it('fails with the reason grow() gives, and an empty source says it owns no block', async (t) => {
    const source = new FakeSource([]);
    source.growError = 'the mesh has not agreed on the address space yet; waiting for 2 of 3 peers';
    const f = setup(t, source);
    await assert.rejects(f.ipam.allocate(pod('c1')), (e: unknown) => {
      assert.ok(isWeftError(e, 'WEFT_IPAM_EXHAUSTED'));
      assert.equal(e.message, 'no IP addresses available in network mesh: this node owns no address block yet, and no more address space can be had now: the mesh has not agreed on the address space yet; waiting for 2 of 3 peers');
      return true;
    });
  });

  it('gives up on a grow() that never answers', async (t) => {
    const source = new FakeSource([]);
    source.grow = () => new Promise(() => undefined);
    const f = setup(t, source, { growTimeoutMs: 20 });
    await assert.rejects(f.ipam.allocate(pod('c1')), /did not answer a request for more address space within 20 ms/);
  });

  it('grows in the background when few free addresses are left, and logs a failed grow through warn', async (t) => {
    const source = new FakeSource(['10.32.0.0/28'], ['10.32.0.16/28']);
    const f = setup(t, source);
    await fill(f.ipam, 'a', 5);
    assert.deepEqual(source.events.filter((e) => e === 'grow'), [], '13 - 5 = 8 free: not yet');
    const grown = source.nextGrow();
    await f.address('a5');
    await grown;
    await f.ipam.usage();
    assert.deepEqual(source.owned, ['10.32.0.0/28', '10.32.0.16/28']);
    assert.deepEqual(source.events, ['activate 10.32.0.0/28', 'grow'], 'grown, but the new block is not activated before it is needed');
    await fill(f.ipam, 'b', 13);
    const failed = source.nextGrow();
    await f.address('b13');
    await failed;
    for (let i = 0; i < 100 && f.warnings.length === 0; i++) await new Promise((r) => setImmediate(r));
    assert.match(f.warnings.join('\n'), /cannot get more address space for network mesh ahead of need: no peer can spare a block/);
  });

  it('serializes concurrent ADDs: each block is opened once, and no more blocks than needed', async (t) => {
    const source = new FakeSource(['10.32.0.0/29', '10.32.0.8/29', '10.32.0.16/29', '10.32.0.24/29'], []);
    const f = setup(t, source, { growThreshold: 0 });
    const got = await Promise.all(Array.from({ length: 10 }, (_, i) => f.address(`p${i}`)));
    assert.equal(new Set(got).size, 10);
    assert.deepEqual(source.events, ['activate 10.32.0.0/29', 'activate 10.32.0.8/29']);
  });

  it('never hands out an address outside blocks(), even for a stale active block or a request', async (t) => {
    const source = new FakeSource(['10.32.0.8/29']);
    source.activeBlocks = ['10.32.0.0/29'];
    const f = setup(t, source, { growThreshold: 0 });
    await assert.rejects(f.ipam.allocate({ ...pod('r1'), requested: ['10.32.0.3'] }), (e: unknown) =>
      isWeftError(e, 'WEFT_IPAM_CONFLICT') && /10\.32\.0\.3 is not in any range of network mesh: no block this node owns holds it/.test(e.message));
    const got = await fill(f.ipam, 'p', 5);
    assert.ok(got.every((a) => inBlock('10.32.0.8/29', a)), got.join(' '));
    await assert.rejects(f.ipam.allocate(pod('p5')), /no IP addresses available in range set 10\.32\.0\.9-10\.32\.0\.14/);
    assert.deepEqual(f.storeFiles().filter((x) => x.startsWith('10.')).filter((a) => !inBlock('10.32.0.8/29', a)), []);
  });

  it('opens exactly the block of a requested address', async (t) => {
    const source = new FakeSource(['10.32.0.0/29', '10.32.0.8/29']);
    const f = setup(t, source, { growThreshold: 0 });
    assert.equal(await f.address('r1', ['10.32.0.12/29']), '10.32.0.12');
    assert.deepEqual(source.events, ['activate 10.32.0.8/29']);
    assert.equal(await f.address('r2'), '10.32.0.13', 'the next pod fills the open block');
    await assert.rejects(f.ipam.allocate({ ...pod('r3'), requested: ['10.32.0.9'] }), /gateway/);
  });

  it('keeps the IPv6 range set of subnet.env beside the blocks', async (t) => {
    const source = new FakeSource(['10.32.0.64/26']);
    const f = setup(t, source, {}, parseRangeSets([[{ subnet: '10.32.0.0/26' }], [{ subnet: 'fd32::/120' }]]));
    const [v4, v6] = await f.ipam.allocate(pod('d1'));
    assert.equal(v4!.gateway, '10.32.0.65');
    assert.equal(v6!.gateway, 'fd32::1');
    assert.deepEqual(await f.ipam.usage(), [{ allocated: 1, capacity: 61 }, { allocated: 1, capacity: 254 }]);
  });

  it('reports usage over every owned block, skipping blocks that cannot be ranges', async (t) => {
    const source = new FakeSource(['10.32.0.0/26', 'bogus', '10.32.0.64/32', '10.32.1.0/26']);
    const f = setup(t, source);
    assert.deepEqual(await f.ipam.usage(), [{ allocated: 0, capacity: 122 }]);
    // Another writer on the same store (host-local, or the standalone plugin) counts too.
    await new HostLocalIpam({ dataDir: f.dataDir, network: 'mesh', rangeSets: parseRangeSets([[{ subnet: '10.32.1.0/26' }]]) }).allocate(pod('x'));
    assert.deepEqual(await f.ipam.usage(), [{ allocated: 1, capacity: 122 }]);
    assert.match(f.warnings.join('\n'), /ignoring block "bogus" of the block source/);
    assert.match(f.warnings.join('\n'), /ignoring block "10\.32\.0\.64\/32" of the block source: .*too small/);
    assert.deepEqual(await f.factory({ name: 'mesh', dataDir: f.dataDir, rangeSets: [] }).usage(), [], 'ranges unknown');
  });

  it('releases, looks up and collects garbage without ranges, like the disk store', async (t) => {
    const source = new FakeSource(['10.32.0.0/26']);
    const f = setup(t, source);
    const a = await f.address('a');
    await f.address('b');
    const bare = f.factory({ name: 'mesh', dataDir: f.dataDir, rangeSets: [] });
    assert.deepEqual(await bare.lookup(pod('a')), [a]);
    assert.deepEqual(await bare.release(pod('a')), [a]);
    assert.equal((await bare.gc([])).length, 1);
    assert.deepEqual(f.storeFiles().filter((x) => x.startsWith('10.')), []);
  });
});

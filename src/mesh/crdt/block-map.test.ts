import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../../errors.ts';
import {
  BlockMap, MAX_OWNERS, alignedChunks, coalesce, compareOwners, isOwnerName, pickDonation, type BlockRun,
} from './block-map.ts';

const RANGE = '10.32.0.0/12';

function throwsCode(fn: () => unknown, code: string, text?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isWeftError(e), `expected a WeftError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (text) assert.match(e.message, text);
    return true;
  });
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

describe('BlockMap.create', () => {
  it('cuts the range into 2^(block - range) blocks, all unowned at (0,0)', () => {
    const map = BlockMap.create(RANGE, 26);
    assert.equal(map.size, 16384);
    assert.equal(map.universe, RANGE);
    assert.deepEqual(map.entry(0), { owner: null, epoch: 0, counter: 0 });
    assert.deepEqual(map.runs(), [{ start: 0, count: 16384, owner: null, epoch: 0, counter: 0 }]);
    assert.deepEqual([...map.owners()], [[null, 16384]]);
  });

  it('refuses IPv6, host bits, block sizes outside range../30 and more than 65,536 blocks', () => {
    throwsCode(() => BlockMap.create('fd00::/104', 120), 'WEFT_INVALID_CONFIG', /IPv6/);
    throwsCode(() => BlockMap.create('10.32.0.1/12', 26), 'WEFT_INVALID_CONFIG', /host bits/);
    throwsCode(() => BlockMap.create(RANGE, 11), 'WEFT_INVALID_CONFIG', /\/12 to \/30/);
    throwsCode(() => BlockMap.create(RANGE, 31), 'WEFT_INVALID_CONFIG', /\/12 to \/30/);
    throwsCode(() => BlockMap.create(RANGE, 26.5), 'WEFT_INVALID_CONFIG');
    throwsCode(() => BlockMap.create('10.0.0.0/8', 25), 'WEFT_INVALID_CONFIG', /131072 blocks.*\/24 or larger/);
    assert.equal(BlockMap.create('10.0.0.0/8', 24).size, 65536);
    assert.equal(BlockMap.create('192.168.1.0/24', 24).size, 1);
  });

  it('stores 16,384 blocks in well under 1 MB', () => {
    const map = BlockMap.seed(RANGE, 26, ['a', 'b', 'c']);
    assert.ok(map.approxBytes() < 200_000, `approxBytes ${map.approxBytes()}`);
    // The typed arrays are ArrayBuffer memory, which Node counts separately from the JS heap.
    const before = process.memoryUsage().arrayBuffers;
    const maps = Array.from({ length: 20 }, () => map.clone());
    const perMap = (process.memoryUsage().arrayBuffers - before) / maps.length;
    assert.ok(perMap < 1_000_000, `each map holds ${perMap} bytes of ArrayBuffer memory`);
  });
});

describe('BlockMap.seed', () => {
  it('gives one owner the whole range at version (0,1)', () => {
    const map = BlockMap.seed(RANGE, 26, ['aa:bb:cc:dd:ee:01']);
    assert.deepEqual(map.runs(), [{ start: 0, count: 16384, owner: 'aa:bb:cc:dd:ee:01', epoch: 0, counter: 1 }]);
    assert.deepEqual(map.cidrsOf('aa:bb:cc:dd:ee:01'), [RANGE]);
  });

  it('splits two owners into halves', () => {
    const map = BlockMap.seed(RANGE, 26, ['b', 'a']);
    assert.deepEqual(map.cidrsOf('a'), ['10.32.0.0/13']);
    assert.deepEqual(map.cidrsOf('b'), ['10.40.0.0/13']);
  });

  it('gives 3 owners 50/25/25 %, sorted and de-duplicated', () => {
    const map = BlockMap.seed(RANGE, 26, ['c', 'a', 'b', 'a']);
    assert.deepEqual([...map.owners()], [['a', 8192], ['b', 4096], ['c', 4096]]);
    assert.deepEqual(map.cidrsOf('a'), ['10.32.0.0/13']);
    assert.deepEqual(map.cidrsOf('b'), ['10.40.0.0/14']);
    assert.deepEqual(map.cidrsOf('c'), ['10.44.0.0/14']);
  });

  it('gives 5 owners 25/25/25/12.5/12.5 %', () => {
    const map = BlockMap.seed(RANGE, 26, ['e', 'd', 'c', 'b', 'a']);
    assert.deepEqual([...map.owners()], [['a', 4096], ['b', 4096], ['c', 4096], ['d', 2048], ['e', 2048]]);
    assert.deepEqual(['a', 'b', 'c', 'd', 'e'].map((o) => map.cidrsOf(o)),
      [['10.32.0.0/14'], ['10.36.0.0/14'], ['10.40.0.0/14'], ['10.44.0.0/15'], ['10.46.0.0/15']]);
  });

  it('gives each of 1000 owners one CIDR-aligned range, in name order, covering the range', () => {
    const names = Array.from({ length: 1000 }, (_, i) => `node-${String(i).padStart(4, '0')}`);
    const map = BlockMap.seed(RANGE, 26, [...names].reverse());
    let next = 0;
    for (const name of names) {
      const blocks = map.ownedBy(name);
      assert.equal(blocks[0], next, `${name} starts where the previous owner ended`);
      // Uneven splits (3 = 1 + 2) leave some owners a level higher: 8, 16 or 32 blocks.
      assert.ok([8, 16, 32].includes(blocks.length), `${name} has ${blocks.length} blocks`);
      assert.equal(map.cidrsOf(name).length, 1, `${name} has one CIDR`);
      assert.equal((blocks[0] as number) % blocks.length, 0, 'aligned');
      next += blocks.length;
    }
    assert.equal(next, 16384);
    assert.equal(sum(map.owners().values()), 16384);
    assert.equal(map.runs().length, 1000);
  });

  it('says the range is too small when there are more owners than blocks', () => {
    throwsCode(() => BlockMap.seed('10.0.0.0/24', 26, ['a', 'b', 'c', 'd', 'e']), 'WEFT_INVALID_CONFIG', /too small for 5 peers.*only 4/);
    assert.equal(BlockMap.seed('10.0.0.0/24', 26, ['a', 'b', 'c', 'd']).runs().length, 4);
  });

  it('refuses no owners and bad owner names', () => {
    throwsCode(() => BlockMap.seed(RANGE, 26, []), 'WEFT_INVALID_CONFIG', /at least one/);
    throwsCode(() => BlockMap.seed(RANGE, 26, ['ok', 'not ok']), 'WEFT_INVALID_CONFIG', /"not ok"/);
  });
});

describe('addresses and CIDRs', () => {
  const map = BlockMap.create(RANGE, 26);

  it('maps addresses to blocks and back', () => {
    assert.equal(map.blockOf('10.32.0.0'), 0);
    assert.equal(map.blockOf('10.32.0.65'), 1);
    assert.equal(map.blockOf('10.47.255.255'), 16383);
    assert.equal(map.blockCidr(1), '10.32.0.64/26');
    assert.equal(map.blockCidr(16383), '10.47.255.192/26');
    for (const outside of ['10.31.255.255', '10.48.0.0', 'fd00::1', 'nonsense', '10.32.0.300', '']) {
      assert.equal(map.blockOf(outside), undefined, outside);
    }
    assert.throws(() => map.blockCidr(16384), RangeError);
    assert.throws(() => map.entry(-1), RangeError);
  });

  it('coalesces blocks into the fewest aligned CIDRs', () => {
    assert.deepEqual(coalesce(map, []), []);
    assert.deepEqual(coalesce(map, [3, 0, 1, 2, 2]), ['10.32.0.0/24']);
    assert.deepEqual(coalesce(map, [1, 2, 3, 4, 5, 6]), ['10.32.0.64/26', '10.32.0.128/25', '10.32.1.0/25', '10.32.1.128/26']);
    assert.deepEqual(coalesce(map, [16383, 0]), ['10.32.0.0/26', '10.47.255.192/26']);
    assert.deepEqual(alignedChunks([8, 9, 10, 11, 12, 13, 14, 15, 16]), [{ start: 8, count: 8 }, { start: 16, count: 1 }]);
  });
});

describe('owner names', () => {
  it('accepts peer names and plain names, nothing else', () => {
    for (const ok of ['aa:bb:cc:dd:ee:ff', '00:11:22:33:44:55', 'node-1', 'a', 'x.y_z-1', 'A'.repeat(63)]) assert.ok(isOwnerName(ok), ok);
    for (const bad of ['AA:BB:CC:DD:EE:FF', 'aa:bb:cc:dd:ee', 'aa:bb:cc:dd:ee:ff:00', '', 'a b', 'a/b', 'A'.repeat(64), 'é', null, 1, {}]) {
      assert.ok(!isOwnerName(bad), String(bad));
    }
  });

  it('orders null first, then names by code unit', () => {
    assert.ok(compareOwners(null, 'a') < 0);
    assert.ok(compareOwners('B', 'a') < 0);
    assert.ok(compareOwners('b', 'a') > 0);
    assert.equal(compareOwners(null, null), 0);
  });
});

describe('grant', () => {
  it('bumps the counter, names the receiver and returns the delta runs', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b']);
    const delta = map.grant('a', [2, 3, 5, 3], 'c');
    assert.deepEqual(delta, [
      { start: 2, count: 2, owner: 'c', epoch: 0, counter: 2 },
      { start: 5, count: 1, owner: 'c', epoch: 0, counter: 2 },
    ]);
    assert.deepEqual(map.entry(3), { owner: 'c', epoch: 0, counter: 2 });
    assert.deepEqual(map.grant('c', [3], 'a'), [{ start: 3, count: 1, owner: 'a', epoch: 0, counter: 3 }]);
    assert.deepEqual([...map.owners()], [['a', 6], ['b', 8], ['c', 2]]);
    assert.deepEqual(map.grant('a', [], 'b'), []);
  });

  it('refuses blocks that are not the granter\'s, naming the block, and changes nothing', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b']);
    const before = map.digest();
    throwsCode(() => map.grant('a', [1, 9], 'c'), 'WEFT_MESH_STATE', /cannot grant block 9 \(10\.0\.0\.144\/28\): it is owned by b/);
    throwsCode(() => map.grant('z', [1], 'c'), 'WEFT_MESH_STATE', /z cannot grant block 1 .*owned by a/);
    throwsCode(() => map.grant('a', [16], 'c'), 'WEFT_MESH_STATE', /block 16: .* 0 to 15/);
    throwsCode(() => map.grant('a', [0.5], 'c'), 'WEFT_MESH_STATE', /block 0\.5/);
    throwsCode(() => map.grant('a', [1], 'bad name'), 'WEFT_MESH_STATE', /receiving peer "bad name"/);
    throwsCode(() => BlockMap.create('10.0.0.0/24', 28).grant('a', [0], 'b'), 'WEFT_MESH_STATE', /owned by nobody/);
    assert.equal(map.digest(), before);
  });

  it('release and giveAll hand blocks to an heir', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b']);
    map.release('a', [0], 'b');
    assert.equal(map.entry(0).owner, 'b');
    map.giveAll('a', 'b');
    assert.deepEqual([...map.owners()], [['b', 16]]);
    assert.deepEqual(map.giveAll('a', 'b'), []);
  });
});

describe('reclaim', () => {
  it('takes every block of the dead peer at epoch+1, counter 0', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b', 'c']);
    map.grant('b', [8], 'a');
    const delta = map.reclaim('c', 'b');
    assert.deepEqual(delta, [{ start: 9, count: 3, owner: 'c', epoch: 1, counter: 0 }]);
    assert.deepEqual(map.entry(8), { owner: 'a', epoch: 0, counter: 2 });
    assert.deepEqual([...map.owners()], [['a', 9], ['c', 7]]);
    assert.deepEqual(map.reclaim('c', 'b'), [], 'nothing left to take');
    // A reclaim wins over anything the dead peer wrote at the old epoch.
    const stale = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b', 'c']);
    stale.grant('b', [9], 'b');
    stale.merge(delta);
    assert.equal(stale.entry(9).owner, 'c');
  });

  it('refuses to reclaim self, no one, or a bad name', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b']);
    throwsCode(() => map.reclaim('a', 'a'), 'WEFT_MESH_STATE', /own blocks/);
    throwsCode(() => map.reclaim('a', null as unknown as string), 'WEFT_MESH_STATE', /name the dead peer/);
    throwsCode(() => map.reclaim('a', 'x y'), 'WEFT_MESH_STATE', /dead peer "x y"/);
    throwsCode(() => map.reclaim('A B', 'b'), 'WEFT_MESH_STATE', /reclaiming peer/);
  });

  it('an observer that owns nothing can be the heir', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b']);
    map.reclaim('o', 'a');
    assert.deepEqual(map.cidrsOf('o'), ['10.0.0.0/25']);
  });
});

describe('merge', () => {
  const at = (start: number, count: number, owner: string | null, epoch: number, counter: number): BlockRun => ({ start, count, owner, epoch, counter });

  it('keeps the higher version per block and counts what changed', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b']);
    const result = map.merge([at(0, 2, 'c', 0, 2), at(4, 1, null, 0, 0), at(8, 8, 'a', 1, 0)]);
    assert.deepEqual(result, { changed: 10, conflicts: [] });
    assert.deepEqual(map.runs(), [at(0, 2, 'c', 0, 2), at(2, 6, 'a', 0, 1), at(8, 8, 'a', 1, 0)]);
    assert.deepEqual(map.merge(map.runs()), { changed: 0, conflicts: [] }, 'idempotent');
  });

  it('breaks an equal-version tie towards the larger owner, null smallest, and reports it', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['m']);
    const result = map.merge([at(0, 1, 'z', 0, 1), at(1, 1, 'a', 0, 1), at(2, 1, null, 0, 1)]);
    assert.equal(result.changed, 1);
    assert.deepEqual(result.conflicts, [
      { block: 0, kept: 'z', dropped: 'm' },
      { block: 1, kept: 'm', dropped: 'a' },
      { block: 2, kept: 'm', dropped: null },
    ]);
    assert.deepEqual([map.entry(0).owner, map.entry(1).owner, map.entry(2).owner], ['z', 'm', 'm']);
  });

  it('re-checks its input and changes nothing on bad runs', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a']);
    const before = map.digest();
    throwsCode(() => map.merge([at(0, 1, 'b', 5, 0), at(0, 1, 'c', 5, 0)]), 'WEFT_MESH_STATE', /overlap/);
    throwsCode(() => map.merge([at(0, 1, 'b', 5, 0), at(1, 16, 'c', 5, 0)]), 'WEFT_MESH_STATE', /count/);
    assert.equal(map.digest(), before);
  });
});

describe('canonical runs and digest', () => {
  it('equal states reached by different operation orders have equal runs and digests', () => {
    const base = BlockMap.seed('10.0.0.0/22', 28, ['a', 'b', 'c']);
    const one = base.clone();
    const two = base.clone();
    const d1 = one.grant('a', [0, 1], 'b');
    const d2 = one.grant('c', [60], 'a');
    const d3 = one.reclaim('a', 'b');
    for (const d of [d3, d1, d2, d3, d1]) two.merge(d);
    assert.deepEqual(two.runs(), one.runs());
    assert.equal(two.digest(), one.digest());
    const rebuilt = BlockMap.fromRuns('10.0.0.0/22', 28, JSON.parse(JSON.stringify(one.runs())) as unknown[]);
    assert.equal(rebuilt.digest(), one.digest());
    assert.notEqual(base.digest(), one.digest());
  });

  it('runs are maximal: adjacent identical entries join, different ones split', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['a', 'b']);
    map.grant('a', [1], 'b');
    map.grant('a', [0], 'b');
    assert.deepEqual(map.runs().map((r) => [r.start, r.count, r.owner, r.counter]), [[0, 2, 'b', 2], [2, 6, 'a', 1], [8, 8, 'b', 1]]);
  });

  it('the digest covers the range and block size as well as the entries', () => {
    assert.notEqual(BlockMap.create('10.0.0.0/24', 28).digest(), BlockMap.create('10.0.1.0/24', 28).digest());
    assert.notEqual(BlockMap.create('10.0.0.0/24', 28).digest(), BlockMap.create('10.0.0.0/24', 27).digest());
    assert.notEqual(BlockMap.seed('10.0.0.0/24', 28, ['ab']).digest(), BlockMap.seed('10.0.0.0/24', 28, ['ba']).digest());
    assert.match(BlockMap.create(RANGE, 26).digest(), /^[0-9a-f]{64}$/);
  });

  it('fromRuns leaves blocks it does not cover unowned at (0,0)', () => {
    const map = BlockMap.fromRuns('10.0.0.0/24', 28, [{ start: 4, count: 2, owner: 'a', epoch: 1, counter: 3 }]);
    assert.deepEqual(map.entry(3), { owner: null, epoch: 0, counter: 0 });
    assert.deepEqual(map.entry(5), { owner: 'a', epoch: 1, counter: 3 });
    throwsCode(() => BlockMap.fromRuns('10.0.0.0/24', 28, [{ start: 16, count: 1, owner: 'a', epoch: 1, counter: 0 }]), 'WEFT_MESH_STATE');
  });
});

describe('validateRuns on hostile input', () => {
  const map = BlockMap.create('10.0.0.0/24', 28); // 16 blocks
  const good = { start: 0, count: 1, owner: 'a', epoch: 0, counter: 1 };
  const bad = (raw: unknown, text: RegExp, maxRuns?: number): void => throwsCode(() => map.validateRuns(raw, maxRuns), 'WEFT_MESH_STATE', text);

  it('accepts good runs and returns copies', () => {
    const raw = [good, { start: 1, count: 15, owner: null, epoch: 7, counter: 0 }];
    const runs = map.validateRuns(raw);
    assert.deepEqual(runs, raw);
    assert.notEqual(runs[0], raw[0]);
    assert.deepEqual(map.validateRuns([]), []);
  });

  it('refuses wrong types', () => {
    bad('runs', /must be an array, got "runs"/);
    bad({ 0: good }, /must be an array, got a object/);
    bad(null, /got null/);
    bad([good, null], /block run 1 must be an object, got null/);
    bad([[0, 1, 'a', 0, 1]], /block run 0 must be an object, got an array/);
    bad([{ ...good, start: '0' }], /"start" must be an integer from 0 to 15, got "0"/);
    bad([{ ...good, owner: 5 }], /"owner" must be null or a peer name/);
    bad([{ ...good, owner: undefined }], /"owner"/);
    bad([{ start: 0, count: 1, epoch: 0, counter: 1 }], /"owner"/);
    bad([{ ...good, extra: 1 }], /unknown field "extra"/);
    bad([{ ...good, epoch: true }], /"epoch" .* got true/);
  });

  it('refuses numbers out of range', () => {
    bad([{ ...good, start: -1 }], /"start" .* got -1/);
    bad([{ ...good, start: 16 }], /"start" .* got 16/);
    bad([{ ...good, start: NaN }], /got NaN/);
    bad([{ ...good, count: 0 }], /"count" must be an integer from 1 to 16/);
    bad([{ ...good, start: 10, count: 7 }], /"count" must be an integer from 1 to 6 .* got 7/);
    bad([{ ...good, count: 1e12 }], /got 1000000000000/);
    bad([{ ...good, count: Infinity }], /got Infinity/);
    bad([{ ...good, epoch: -1 }], /"epoch" must be an integer from 0 to 4294967295/);
    bad([{ ...good, counter: 2 ** 32 }], /"counter" .* got 4294967296/);
    bad([{ ...good, counter: 1.5 }], /"counter" .* got 1.5/);
    bad([{ ...good, counter: 0 }], /version \(0,0\) is the initial unowned state/);
  });

  it('refuses unsorted or overlapping runs', () => {
    bad([{ ...good, start: 4 }, { ...good, start: 2 }], /block run 1 starts at block 2.*sorted/);
    bad([{ ...good, start: 2, count: 3 }, { ...good, start: 4 }], /block run 1 starts at block 4.*overlap/);
    bad([good, good], /block run 1 starts at block 0/);
    assert.equal(map.validateRuns([{ ...good, count: 2 }, { ...good, start: 2 }]).length, 2, 'touching runs are fine');
  });

  it('refuses bad owner names, quoting them short', () => {
    bad([{ ...good, owner: 'AA:BB:CC:DD:EE:FF' }], /"AA:BB:CC:DD:EE:FF"/);
    bad([{ ...good, owner: '../etc' }], /"owner"/);
    assert.throws(() => map.validateRuns([{ ...good, owner: 'x'.repeat(10_000_000) }]), (e: unknown) => {
      assert.ok(isWeftError(e, 'WEFT_MESH_STATE'));
      assert.ok(e.message.length < 300, `message is ${e.message.length} characters`);
      return true;
    });
  });

  it('bounds the number of runs, even for 10 MB of them', () => {
    const huge = JSON.stringify(Array.from({ length: 150_000 }, (_, i) => ({ start: i, count: 1, owner: 'aa:bb:cc:dd:ee:ff', epoch: 1, counter: 1 })));
    assert.ok(huge.length > 10_000_000);
    bad(JSON.parse(huge) as unknown, /150000 block runs is more than the 16 allowed/);
    bad([good, { ...good, start: 1 }], /2 block runs is more than the 1 allowed/, 1);
  });

  it('refuses runs naming more than MAX_OWNERS owners', () => {
    const big = BlockMap.create('10.0.0.0/12', 28);
    const runs = Array.from({ length: MAX_OWNERS + 1 }, (_, i) => ({ start: i, count: 1, owner: `p${i}`, epoch: 0, counter: 1 }));
    throwsCode(() => big.validateRuns(runs), 'WEFT_MESH_STATE', /more than 4096 distinct owners/);
    assert.equal(big.validateRuns(runs.slice(0, MAX_OWNERS)).length, MAX_OWNERS);
  });
});

describe('the owner table stays bounded', () => {
  const full = (): BlockMap => BlockMap.seed('10.0.0.0/12', 28, Array.from({ length: MAX_OWNERS }, (_, i) => `p${i}`));

  it('refuses a grant or a merge that would name a 4097th owner, changing nothing', () => {
    const map = full();
    const before = map.digest();
    const p0 = map.ownedBy('p0');
    throwsCode(() => map.grant('p0', [p0[0] as number], 'newcomer'), 'WEFT_MESH_STATE', /already names 4096 owners/);
    throwsCode(() => map.merge([{ start: 0, count: 1, owner: 'newcomer', epoch: 1, counter: 0 }]), 'WEFT_MESH_STATE', /would name 4097 owners/);
    assert.equal(map.digest(), before);
    // Replacing an owner entirely keeps the count, so it is allowed.
    map.grant('p0', p0, 'newcomer');
    assert.equal(map.owners().size, MAX_OWNERS);
    const p1 = map.ownedBy('p1');
    map.merge([{ start: p1[0] as number, count: p1.length, owner: 'other', epoch: 1, counter: 0 }]);
    assert.equal(map.owners().get('other'), p1.length);
    assert.equal(map.owners().size, MAX_OWNERS);
  });

  it('forgets owners that hold nothing any more, so churn does not fill it', () => {
    const map = BlockMap.seed('10.0.0.0/24', 28, ['n0']);
    for (let i = 0; i < 10_000; i++) map.giveAll(`n${i}`, `n${i + 1}`);
    assert.deepEqual([...map.owners()], [['n10000', 16]]);
    assert.ok(map.approxBytes() < 2_000_000);
    assert.equal(BlockMap.fromRuns('10.0.0.0/24', 28, map.runs()).digest(), map.digest());
    assert.deepEqual(map.entry(7), { owner: 'n10000', epoch: 0, counter: 10_001 });
  });
});

describe('pickDonation', () => {
  const map = BlockMap.seed('10.0.0.0/22', 28, ['a', 'b']); // 64 blocks: a 0-31, b 32-63

  it('gives an aligned chunk from the top of the largest free run, at most half and at most wanted', () => {
    assert.deepEqual(pickDonation(map, 'a', 100, new Set()), range(16, 16));
    assert.deepEqual(pickDonation(map, 'a', 5, new Set()), range(28, 4));
    assert.deepEqual(pickDonation(map, 'a', 1, new Set()), [31]);
    // In use: 0-9 and 20; free runs 10-19 (10) and 21-31 (11). Half of 21 = 10 -> an aligned 8 at 24.
    const inUse = new Set([...range(0, 10), 20]);
    assert.deepEqual(pickDonation(map, 'a', 100, inUse), range(24, 8));
  });

  it('keeps a spare, gives at least one from two, and nothing for nothing', () => {
    const inUse = new Set(range(0, 30));
    assert.deepEqual(pickDonation(map, 'a', 4, inUse), [31]);
    assert.deepEqual(pickDonation(map, 'a', 4, new Set(range(0, 31))), []);
    assert.deepEqual(pickDonation(map, 'a', 0, new Set()), []);
    assert.deepEqual(pickDonation(map, 'a', NaN, new Set()), []);
    assert.deepEqual(pickDonation(map, 'nobody', 4, new Set()), []);
  });

  it('never gives a block in use or one it does not own, and the result can be granted', () => {
    const inUse = new Set([17, 23, 29]);
    for (let wanted = 1; wanted < 40; wanted++) {
      const blocks = pickDonation(map, 'a', wanted, inUse);
      assert.ok(blocks.length >= 1 && blocks.length <= Math.min(wanted, 14));
      assert.equal(coalesce(map, blocks).length, 1, 'one CIDR');
      for (const b of blocks) assert.ok(!inUse.has(b) && map.entry(b).owner === 'a');
      map.clone().grant('a', blocks, 'c');
    }
  });
});

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

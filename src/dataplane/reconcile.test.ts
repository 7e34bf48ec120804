// The sliced reconcile against a fake kernel (a plain route table): it applies the same diff
// as one synchronous pass, never more than sliceSize requests between two yields, lets the
// event loop run between slices, and still names each peer's failures.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NetlinkError, type NetlinkRequest, type Route, type Rtnetlink } from '../netlink/index.ts';
import type { Peer } from './backend.ts';
import { RTPROT_WEFT } from './plan.ts';
import { reconcilePeers, type PeerReconcileOptions } from './reconcile.ts';

const ETH0 = 2;
const NETWORK = '10.244.0.0/16';

function route(r: Partial<Route> & { dst: string }): Route {
  return { family: 4, scope: r.gateway ? 'universe' : 'link', onlink: false, protocol: RTPROT_WEFT, table: 254, type: 'unicast', flags: 0, ...r };
}

/** host-gw peer i: 10.244.i.0/24 via 192.168.1.(10 + i). */
function peer(i: number): Peer {
  return { id: `peer-${i}`, subnets: [`10.244.${i}.0/24`], publicIp: `192.168.1.${10 + i}`, backendType: 'host-gw', backendData: undefined };
}

/** Only what a host-gw reconcile uses: listRoutes and batchSettled. Requests are applied by their description. */
class FakeKernel {
  routes: Route[] = [route({ dst: '192.168.1.0/24', oif: ETH0, protocol: 2 })];
  batches: number[] = [];
  /** Requests whose description contains this fail with EEXIST-like errors. */
  refuse: string | undefined;

  listRoutes(): Route[] {
    return this.routes.map((r) => ({ ...r }));
  }

  batchSettled(reqs: readonly NetlinkRequest[]): (NetlinkError | undefined)[] {
    this.batches.push(reqs.length);
    return reqs.map((req) => {
      if (this.refuse !== undefined && req.what.includes(this.refuse)) return new NetlinkError(req.what, { errno: 22, message: 'refused by the test' });
      const m = /^(replace|delete) route (\S+)(?: via (\S+))?/.exec(req.what);
      if (!m) throw new Error(`unexpected request ${req.what}`);
      const [, op, dst, gateway] = m;
      this.routes = this.routes.filter((r) => r.dst !== dst);
      if (op === 'replace') this.routes.push(route({ dst: dst as string, gateway: gateway as string, oif: ETH0 }));
      return undefined;
    });
  }
}

function options(sliceSize: number): PeerReconcileOptions {
  return {
    mode: 'host-gw', directRouting: true, network: NETWORK, sliceSize,
    node: { underlayInterface: 'eth0', underlayIndex: ETH0, underlayMtu: 1500, publicIp: '192.168.1.1' },
  };
}

describe('reconcilePeers in slices', () => {
  test('the fake kernel speaks the request descriptions the test relies on', async () => {
    const k = new FakeKernel();
    const report = await reconcilePeers(k as unknown as Rtnetlink, [peer(1)], options(256));
    assert.equal(report.changes, 1);
    assert.deepEqual(k.routes.map((r) => [r.dst, r.gateway]), [['192.168.1.0/24', undefined], ['10.244.1.0/24', '192.168.1.11']]);
  });

  test('at most sliceSize requests between two yields, other callbacks run in between, and the result equals one big pass', async () => {
    const peers = Array.from({ length: 100 }, (_, i) => peer(i + 1));
    const sliced = new FakeKernel();
    let ticks = 0;
    const counter = (): void => {
      ticks++;
      if (running) setImmediate(counter);
    };
    let running = true;
    setImmediate(counter);
    const report = await reconcilePeers(sliced as unknown as Rtnetlink, peers, options(16));
    running = false;
    assert.deepEqual(sliced.batches, [16, 16, 16, 16, 16, 16, 4]);
    assert.ok(ticks >= sliced.batches.length, `the event loop ran between slices (${ticks} turns for ${sliced.batches.length} slices)`);

    const whole = new FakeKernel();
    let wholeTicks = 0;
    setImmediate(() => wholeTicks++);
    const one = await reconcilePeers(whole as unknown as Rtnetlink, peers, options(Infinity));
    assert.equal(wholeTicks, 0, 'Infinity: one synchronous piece, as before slicing');
    assert.deepEqual(whole.batches, [100]);
    assert.deepEqual(sliced.routes, whole.routes);
    assert.deepEqual([report.changes, report.errors], [one.changes, one.errors]);
    assert.deepEqual(report.paths, one.paths);
    assert.equal((await reconcilePeers(sliced as unknown as Rtnetlink, peers, options(16))).changes, 0, 'in sync');
  });

  test('a refused request in a later slice is reported against its peer, and the other slices still apply', async () => {
    const k = new FakeKernel();
    k.refuse = '10.244.40.0/24';
    const peers = Array.from({ length: 50 }, (_, i) => peer(i + 1));
    const report = await reconcilePeers(k as unknown as Rtnetlink, peers, options(8));
    assert.equal(report.changes, 49);
    assert.deepEqual(report.errors.map((e) => [e.peer, e.subnet]), [['peer-40', '10.244.40.0/24']]);
    assert.match(report.errors[0]!.error, /refused by the test/);
    assert.equal(report.paths.get('peer-40'), 'unreachable');
    assert.equal(report.paths.get('peer-41'), 'direct');
  });
});

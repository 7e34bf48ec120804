// The LeaseStore contract (src/lease/store-contract.ts) against the in-memory store, on a fake
// clock: elapse() steps the clock and expires keys, as etcd would.
import { MemoryLeaseStore, type Clock } from './memory-store.ts';
import { leaseStoreContract } from '../store-contract.ts';

class FakeClock implements Clock {
  #now = Date.now();
  now(): number {
    return this.#now;
  }
  advance(ms: number): void {
    this.#now += ms;
  }
}

const clocks = new WeakMap<MemoryLeaseStore, FakeClock>();
const memory = (s: unknown): MemoryLeaseStore => {
  if (!(s instanceof MemoryLeaseStore)) throw new Error('not a MemoryLeaseStore');
  return s;
};

leaseStoreContract({
  name: 'memory',
  shortTtlSeconds: 2,
  eventTimeoutMs: 5000,
  async open(config) {
    const clock = new FakeClock();
    const store = new MemoryLeaseStore({ config: config ?? null, clock });
    clocks.set(store, clock);
    return store;
  },
  async elapse(s, ms) {
    clocks.get(memory(s))?.advance(ms);
    memory(s).expire();
  },
  async forgetHistory(s) {
    memory(s).compact();
  },
  async writeRaw(s, key, value) {
    memory(s).writeRaw(key, value, null);
  },
  async writeForeign(s, key, value, ttlSeconds) {
    memory(s).writeRaw(key, value, ttlSeconds);
  },
});

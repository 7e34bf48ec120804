// Test support for src/lease (not used by the agent).
//   FakeClock: a manual clock with timers. `advance(ms)` moves time forward timer by timer,
//     firing each due timer at its own instant and letting the async work it starts (store
//     calls, watch events on microtasks) settle before moving on, so a test can walk a lease
//     through a day of renewals without sleeping.
//   delegateStore: a LeaseStore that forwards to another, with some methods replaced (lost
//     races, lost watch events).
import { setImmediate as turn } from 'node:timers/promises';
import type { LeaseStore } from './store.ts';
import type { Timers } from './timers.ts';

export function delegateStore(inner: LeaseStore, overrides: Partial<Omit<LeaseStore, 'kind'>> = {}): LeaseStore {
  return {
    kind: inner.kind,
    getConfig: () => inner.getConfig(),
    listLeases: (options) => inner.listLeases(options),
    create: (key, value, ttl) => inner.create(key, value, ttl),
    put: (key, value, ttl) => inner.put(key, value, ttl),
    delete: (key) => inner.delete(key),
    watchLeases: (after, handlers) => inner.watchLeases(after, handlers),
    close: () => inner.close(),
    ...overrides,
  };
}

interface Pending { at: number; seq: number; fn: () => void }

export class FakeClock implements Timers {
  #now: number;
  #seq = 0;
  readonly #pending = new Map<number, Pending>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const seq = ++this.#seq;
    this.#pending.set(seq, { at: this.#now + Math.max(0, ms), seq, fn });
    return seq;
  }

  clearTimeout(handle: unknown): void {
    this.#pending.delete(handle as number);
  }

  /** Timers not yet fired, for assertions ("nothing is scheduled"). */
  get pendingTimers(): number {
    return this.#pending.size;
  }

  /** Lets promise chains and queued microtasks run to completion (no time passes). */
  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await turn();
  }

  /** Moves time forward by ms, firing due timers in order, each at its own time. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await this.settle();
    for (;;) {
      let next: Pending | undefined;
      for (const p of this.#pending.values()) {
        if (p.at <= end && (!next || p.at < next.at || (p.at === next.at && p.seq < next.seq))) next = p;
      }
      if (!next) break;
      this.#pending.delete(next.seq);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
      await this.settle();
    }
    this.#now = end;
    await this.settle();
  }
}

// Time as the lease code sees it: a clock (the same `now()` the memory store's TTLs run on)
// plus one-shot timers. Injected everywhere so that tests drive a 24 h lease with a fake
// clock (src/lease/fake-clock.ts) instead of waiting.
import type { Clock } from './memory/memory-store.ts';

export interface Timers extends Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Node's setTimeout overflows above 2^31-1 ms (about 24.8 days) and fires at once; clamp. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS)),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** A cancellable wait on injected timers: resolves true after ms, or false once cancelled. */
export function delay(timers: Timers, ms: number): { done: Promise<boolean>; cancel(): void } {
  let resolveFn: (fired: boolean) => void = () => undefined;
  const done = new Promise<boolean>((resolve) => { resolveFn = resolve; });
  const handle = timers.setTimeout(() => resolveFn(true), Math.min(Math.max(0, ms), MAX_TIMER_MS));
  return { done, cancel: () => { timers.clearTimeout(handle); resolveFn(false); } };
}

// Log lines that outside parties can trigger at will (a refused caller, a malformed request,
// a bad etcd value) must not let them fill the disk: the first occurrence of each key is logged,
// repeats within the window are only counted, and when the window has passed one summary line
// says how many were suppressed. A quiet key costs nothing: its entry is gone after the window.
import type { Logger } from './logger.ts';

export type Clock = () => number;

type Level = 'error' | 'warn' | 'info';

interface Window {
  level: Level;
  msg: string;
  /** The latest suppressed occurrence's fields, for the summary. */
  obj: object;
  startedAt: number;
  suppressed: number;
}

/** Keys tracked at once; further keys share one entry, so a caller choosing keys from input cannot grow the map. */
const DEFAULT_MAX_KEYS = 1000;
const OVERFLOW_KEY = '(other keys)';

export class LogThrottle {
  readonly #log: Logger;
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #maxKeys: number;
  readonly #windows = new Map<string, Window>();
  #timer: NodeJS.Timeout | undefined;

  /** clock: milliseconds, Date.now by default; tests pass a fake one and call flush(). */
  constructor(log: Logger, windowMs: number, clock: Clock = Date.now, options: { maxKeys?: number } = {}) {
    this.#log = log;
    this.#windowMs = windowMs;
    this.#clock = clock;
    this.#maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
  }

  warn(key: string, obj: object, msg: string): void {
    this.#emit('warn', key, obj, msg);
  }

  error(key: string, obj: object, msg: string): void {
    this.#emit('error', key, obj, msg);
  }

  info(key: string, obj: object, msg: string): void {
    this.#emit('info', key, obj, msg);
  }

  /** Logs the summary of every window that has ended, and forgets those keys. The timer calls this. */
  flush(): void {
    const now = this.#clock();
    for (const [key, w] of this.#windows) {
      if (now - w.startedAt < this.#windowMs) continue;
      this.#summarize(w);
      this.#windows.delete(key);
    }
    this.#schedule();
  }

  /** Logs every pending summary now, ended windows or not, and stops the timer (on shutdown). */
  close(): void {
    for (const w of this.#windows.values()) this.#summarize(w);
    this.#windows.clear();
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #emit(level: Level, key: string, obj: object, msg: string): void {
    const now = this.#clock();
    const tracked = this.#windows.has(key) || this.#windows.size < this.#maxKeys ? key : OVERFLOW_KEY;
    const w = this.#windows.get(tracked);
    if (w && now - w.startedAt < this.#windowMs) {
      w.suppressed++;
      w.obj = obj;
      w.level = level;
      w.msg = msg;
      return;
    }
    if (w) this.#summarize(w);
    this.#log[level](obj, msg);
    this.#windows.set(tracked, { level, msg, obj, startedAt: now, suppressed: 0 });
    this.#schedule();
  }

  #summarize(w: Window): void {
    if (w.suppressed === 0) return;
    const seconds = Math.round(this.#windowMs / 1000);
    this.#log[w.level]({ ...w.obj, repeated: w.suppressed }, `${w.msg} (repeated ${w.suppressed} times in the last ${seconds}s)`);
  }

  /** One timer for all keys, at the earliest window end; unref'd so it never keeps the process up. */
  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    let earliest = Infinity;
    for (const w of this.#windows.values()) earliest = Math.min(earliest, w.startedAt + this.#windowMs);
    if (earliest === Infinity) return;
    this.#timer = setTimeout(() => this.flush(), Math.max(0, earliest - this.#clock())).unref();
  }
}

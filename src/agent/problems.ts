// What went wrong, one entry per distinct problem. The same rejected peer seen on every
// reconcile must not push a lease revocation out of a short list: a problem is keyed (by what
// it is about and why), and seeing it again only moves its last-seen time and bumps its count.
// The log is bounded: past `capacity`, the entry seen longest ago goes first.

export interface Problem {
  /** What the problem is about, stable across repeats: "peer subnets/10.1.2.0-24", "subnet.env". */
  key: string;
  message: string;
  firstSeen: string;
  lastSeen: string;
  count: number;
  /** Kept for `weft status` readers of the old format: the same as lastSeen. */
  at: string;
}

export class ProblemLog {
  readonly #entries = new Map<string, Problem>();
  readonly #capacity: number;
  readonly #now: () => number;

  constructor(capacity = 50, now: () => number = Date.now) {
    this.#capacity = capacity;
    this.#now = now;
  }

  /** Records a problem; true when it is new (the caller logs it then, and only then). */
  note(key: string, message: string): boolean {
    const at = new Date(this.#now()).toISOString();
    const id = `${key}\n${message}`;
    const seen = this.#entries.get(id);
    if (seen) {
      seen.lastSeen = at;
      seen.at = at;
      seen.count++;
      // Re-insert, so the Map's order stays "least recently seen first".
      this.#entries.delete(id);
      this.#entries.set(id, seen);
      return false;
    }
    this.#entries.set(id, { key, message, firstSeen: at, lastSeen: at, at, count: 1 });
    while (this.#entries.size > this.#capacity) this.#entries.delete(this.#entries.keys().next().value as string);
    return true;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Most recently seen first. */
  list(): Problem[] {
    return [...this.#entries.values()].reverse().map((p) => ({ ...p }));
  }
}

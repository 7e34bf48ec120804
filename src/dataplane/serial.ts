// One backend's kernel work, one pass at a time. A reconcile yields to the event loop between
// slices (reconcile.ts), so without this a second call could start while the first is half
// applied, and two diffs computed from the same snapshot would fight. Reconciles coalesce: a
// call made while one is running waits for ONE more pass, run with the newest peers once the
// current pass is done; every call made meanwhile shares that pass and its report. Other work
// (teardown) queues behind whatever is running or waiting.

interface PendingPass<P, R> {
  peers: P;
  readonly promise: Promise<R>;
}

export class SerialWork {
  /** The end of the queue: resolves (never rejects) when everything queued so far is done. */
  #tail: Promise<unknown> = Promise.resolve();
  /** A reconcile queued but not started yet: later calls update its peers and share it. */
  #pending: PendingPass<unknown, unknown> | undefined;

  /**
   * Runs pass(peers) after everything queued before it, or joins the pass already waiting to
   * start (which then runs with these, newer, peers). Resolves with the report of a pass that
   * started after this call and used these peers or newer ones.
   */
  reconcile<P, R>(peers: P, pass: (peers: P) => Promise<R>): Promise<R> {
    const waiting = this.#pending as PendingPass<P, R> | undefined;
    if (waiting) {
      waiting.peers = peers;
      return waiting.promise;
    }
    const slot: { peers: P; promise?: Promise<R> } = { peers };
    slot.promise = this.#enqueue(() => {
      if (this.#pending === slot) this.#pending = undefined;
      return pass(slot.peers);
    });
    this.#pending = slot as PendingPass<unknown, unknown>;
    return slot.promise;
  }

  /**
   * Runs work after everything queued before it (whether that succeeded or failed). A reconcile
   * called after this waits for it: it does not join a pass queued before.
   */
  exclusive<R>(work: () => R | Promise<R>): Promise<R> {
    this.#pending = undefined;
    return this.#enqueue(work);
  }

  #enqueue<R>(work: () => R | Promise<R>): Promise<R> {
    const run = this.#tail.then(work);
    this.#tail = run.then(() => undefined, () => undefined);
    return run;
  }
}

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

/**
 * The order of kernel work on one netlink socket. Backends that share a kernel share it, so
 * that during a live backend switch the new backend's passes run after the old one's, never
 * interleaved with them (both would diff weft's routes from different snapshots).
 */
export class KernelQueue {
  /** The end of the queue: resolves (never rejects) when everything queued so far is done. */
  #tail: Promise<unknown> = Promise.resolve();

  enqueue<R>(work: () => R | Promise<R>): Promise<R> {
    const run = this.#tail.then(work);
    this.#tail = run.then(() => undefined, () => undefined);
    return run;
  }
}

const queues = new WeakMap<object, KernelQueue>();

/** The queue of the kernel behind `socket` (an Rtnetlink, say): one per socket. */
export function kernelQueue(socket: object): KernelQueue {
  let q = queues.get(socket);
  if (!q) {
    q = new KernelQueue();
    queues.set(socket, q);
  }
  return q;
}

export class SerialWork {
  readonly #queue: KernelQueue;
  /** A reconcile queued but not started yet: later calls update its peers and share it. */
  #pending: PendingPass<unknown, unknown> | undefined;

  /** `queue`: shared with the other backends on the same kernel (kernelQueue); a queue of its own by default. */
  constructor(queue: KernelQueue = new KernelQueue()) {
    this.#queue = queue;
  }

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
    return this.#queue.enqueue(work);
  }
}

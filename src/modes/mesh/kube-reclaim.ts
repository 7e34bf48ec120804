// Reclaiming a deleted Node's address blocks, by exactly one peer. Level-triggered: every pass
// diffs the peer records (Leases) against the Nodes, so a missed delete event or a restart in
// the middle changes nothing. Per dead record:
// 1. Confirm with the API that its Node (name + uid) is really gone, or (for a record of this
//    very Node under another peer name) that the node was rebuilt.
// 2. Become its reclaimer: a PUT with the resourceVersion just read, setting our name. A 409
//    means someone else wrote first; re-read and look again. The claim is renewed by the same
//    CAS before every rmpeer attempt, so rmpeer only ever runs right after a won write.
// 3. rmpeer (the mesh refuses while the peer still looks alive: retry until it succeeds).
// 4. Delete the record with a resourceVersion precondition.
// A claim held by a peer that is itself gone (its Node or its own record deleted) is taken over,
// but only after the record has not changed for staleAfterMs by our own clock: a live reclaimer
// renews it far more often, so two peers never both think they hold it.
import { createHash } from 'node:crypto';
import type { Logger } from '../../log/logger.ts';
import { ANNOTATION, NO_RECLAIMER, parsePeerRecord, recordName, withAnnotations, type KubePeersApi, type PeerRecordLease } from './kube-objects.ts';

export type RmpeerOutcome = { done: true; addresses: number } | { done: false; reason: string };

export interface ReclaimerOptions {
  api: Pick<KubePeersApi, 'getNode' | 'getLease' | 'replaceLease' | 'deleteLease'>;
  namespace: string;
  self: { peer: string; node: string };
  /** This node's Node uid while it exists: a peer whose own Node is gone reclaims nothing. */
  selfNodeUid(): string | undefined;
  rmpeer(peer: string): RmpeerOutcome;
  log: Logger;
  /** Between rmpeer attempts (and API retries). */
  retryMs?: number;
  /** A gone reclaimer's claim is taken over once the record stayed unchanged this long. */
  staleAfterMs?: number;
  /** Peers ranked lower for a dead peer wait this much per rank before claiming (fewer lost races). */
  rankDelayMs?: number;
  onReclaimed?(r: { peer: string; node: string; addresses: number }): void;
}

export interface ReclaimTask {
  record: string;
  peer: string;
  node: string;
  state: string;
  since: string;
}

export interface ClusterView {
  /** Node name → uid. */
  nodes: ReadonlyMap<string, string>;
  /** Peer records by peer name. */
  records: ReadonlyMap<string, PeerRecordLease>;
}

type Step = 'again' | 'end';

export class Reclaimer {
  readonly #o: ReclaimerOptions;
  readonly #retryMs: number;
  readonly #staleAfterMs: number;
  readonly #tasks = new Map<string, ReclaimTask>();
  readonly #running = new Set<Promise<void>>();
  readonly #sleepers = new Set<() => void>();
  #stopped = false;
  #reclaimed = 0;
  #addresses = 0;
  #view: ClusterView = { nodes: new Map(), records: new Map() };

  constructor(o: ReclaimerOptions) {
    this.#o = o;
    this.#retryMs = o.retryMs ?? 5000;
    this.#staleAfterMs = o.staleAfterMs ?? Math.max(60_000, 6 * this.#retryMs);
  }

  get reclaimed(): number {
    return this.#reclaimed;
  }

  get addresses(): number {
    return this.#addresses;
  }

  tasks(): ReclaimTask[] {
    return [...this.#tasks.values()].map((t) => ({ ...t }));
  }

  /** Starts a reclaim for every record that looks dead in this view (each one is confirmed against the API first). */
  reconcile(view: ClusterView): void {
    this.#view = view;
    if (this.#stopped || !this.#o.selfNodeUid()) return;
    for (const r of view.records.values()) {
      if (r.peer === this.#o.self.peer || this.#tasks.has(r.name) || !this.#looksDead(r)) continue;
      if (r.reclaimer && r.reclaimer.peer !== this.#o.self.peer && this.#looksAlive(r.reclaimer)) continue;
      this.#spawn(r);
    }
  }

  #looksDead(r: PeerRecordLease): boolean {
    if (r.node === this.#o.self.node) return true;
    return this.#view.nodes.get(r.node) !== r.nodeUid;
  }

  #looksAlive(reclaimer: NonNullable<PeerRecordLease['reclaimer']>): boolean {
    return this.#view.nodes.get(reclaimer.node) === reclaimer.nodeUid && this.#view.records.has(reclaimer.peer);
  }

  #spawn(r: PeerRecordLease): void {
    const task: ReclaimTask = { record: r.name, peer: r.peer, node: r.node, state: 'checking', since: new Date().toISOString() };
    this.#tasks.set(r.name, task);
    const run = this.#run(task).catch((e: Error) => {
      this.#o.log.error({ peer: r.peer, err: e.message }, `reclaiming mesh peer ${r.peer} failed: ${e.message}`);
    }).finally(() => {
      this.#tasks.delete(r.name);
      this.#running.delete(run);
    });
    this.#running.add(run);
  }

  async #run(task: ReclaimTask): Promise<void> {
    const delay = this.#rankDelay(task.peer);
    if (delay > 0) {
      task.state = 'waiting for peers ranked higher for it to claim it first';
      await this.#sleep(delay);
      // Usually someone has claimed it by now, and the cache already says so: no request at all.
      const cached = this.#view.records.get(task.peer);
      if (!cached || (cached.reclaimer && cached.reclaimer.peer !== this.#o.self.peer && this.#looksAlive(cached.reclaimer))) return;
    }
    const stale = { rv: '', since: 0 };
    while (!this.#stopped) {
      let step: Step;
      try {
        step = await this.#attempt(task, stale);
      } catch (e) {
        task.state = `kubernetes API: ${(e as Error).message}`;
        step = 'again';
      }
      if (step === 'end') return;
      await this.#sleep(this.#retryMs);
    }
  }

  /** Peers that sort first for this dead peer try at once; the others later, and by then usually see the claim. */
  #rankDelay(deadPeer: string): number {
    const step = this.#o.rankDelayMs ?? 1000;
    if (step <= 0) return 0;
    const live = [...this.#view.records.values()].filter((r) => this.#view.nodes.get(r.node) === r.nodeUid).map((r) => r.peer);
    if (!live.includes(this.#o.self.peer)) live.push(this.#o.self.peer);
    const score = (p: string): string => createHash('sha256').update(`${deadPeer}|${p}`).digest('hex');
    const rank = live.sort((a, b) => (score(a) < score(b) ? -1 : 1)).indexOf(this.#o.self.peer);
    return rank === 0 ? 0 : Math.min(rank, 16) * step + Math.random() * step;
  }

  async #attempt(task: ReclaimTask, stale: { rv: string; since: number }): Promise<Step> {
    const { api, namespace, self } = this.#o;
    const lease = await api.getLease(namespace, task.record);
    if (!lease) return 'end';
    const r = parsePeerRecord(lease);
    if ('error' in r) {
      this.#o.log.warn({ record: task.record, reason: r.error }, `mesh peer record ${task.record} is not reclaimed: ${r.error}`);
      return 'end';
    }
    if (!(await this.#confirmedDead(r))) {
      if (r.reclaimer?.peer === self.peer) await api.replaceLease(namespace, withAnnotations(r.lease, NO_RECLAIMER));
      return 'end';
    }
    const myUid = this.#o.selfNodeUid();
    if (!myUid) return 'end';
    if (r.reclaimer && r.reclaimer.peer !== self.peer) {
      if (!(await this.#reclaimerGone(r.reclaimer))) return 'end';
      if (stale.rv !== r.resourceVersion) {
        stale.rv = r.resourceVersion;
        stale.since = Date.now();
      }
      const waited = Date.now() - stale.since;
      if (waited < this.#staleAfterMs) {
        task.state = `its reclaimer ${r.reclaimer.peer} is gone; taking over in ${Math.ceil((this.#staleAfterMs - waited) / 1000)} s unless it renews`;
        return 'again';
      }
      this.#o.log.warn({ peer: r.peer, reclaimer: r.reclaimer.peer }, `taking over the reclaim of mesh peer ${r.peer} from ${r.reclaimer.peer}, whose node is gone`);
    }
    const now = new Date().toISOString();
    const claim = withAnnotations(r.lease, {
      [ANNOTATION.reclaimer]: self.peer, [ANNOTATION.reclaimerNode]: self.node, [ANNOTATION.reclaimerNodeUid]: myUid,
      [ANNOTATION.reclaimStarted]: r.reclaimer?.peer === self.peer && r.reclaimer.started ? r.reclaimer.started : now, [ANNOTATION.reclaimRenewed]: now,
    });
    if (this.#stopped) return 'end'; // a stopped agent neither claims nor moves blocks
    const claimed = await api.replaceLease(namespace, claim);
    if (this.#stopped) return 'end';
    if (claimed === 'conflict') {
      task.state = 'lost a race for the claim; looking again';
      return 'again';
    }
    // Right after a won write, with no await in between: nobody else can be past step 2 now.
    const outcome = this.#o.rmpeer(r.peer);
    if (!outcome.done) {
      task.state = `claimed; rmpeer not yet possible: ${outcome.reason}`;
      return 'again';
    }
    this.#reclaimed++;
    this.#addresses += outcome.addresses;
    this.#o.log.warn({ peer: r.peer, node: r.node, addresses: outcome.addresses }, `reclaimed mesh peer ${r.peer} of deleted node ${r.node}: ${outcome.addresses} addresses taken over`);
    this.#o.onReclaimed?.({ peer: r.peer, node: r.node, addresses: outcome.addresses });
    task.state = 'reclaimed; deleting its record';
    await this.#deleteRecord(task, claimed.metadata?.resourceVersion ?? '');
    return 'end';
  }

  /** The record's Node (name + uid) is not there, or this Node now runs another peer (it was rebuilt). */
  async #confirmedDead(r: PeerRecordLease): Promise<boolean> {
    if (r.node === this.#o.self.node) return r.peer !== this.#o.self.peer;
    const node = await this.#o.api.getNode(r.node);
    return node?.metadata?.uid !== r.nodeUid;
  }

  async #reclaimerGone(c: NonNullable<PeerRecordLease['reclaimer']>): Promise<boolean> {
    const node = await this.#o.api.getNode(c.node);
    if (node?.metadata?.uid !== c.nodeUid) return true;
    return (await this.#o.api.getLease(this.#o.namespace, recordName(c.peer))) === null;
  }

  async #deleteRecord(task: ReclaimTask, resourceVersion: string): Promise<void> {
    const { api, namespace, self } = this.#o;
    let rv = resourceVersion;
    while (!this.#stopped) {
      try {
        const result = await api.deleteLease(namespace, task.record, { resourceVersion: rv });
        if (result !== 'conflict') return;
        const lease = await api.getLease(namespace, task.record);
        if (!lease) return;
        const r = parsePeerRecord(lease);
        // Someone wrote it after our claim: its peer came back (it refreshed its record), or the claim was taken over.
        if ('error' in r || r.reclaimer?.peer !== self.peer || !(await this.#confirmedDead(r))) return;
        rv = r.resourceVersion;
      } catch (e) {
        task.state = `reclaimed; deleting its record: kubernetes API: ${(e as Error).message}`;
        await this.#sleep(this.#retryMs);
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#sleepers.add(done);
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const wake of [...this.#sleepers]) wake();
    await Promise.all([...this.#running]);
  }
}

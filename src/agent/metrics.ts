// The agent's Prometheus metrics, served at /metrics on the health listener. One private
// registry per agent (never prom-client's global one, so tests and several runtimes in one
// process don't collide), and no default process collectors beyond what an operator needs:
// each collector costs memory and CPU on every scrape.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PHASES, type Phase } from './readiness.ts';
import type { FastPathStatus } from '../fastpath/manager.ts';

export interface IpamUsage {
  used: number;
  free: number;
}

export interface AgentMetricsOptions {
  version: string;
  mode: string;
  /** Read at scrape time: the node's address usage, if there is an IPAM to ask. */
  ipamUsage?: () => IpamUsage | undefined;
  /** The control plane's own metrics (mesh: peers, connections, gossip bytes, blocks), read at scrape time. */
  modeMetrics?: readonly ModeMetric[];
  /** The eBPF fast path's state and counters (--fast-path ebpf), read at scrape time. */
  fastPath?: () => FastPathStatus;
}

/** One metric a mode reports; a counter's value is its running total. */
export interface ModeMetric {
  name: string;
  help: string;
  kind: 'gauge' | 'counter';
  read(): number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly #ready: Gauge;
  readonly #phase: Gauge;
  readonly #leaseExpiry: Gauge;
  readonly #peers: Gauge;
  readonly #rejected: Gauge;
  readonly #reconcileSeconds: Histogram;
  readonly #reconcileChanges: Counter;
  readonly #reconcileErrors: Counter;
  readonly #cniRequests: Counter;
  readonly #cniSeconds: Histogram;
  readonly #storeErrors: Counter;
  readonly #problems: Gauge;
  readonly #loop: ReturnType<typeof monitorEventLoopDelay>;

  constructor(o: AgentMetricsOptions) {
    const registers = [this.registry];
    new Gauge({ name: 'weft_build_info', help: 'weft version and mode; always 1', labelNames: ['version', 'mode', 'nodejs'], registers })
      .set({ version: o.version, mode: o.mode, nodejs: process.version }, 1);
    this.#ready = new Gauge({ name: 'weft_ready', help: '1 when this node can start pods and reach its peers', registers });
    this.#phase = new Gauge({ name: 'weft_phase', help: 'the agent phase: 1 for the current one', labelNames: ['phase'], registers });
    this.#leaseExpiry = new Gauge({ name: 'weft_lease_expiry_timestamp_seconds', help: "when this node's pod range lease expires unless renewed (0: never)", registers });
    this.#peers = new Gauge({ name: 'weft_peers', help: 'peers by how traffic reaches them', labelNames: ['path'], registers });
    this.#rejected = new Gauge({ name: 'weft_rejected_peers', help: 'peer announcements refused as invalid (see weft status for why)', registers });
    this.#reconcileSeconds = new Histogram({
      name: 'weft_reconcile_duration_seconds', help: 'time of one data plane reconcile', registers,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    });
    this.#reconcileChanges = new Counter({ name: 'weft_reconcile_changes_total', help: 'kernel changes made by data plane reconciles', registers });
    this.#reconcileErrors = new Counter({ name: 'weft_reconcile_errors_total', help: 'data plane reconciles that failed as a whole', registers });
    this.#cniRequests = new Counter({ name: 'weft_cni_requests_total', help: 'CNI requests served, by verb and result', labelNames: ['verb', 'result'], registers });
    this.#cniSeconds = new Histogram({
      name: 'weft_cni_request_duration_seconds', help: 'time to serve one CNI request', labelNames: ['verb'], registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    });
    this.#storeErrors = new Counter({ name: 'weft_store_errors_total', help: 'control plane store errors, by what failed', labelNames: ['what'], registers });
    this.#problems = new Gauge({ name: 'weft_problems', help: 'distinct problems in the status problem log', registers });
    const usage = o.ipamUsage;
    new Gauge({
      name: 'weft_ipam_addresses', help: "pod addresses in this node's range, by state", labelNames: ['state'], registers,
      collect() {
        const u = usage?.();
        if (!u) return;
        this.set({ state: 'used' }, u.used);
        this.set({ state: 'free' }, u.free);
      },
    });
    for (const m of o.modeMetrics ?? []) {
      if (m.kind === 'gauge') new Gauge({ name: m.name, help: m.help, registers, collect() { this.set(m.read()); } });
      else {
        new Counter({
          name: m.name, help: m.help, registers,
          collect() {
            this.reset();
            this.inc(m.read());
          },
        });
      }
    }
    const fastPath = o.fastPath;
    if (fastPath) {
      new Gauge({ name: 'weft_fast_path_active', help: '1 while the eBPF fast path runs; 0 when it fell back to the normal path (weft status says why)', registers, collect() { this.set(fastPath().active ? 1 : 0); } });
      new Counter({
        name: 'weft_fast_path_packets_total', help: "packets the fast path's programs judged, by outcome (redirects, and why others went to the stack)", labelNames: ['outcome'], registers,
        collect() {
          this.reset();
          for (const [outcome, n] of Object.entries(fastPath().stats ?? {})) this.inc({ outcome }, n);
        },
      });
    }
    // The event loop's delay: netlink is synchronous on this thread, so a big reconcile shows here
    // first (and in CNI latency). Max since start, and the p99, in seconds.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    this.#loop = loop;
    new Gauge({
      name: 'weft_event_loop_delay_seconds', help: "the event loop's delay since start: max and p99", labelNames: ['quantile'], registers,
      collect() {
        this.set({ quantile: 'max' }, loop.max / 1e9);
        this.set({ quantile: '0.99' }, loop.percentile(99) / 1e9);
      },
    });
    this.#peers.set({ path: 'direct' }, 0);
    this.#phase.set({ phase: 'starting' }, 1);
  }

  readiness(phase: Phase, ready: boolean): void {
    for (const p of PHASES) this.#phase.set({ phase: p }, p === phase ? 1 : 0);
    this.#ready.set(ready ? 1 : 0);
  }

  leaseExpiry(expiresAt: number | null): void {
    this.#leaseExpiry.set(expiresAt === null ? 0 : expiresAt / 1000);
  }

  peers(byPath: ReadonlyMap<string, number>, rejected: number): void {
    this.#peers.reset();
    for (const [path, n] of byPath) this.#peers.set({ path }, n);
    this.#rejected.set(rejected);
  }

  reconciled(seconds: number, changes: number): void {
    this.#reconcileSeconds.observe(seconds);
    this.#reconcileChanges.inc(changes);
  }

  reconcileFailed(): void {
    this.#reconcileErrors.inc();
  }

  cniRequest(verb: string, result: 'ok' | 'error', seconds: number): void {
    this.#cniRequests.inc({ verb, result });
    this.#cniSeconds.observe({ verb }, seconds);
  }

  storeError(what: string): void {
    this.#storeErrors.inc({ what });
  }

  problems(n: number): void {
    this.#problems.set(n);
  }

  /** The worst event-loop delay since start, in milliseconds. */
  eventLoopMaxMs(): number {
    return this.#loop.max / 1e6;
  }

  /** Stops the event-loop sampling (the agent's stop). */
  close(): void {
    this.#loop.disable();
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

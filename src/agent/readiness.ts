// Whether this node can start pods and reach its peers, and if not, why. Until the node is
// first programmed the answer is its start-up phase (waiting for the store, for the config,
// acquiring its pod range, programming); after that it is "ready" while no condition fails and
// "degraded" while any does (lease expired or lost, subnet.env missing, peers unreachable,
// config changed and a restart is needed...). Every failing condition carries its reason, so
// status, /readyz, the metrics and the log all tell the same story.

export type StartupPhase = 'starting' | 'waiting-for-store' | 'waiting-for-config' | 'acquiring-lease' | 'programming';
export type Phase = StartupPhase | 'ready' | 'degraded';

export const PHASES: readonly Phase[] = ['starting', 'waiting-for-store', 'waiting-for-config', 'acquiring-lease', 'programming', 'ready', 'degraded'];

export interface ReadinessView {
  phase: Phase;
  ready: boolean;
  /** Why not ready: the start-up phase's reason, or each failing condition's; empty when ready. */
  reasons: string[];
  /** What the operator should know that does not stop pods (the fast path fell back to the normal path). */
  notes?: string[];
}

export class Readiness {
  #startup: StartupPhase | undefined = 'starting';
  #startupReason = 'the agent is starting';
  readonly #failing = new Map<string, string>();
  readonly #notes = new Map<string, string>();
  readonly #onChange: (view: ReadinessView) => void;

  constructor(onChange: (view: ReadinessView) => void = () => undefined) {
    this.#onChange = onChange;
  }

  /** A start-up step; ignored once the node has been programmed. */
  phase(phase: StartupPhase, reason: string): void {
    if (this.#startup === undefined || (this.#startup === phase && this.#startupReason === reason)) return;
    this.#startup = phase;
    this.#startupReason = reason;
    this.#onChange(this.view());
  }

  /** The node was programmed once: from now on readiness follows the conditions. */
  programmed(): void {
    if (this.#startup === undefined) return;
    this.#startup = undefined;
    this.#onChange(this.view());
  }

  /** Marks a condition failing; true when this is news (a new condition or a new reason). */
  fail(condition: string, reason: string): boolean {
    if (this.#failing.get(condition) === reason) return false;
    this.#failing.set(condition, reason);
    this.#onChange(this.view());
    return true;
  }

  /** Marks a condition good again; true when it was failing. */
  clear(condition: string): boolean {
    if (!this.#failing.delete(condition)) return false;
    this.#onChange(this.view());
    return true;
  }

  /** Sets a condition from a reason (failing) or undefined (good). */
  set(condition: string, reason: string | undefined): boolean {
    return reason === undefined ? this.clear(condition) : this.fail(condition, reason);
  }

  /** A note (or undefined to drop it): shown with the readiness, never failing it. */
  note(key: string, text: string | undefined): void {
    if (this.#notes.get(key) === text) return;
    if (text === undefined) this.#notes.delete(key);
    else this.#notes.set(key, text);
    this.#onChange(this.view());
  }

  failing(condition: string): string | undefined {
    return this.#failing.get(condition);
  }

  view(): ReadinessView {
    const notes = this.#notes.size > 0 ? { notes: [...this.#notes.values()] } : {};
    if (this.#startup !== undefined) {
      return { phase: this.#startup, ready: false, reasons: [this.#startupReason, ...this.#failing.values()], ...notes };
    }
    const reasons = [...this.#failing.values()];
    return { phase: reasons.length === 0 ? 'ready' : 'degraded', ready: reasons.length === 0, reasons, ...notes };
  }
}

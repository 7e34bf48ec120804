// What one bench:dataplane run collects: every node↔node figure with the pod↔pod figure measured
// right before or after it on the same pair, per round, keyed by variant, pair and test.
import { median } from './common.ts';
import type { FastPathEvidence } from './fastpath.ts';
import type { PairKind, VariantName } from './labs.ts';
import type { Latency, PacketRate, Throughput } from './measure.ts';

export interface Paired<T> { round: number; load: number; node: T; pod: T }

export const key = (v: VariantName, pair: PairKind, streams?: number): string => `${v}|${pair}${streams === undefined ? '' : `|${streams}`}`;

export class Results {
  readonly tcp = new Map<string, Paired<Throughput>[]>();
  readonly udp = new Map<string, Paired<PacketRate>[]>();
  readonly latency = new Map<string, Paired<Latency>[]>();
  /** tweak|variant|pair, 1 stream. */
  readonly investigation = new Map<string, Paired<Throughput>[]>();
  readonly fastPath = new Map<VariantName, FastPathEvidence>();
  readonly packetSizes: string[] = [];
  /** `ip -d link show flannel.1` per VXLAN variant, with the per-node parts (MAC, local address) masked. */
  readonly vxlanDevices = new Map<VariantName, string>();
  readonly problems: string[] = [];
}

export const push = <T>(m: Map<string, T[]>, k: string, x: T): void => void (m.get(k) ?? m.set(k, []).get(k)!).push(x);

export const tcpRatio = (s: Paired<Throughput>): number => s.pod.gbps / s.node.gbps;
export const udpRatio = (s: Paired<PacketRate>): number => s.pod.rxPps / s.node.rxPps;
/** µs the pod path adds to the one-way median latency. */
export const addedUs = (s: Paired<Latency>): number => s.pod.p50 - s.node.p50;
export const addedP99Us = (s: Paired<Latency>): number => s.pod.p99 - s.node.p99;

/** Median of the per-round figure, NaN when nothing was measured. */
export const medianOf = <T>(xs: readonly T[] | undefined, f: (x: T) => number): number => (xs && xs.length > 0 ? median(xs.map(f)) : NaN);

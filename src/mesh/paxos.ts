// The first seeding of the address ring: single-decree Paxos whose messages are the electors'
// own records (each elector writes only its promise and accepted value; gossip carries them).
// The value decided is the set of electors the winning proposer had heard from; the ring is then
// a pure function of it (BlockMap.seed), so everyone who learns the value builds the same ring.
// Safety needs a fixed quorum: IPALLOC_INIT consensus=N gives N, and the quorum is N/2+1, so
// two quorums always share an elector and two rings can only form when N is set differently.
// Pure: no clock, no I/O; the node decides when to propose.
import { compareBallots, sameBallot, type Ballot, type PaxosState, type PeerRecord } from './record.ts';

export function quorumOf(initialPeers: number): number {
  return Math.floor(initialPeers / 2) + 1;
}

function electors(records: Iterable<PeerRecord>): PeerRecord[] {
  return [...records].filter((r) => r.elector && r.paxos && !r.left);
}

export function highestRound(records: Iterable<PeerRecord>): number {
  let max = 0;
  for (const r of electors(records)) {
    max = Math.max(max, r.paxos!.promise?.round ?? 0, r.paxos!.accepted?.ballot.round ?? 0);
  }
  return max;
}

/** A new proposal: a round above every round seen. */
export function propose(own: PaxosState, self: string, records: Iterable<PeerRecord>): PaxosState {
  return { ...own, promise: { round: highestRound(records) + 1, proposer: self } };
}

/**
 * The change this elector makes to its own Paxos state after seeing the records (its own
 * record among them), or null when there is none. Acceptor: promise the highest ballot seen;
 * accept a value proposed under the ballot it promised. Proposer: once a quorum promised its
 * ballot, accept (and so propose) the highest-ballot value accepted among them, or else the
 * electors it has heard from.
 */
export function paxosStep(own: PaxosState, self: string, records: Iterable<PeerRecord>, quorum: number): PaxosState | null {
  const all = electors(records);
  let promise = own.promise;
  for (const r of all) if (compareBallots(r.paxos!.promise, promise) > 0) promise = r.paxos!.promise;
  let accepted = own.accepted;
  if (promise && !sameBallot(accepted?.ballot, promise)) {
    const offer = all.find((r) => sameBallot(r.paxos!.accepted?.ballot, promise));
    if (offer) accepted = { ballot: promise, value: [...offer.paxos!.accepted!.value] };
    else if (promise.proposer === self) accepted = proposal(promise, all, quorum) ?? accepted;
  }
  if (promise === own.promise && accepted === own.accepted) return null;
  return { promise, accepted };
}

function proposal(ballot: Ballot, all: PeerRecord[], quorum: number): PaxosState['accepted'] {
  const promised = all.filter((r) => sameBallot(r.paxos!.promise, ballot));
  if (promised.length < quorum) return null;
  let best: PaxosState['accepted'] = null;
  for (const r of promised) {
    const a = r.paxos!.accepted;
    if (a && (!best || compareBallots(a.ballot, best.ballot) > 0)) best = a;
  }
  const value = best ? best.value : all.map((r) => r.name);
  return { ballot, value: [...new Set(value)].sort() };
}

/** The decided value, once a quorum accepted one ballot; null before. */
export function chosenValue(records: Iterable<PeerRecord>, quorum: number): string[] | null {
  const counts = new Map<string, { n: number; value: string[] }>();
  for (const r of electors(records)) {
    const a = r.paxos!.accepted;
    if (!a) continue;
    const key = `${a.ballot.round}/${a.ballot.proposer}`;
    const c = counts.get(key) ?? { n: 0, value: a.value };
    c.n++;
    counts.set(key, c);
    if (c.n >= quorum) return [...new Set(c.value)].sort();
  }
  return null;
}

/** Electors heard from (self included), for the status: "heard from K of Q needed". */
export function electorsHeard(records: Iterable<PeerRecord>): string[] {
  return electors(records).map((r) => r.name).sort();
}

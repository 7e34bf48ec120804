import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chosenValue, paxosStep, propose, quorumOf } from './paxos.ts';
import type { PaxosState, PeerRecord } from './record.ts';

function record(name: string, paxos: PaxosState, elector = true): PeerRecord {
  return {
    name, uid: '0123456789abcdef', nickname: name, incarnation: 1, seq: 1, addr: '10.0.0.1:6783', publicIp: '10.0.0.1',
    backendType: 'vxlan', backendData: null, ring: null, elector, paxos, owned: 0, free: 0, wants: 0, left: false, heartbeat: 0,
  };
}

/** A tiny deterministic PRNG, so a failing schedule can be replayed from its seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('the quorum is a strict majority of the initial peers', () => {
  assert.deepEqual([1, 2, 3, 4, 5].map(quorumOf), [1, 2, 2, 3, 3]);
});

test('one proposer and three acceptors choose the proposer\'s heard set', () => {
  const names = ['a', 'b', 'c'];
  const states = new Map<string, PaxosState>(names.map((n) => [n, { promise: null, accepted: null }]));
  states.set('a', propose(states.get('a')!, 'a', []));
  for (let round = 0; round < 5; round++) {
    const records = names.map((n) => record(n, states.get(n)!));
    for (const n of names) {
      const next = paxosStep(states.get(n)!, n, records, 2);
      if (next) states.set(n, next);
    }
  }
  assert.deepEqual(chosenValue(names.map((n) => record(n, states.get(n)!)), 2), ['a', 'b', 'c']);
});

test('without a quorum nothing is chosen', () => {
  const a = propose({ promise: null, accepted: null }, 'a', []);
  const records = [record('a', a)];
  const next = paxosStep(a, 'a', records, 2);
  assert.equal(next?.accepted ?? null, null);
  assert.equal(chosenValue(records, 2), null);
});

test('an observer record never counts as an elector', () => {
  const a = { promise: { round: 1, proposer: 'a' }, accepted: { ballot: { round: 1, proposer: 'a' }, value: ['a'] } };
  assert.equal(chosenValue([record('a', a), record('b', a, false)], 2), null);
});

// Safety under any schedule: electors see random, partial and stale views of each other (a
// partition, message loss and delay), several propose at random times, and at no step may two
// different values be chosen, by anyone's view.
test('property: random schedules never choose two values', () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rand = prng(seed);
    const n = 3 + Math.floor(rand() * 4);
    const quorum = quorumOf(n);
    const names = Array.from({ length: n }, (_, i) => `p${i}`);
    const states = new Map<string, PaxosState>(names.map((x) => [x, { promise: null, accepted: null }]));
    // What each peer last heard of each other peer (stale copies).
    const views = new Map<string, Map<string, PaxosState>>(names.map((x) => [x, new Map()]));
    const chosen = new Set<string>();
    for (let step = 0; step < 200; step++) {
      const who = names[Math.floor(rand() * n)]!;
      const view = views.get(who)!;
      // Hear a random subset of the others' current states.
      for (const other of names) if (other !== who && rand() < 0.4) view.set(other, states.get(other)!);
      const records = [record(who, states.get(who)!), ...[...view].map(([x, s]) => record(x, s))];
      let next = paxosStep(states.get(who)!, who, records, quorum);
      if (!next && rand() < 0.1) next = propose(states.get(who)!, who, records);
      if (next) states.set(who, next);
      for (const observer of names) {
        const seen = [record(observer, states.get(observer)!), ...[...views.get(observer)!].map(([x, s]) => record(x, s))];
        const v = chosenValue(seen, quorum);
        if (v) chosen.add(v.join(','));
      }
      const global = chosenValue(names.map((x) => record(x, states.get(x)!)), quorum);
      if (global) chosen.add(global.join(','));
      assert.ok(chosen.size <= 1, `seed ${seed}: two values chosen: ${[...chosen].join(' | ')}`);
    }
  }
});

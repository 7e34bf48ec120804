import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { CipherState, keyPairFromPrivate, NnPsk2Handshake, NoiseError } from './noise.ts';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

// The public "cacophony" test vector for this exact protocol name (fixed ephemerals, one PSK):
// handshake messages 1-2, then transport messages alternating initiator, responder with empty AD.
const VECTOR = {
  prologue: '4a6f686e2047616c74',
  psk: '54686973206973206d7920417573747269616e20706572737065637469766521',
  initEphemeral: '893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a',
  respEphemeral: 'bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b',
  handshakeHash: 'bb9704f2303bd8b98b40fdb2ee50c2a9a46d7d20ea4d0949ae3094e376b29b1c',
  messages: [
    ['4c756477696720766f6e204d69736573', 'ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944d44698de33ea6b7eea8023b48a284404489f9976c5f03417e8e2d6db7ab6bb9f'],
    ['4d757272617920526f746862617264', '95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884361200acbacd001a0d19a826982488f52573687652551ca5e903db095fedc7a'],
    ['462e20412e20486179656b', '5ac8678baf0ef0cf884ab3271236b7ee57a02519505f4a4be09b95'],
    ['4361726c204d656e676572', 'fe899e844ac0d348a3ab679b83c95fd1099f734a0dc085955adce2'],
    ['4a65616e2d426170746973746520536179', 'f8800be62325c8bd6794f7e533bb90316c6ba569a4223e644175f4e5e458e840fd'],
    ['457567656e2042f6686d20766f6e2042617765726b', '2f60885aedcd5b5c142a3190208b540407ab4477528ea8d15bd795416575e58121098a4a9f'],
  ] as const,
};

test('NNpsk2 matches the public test vector byte for byte (handshake, hash, transport)', () => {
  const prologue = hex(VECTOR.prologue);
  const psk = hex(VECTOR.psk);
  const init = NnPsk2Handshake.initiator(prologue, psk, keyPairFromPrivate(hex(VECTOR.initEphemeral)));
  const resp = NnPsk2Handshake.responder(prologue, psk, keyPairFromPrivate(hex(VECTOR.respEphemeral)));
  const [m1, m2, ...transport] = VECTOR.messages;

  const c1 = init.writeMessage(hex(m1[0]));
  assert.equal(c1.toString('hex'), m1[1]);
  assert.equal(resp.readMessage(c1).toString('hex'), m1[0]);
  const c2 = resp.writeMessage(hex(m2[0]));
  assert.equal(c2.toString('hex'), m2[1]);
  assert.equal(init.readMessage(c2).toString('hex'), m2[0]);

  assert.equal(init.handshakeHash.toString('hex'), VECTOR.handshakeHash);
  assert.equal(resp.handshakeHash.toString('hex'), VECTOR.handshakeHash);

  const i = init.split();
  const r = resp.split();
  transport.forEach(([payload, ciphertext], n) => {
    const [tx, rx] = n % 2 === 0 ? [i.send, r.receive] : [r.send, i.receive];
    const sealed = tx.seal(Buffer.alloc(0), hex(payload));
    assert.equal(sealed.toString('hex'), ciphertext);
    assert.equal(rx.open(Buffer.alloc(0), sealed)?.toString('hex'), payload);
  });
});

function handshake(pskI: Buffer, pskR: Buffer, prologueI = Buffer.from('p'), prologueR = prologueI) {
  const init = NnPsk2Handshake.initiator(prologueI, pskI);
  const resp = NnPsk2Handshake.responder(prologueR, pskR);
  resp.readMessage(init.writeMessage());
  const m2 = resp.writeMessage();
  return { init, resp, m2 };
}

test('random keys: both ends agree on the hash, and each direction has its own key', () => {
  const psk = randomBytes(32);
  const { init, resp, m2 } = handshake(psk, psk);
  init.readMessage(m2);
  assert.ok(init.complete && resp.complete);
  assert.deepEqual(init.handshakeHash, resp.handshakeHash);
  const i = init.split();
  const r = resp.split();
  const ad = Buffer.from('hdr');
  const a = i.send.seal(ad, Buffer.from('to responder'));
  assert.equal(r.receive.open(ad, a)?.toString(), 'to responder');
  const b = r.send.seal(ad, Buffer.from('to initiator'));
  assert.equal(i.receive.open(ad, b)?.toString(), 'to initiator');
  // The initiator's send key is not its receive key: its own frame does not open in reverse.
  assert.equal(i.receive.clone().open(ad, i.send.clone().seal(ad, Buffer.from('x'))), null);
});

test('a different PSK fails message 2; a different prologue already fails message 1', () => {
  const { init, m2 } = handshake(randomBytes(32), randomBytes(32));
  assert.throws(() => init.readMessage(m2), (e: unknown) => e instanceof NoiseError && e.kind === 'auth');
  const psk = randomBytes(32);
  const init2 = NnPsk2Handshake.initiator(Buffer.from('hello A'), psk);
  const resp2 = NnPsk2Handshake.responder(Buffer.from('hello B'), psk);
  assert.throws(() => resp2.readMessage(init2.writeMessage()), (e: unknown) => e instanceof NoiseError && e.kind === 'auth');
});

test('a clone can try an alternative without spoiling the original', () => {
  const psk = randomBytes(32);
  const { init, m2 } = handshake(psk, psk);
  const bad = Buffer.from(m2);
  bad[bad.length - 1]! ^= 1;
  assert.throws(() => init.clone().readMessage(bad), NoiseError);
  init.readMessage(m2);
  assert.ok(init.complete);
});

test('a low-order ephemeral key is refused, not turned into a zero secret', () => {
  const init = NnPsk2Handshake.initiator(Buffer.alloc(0), randomBytes(32));
  init.writeMessage();
  const zeroKey = Buffer.concat([Buffer.alloc(32), randomBytes(16)]);
  assert.throws(() => init.readMessage(zeroKey), (e: unknown) => e instanceof NoiseError && e.kind === 'dh');
});

test('transport counters are strict: a replayed, reordered or modified frame does not open', () => {
  const psk = randomBytes(32);
  const { init, resp, m2 } = handshake(psk, psk);
  init.readMessage(m2);
  const tx = init.split().send;
  const rx = resp.split().receive;
  const ad = Buffer.alloc(5);
  const f0 = tx.seal(ad, Buffer.from('zero'));
  const f1 = tx.seal(ad, Buffer.from('one'));
  assert.equal(rx.clone().open(ad, f1), null, 'reordered');
  assert.equal(rx.open(ad, f0)?.toString(), 'zero');
  assert.equal(rx.clone().open(ad, f0), null, 'replayed');
  const modified = Buffer.from(f1);
  modified[0]! ^= 0x80;
  assert.equal(rx.clone().open(ad, modified), null, 'modified');
  assert.equal(rx.clone().open(Buffer.alloc(5, 1), f1), null, 'other AD');
  assert.equal(rx.open(ad, f1)?.toString(), 'one');
  assert.equal(rx.nonce, 2);
  assert.equal(new CipherState().seal(ad, Buffer.from('plain')).toString(), 'plain');
});

// Noise_NNpsk2_25519_ChaChaPoly_SHA256, written against node:crypto only (no dependency).
//
// Why this pattern: neither side has a long-term key (peers are identified by name, which the
// mesh already checks), so NN; the shared password enters as a PSK only after the ephemeral DH
// (psk2), so a passive recording of a handshake gives nothing to test password guesses against.
// Only an active attacker who completes message 1 gets one verifier per PSK, the unavoidable
// cost of a password scheme without a PAKE; the slow scrypt in psk.ts is what prices each guess.
//
// Message 1 (initiator): e, plus an empty payload sealed under a key that mixes only e (PSK
// mode mixes every e into the key). Message 2 (responder): e, ee, psk, plus an empty sealed
// payload. Split() then gives one CipherState per direction. A wrong PSK shows up as a tag
// failure when the initiator reads message 2.
//
// The handshake object is deliberately small and clonable: the channel layer runs one state
// per candidate PSK (rotation) from the same ephemeral key, and the initiator tries a clone per
// candidate it is offered. Each such state is plain NNpsk2, so the public test vectors apply.
import {
  createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman,
  generateKeyPairSync, hkdfSync, type KeyObject,
} from 'node:crypto';

export const NOISE_PROTOCOL_NAME = 'Noise_NNpsk2_25519_ChaChaPoly_SHA256';
export const DH_LEN = 32;
export const TAG_LEN = 16;
export const PSK_LEN = 32;
const HASH_LEN = 32;
/** Counters stay in the exact-integer range of a JS number; a channel never gets near it. */
const MAX_NONCE = Number.MAX_SAFE_INTEGER;

// DER wrappers that turn raw 32-byte X25519 keys into what node:crypto imports.
const SPKI_X25519_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

export type NoiseFailure = 'short' | 'dh' | 'auth' | 'state';

export class NoiseError extends Error {
  readonly kind: NoiseFailure;
  constructor(kind: NoiseFailure, message: string) {
    super(message);
    this.name = 'NoiseError';
    this.kind = kind;
  }
}

/** ChaCha20-Poly1305 nonce: 4 zero bytes, then the 64-bit counter little-endian. */
function nonceFor(n: number): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt32LE(n % 0x1_0000_0000, 4);
  iv.writeUInt32LE(Math.floor(n / 0x1_0000_0000), 8);
  return iv;
}

export function aeadSeal(key: Buffer, n: number, ad: Uint8Array, plaintext: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonceFor(n), { authTagLength: TAG_LEN });
  c.setAAD(ad, { plaintextLength: plaintext.length });
  const head = c.update(plaintext);
  const tail = c.final();
  return Buffer.concat([head, tail, c.getAuthTag()]);
}

/** The plaintext, or null when the tag does not verify. */
export function aeadOpen(key: Buffer, n: number, ad: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < TAG_LEN) return null;
  const body = sealed.subarray(0, sealed.length - TAG_LEN);
  const d = createDecipheriv('chacha20-poly1305', key, nonceFor(n), { authTagLength: TAG_LEN });
  d.setAAD(ad, { plaintextLength: body.length });
  d.setAuthTag(sealed.subarray(sealed.length - TAG_LEN));
  const head = d.update(body);
  try {
    return Buffer.concat([head, d.final()]);
  } catch {
    return null;
  }
}

/** One direction's key and strictly increasing counter. A failed open is fatal to the channel. */
export class CipherState {
  #key: Buffer | null;
  #n = 0;

  constructor(key: Buffer | null = null) {
    this.#key = key;
  }

  get hasKey(): boolean {
    return this.#key !== null;
  }

  /** How many messages this state has sealed or opened. */
  get nonce(): number {
    return this.#n;
  }

  seal(ad: Uint8Array, plaintext: Uint8Array): Buffer {
    if (!this.#key) return Buffer.from(plaintext);
    if (this.#n >= MAX_NONCE) throw new NoiseError('state', 'nonce space exhausted');
    return aeadSeal(this.#key, this.#n++, ad, plaintext);
  }

  /** null = authentication failed; the counter does not move then. */
  open(ad: Uint8Array, sealed: Uint8Array): Buffer | null {
    if (!this.#key) return Buffer.from(sealed);
    if (this.#n >= MAX_NONCE) return null;
    const plain = aeadOpen(this.#key, this.#n, ad, sealed);
    if (plain) this.#n++;
    return plain;
  }

  clone(): CipherState {
    const c = new CipherState(this.#key);
    c.#n = this.#n;
    return c;
  }
}

function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Noise's HKDF(ck, ikm) is RFC 5869 with salt = ck and empty info; hkdfSync returns an ArrayBuffer. */
function hkdf(ck: Buffer, ikm: Uint8Array, outputs: 2 | 3): Buffer[] {
  const out = Buffer.from(hkdfSync('sha256', ikm, ck, Buffer.alloc(0), HASH_LEN * outputs));
  return Array.from({ length: outputs }, (_, i) => out.subarray(i * HASH_LEN, (i + 1) * HASH_LEN));
}

export interface KeyPair {
  privateKey: KeyObject;
  publicKey: Buffer;
}

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey, publicKey: rawPublicKey(publicKey) };
}

/** A key pair from a raw 32-byte private key (test vectors, and sharing one e across PSK candidates). */
export function keyPairFromPrivate(raw: Uint8Array): KeyPair {
  if (raw.length !== DH_LEN) throw new NoiseError('state', `an X25519 private key is ${DH_LEN} bytes`);
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) };
}

function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (typeof jwk.x !== 'string') throw new NoiseError('state', 'X25519 public key export has no x');
  return Buffer.from(jwk.x, 'base64url');
}

function dh(own: KeyObject, remote: Buffer): Buffer {
  try {
    const publicKey = createPublicKey({ key: Buffer.concat([SPKI_X25519_PREFIX, remote]), format: 'der', type: 'spki' });
    return diffieHellman({ privateKey: own, publicKey });
  } catch {
    // OpenSSL refuses low-order points (an all-zero shared secret): a hostile or broken peer.
    throw new NoiseError('dh', 'the peer sent an unusable ephemeral key');
  }
}

export interface TransportKeys {
  send: CipherState;
  receive: CipherState;
  /** Equal on both ends after a successful handshake; usable for channel binding. */
  handshakeHash: Buffer;
}

/** Which side we play, and where we are in the two-message pattern. */
type Step = 'write1' | 'read1' | 'write2' | 'read2' | 'done';

export class NnPsk2Handshake {
  readonly initiator: boolean;
  #ck: Buffer;
  #h: Buffer;
  #cipher: CipherState;
  #e: KeyPair;
  #re: Buffer | null = null;
  readonly #psk: Buffer;
  #step: Step;

  private constructor(initiator: boolean, prologue: Uint8Array, psk: Uint8Array, e: KeyPair | undefined) {
    if (psk.length !== PSK_LEN) throw new NoiseError('state', `a PSK is ${PSK_LEN} bytes`);
    this.initiator = initiator;
    const name = Buffer.from(NOISE_PROTOCOL_NAME);
    this.#h = name.length <= HASH_LEN ? Buffer.concat([name, Buffer.alloc(HASH_LEN - name.length)]) : sha256(name);
    this.#ck = this.#h;
    this.#cipher = new CipherState();
    this.#mixHash(prologue);
    this.#e = e ?? generateKeyPair();
    this.#psk = Buffer.from(psk);
    this.#step = initiator ? 'write1' : 'read1';
  }

  static initiator(prologue: Uint8Array, psk: Uint8Array, ephemeral?: KeyPair): NnPsk2Handshake {
    return new NnPsk2Handshake(true, prologue, psk, ephemeral);
  }

  static responder(prologue: Uint8Array, psk: Uint8Array, ephemeral?: KeyPair): NnPsk2Handshake {
    return new NnPsk2Handshake(false, prologue, psk, ephemeral);
  }

  get ephemeralPublicKey(): Buffer {
    return this.#e.publicKey;
  }

  get handshakeHash(): Buffer {
    return this.#h;
  }

  get complete(): boolean {
    return this.#step === 'done';
  }

  /** -> e (initiator) or <- e, ee, psk (responder), then the sealed payload. */
  writeMessage(payload: Uint8Array = Buffer.alloc(0)): Buffer {
    if (this.#step !== 'write1' && this.#step !== 'write2') throw new NoiseError('state', `cannot write in step ${this.#step}`);
    const e = this.#e.publicKey;
    this.#mixHash(e);
    this.#mixKey(e);
    if (this.#step === 'write2') {
      this.#mixKey(dh(this.#e.privateKey, this.#need(this.#re)));
      this.#mixKeyAndHash(this.#psk);
    }
    const sealed = this.#encryptAndHash(payload);
    this.#step = this.#step === 'write1' ? 'read2' : 'done';
    return Buffer.concat([e, sealed]);
  }

  /** The payload; throws NoiseError ('short', 'dh', 'auth'). A failed read leaves this state unusable: clone first to try alternatives. */
  readMessage(message: Uint8Array): Buffer {
    if (this.#step !== 'read1' && this.#step !== 'read2') throw new NoiseError('state', `cannot read in step ${this.#step}`);
    if (message.length < DH_LEN + TAG_LEN) throw new NoiseError('short', `a handshake message is at least ${DH_LEN + TAG_LEN} bytes`);
    const step = this.#step;
    this.#step = 'done'; // poisoned until the read succeeds
    const re = Buffer.from(message.subarray(0, DH_LEN));
    this.#re = re;
    this.#mixHash(re);
    this.#mixKey(re);
    if (step === 'read2') {
      this.#mixKey(dh(this.#e.privateKey, re));
      this.#mixKeyAndHash(this.#psk);
    }
    const payload = this.#decryptAndHash(message.subarray(DH_LEN));
    if (!payload) throw new NoiseError('auth', 'handshake message failed authentication');
    this.#step = step === 'read1' ? 'write2' : 'done';
    return payload;
  }

  /** The per-direction keys; only after both messages. */
  split(): TransportKeys {
    if (this.#step !== 'done' || this.#re === null) throw new NoiseError('state', 'the handshake is not complete');
    const [k1, k2] = hkdf(this.#ck, Buffer.alloc(0), 2) as [Buffer, Buffer];
    const toResponder = new CipherState(Buffer.from(k1));
    const toInitiator = new CipherState(Buffer.from(k2));
    return this.initiator
      ? { send: toResponder, receive: toInitiator, handshakeHash: this.#h }
      : { send: toInitiator, receive: toResponder, handshakeHash: this.#h };
  }

  clone(): NnPsk2Handshake {
    // Built through the constructor (private fields need it), then every field is overwritten.
    const copy = new NnPsk2Handshake(this.initiator, Buffer.alloc(0), this.#psk, this.#e);
    copy.#ck = this.#ck;
    copy.#h = this.#h;
    copy.#cipher = this.#cipher.clone();
    copy.#re = this.#re;
    copy.#step = this.#step;
    return copy;
  }

  #need(re: Buffer | null): Buffer {
    if (!re) throw new NoiseError('state', 'no remote ephemeral key yet');
    return re;
  }

  #mixHash(data: Uint8Array): void {
    this.#h = sha256(this.#h, data);
  }

  #mixKey(ikm: Uint8Array): void {
    const [ck, k] = hkdf(this.#ck, ikm, 2) as [Buffer, Buffer];
    this.#ck = ck;
    this.#cipher = new CipherState(k);
  }

  #mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, h, k] = hkdf(this.#ck, ikm, 3) as [Buffer, Buffer, Buffer];
    this.#ck = ck;
    this.#mixHash(h);
    this.#cipher = new CipherState(k);
  }

  #encryptAndHash(plaintext: Uint8Array): Buffer {
    const sealed = this.#cipher.seal(this.#h, plaintext);
    this.#mixHash(sealed);
    return sealed;
  }

  #decryptAndHash(sealed: Uint8Array): Buffer | null {
    const plain = this.#cipher.open(this.#h, sealed);
    if (plain) this.#mixHash(sealed);
    return plain;
  }
}

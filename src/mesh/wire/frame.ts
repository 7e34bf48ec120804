// Frames on a mesh TCP connection:
//
//   offset 0  uint32 big-endian  body length (bytes after this 5-byte header)
//   offset 4  uint8              frame type (FRAME below)
//   offset 5  body
//
// Cleartext frames (hello, refuse, noise) carry their body as is. Sealed frames (identity,
// message, keepalive, bye) carry ChaCha20-Poly1305 ciphertext + 16-byte tag when the mesh has a
// password, with the 5-byte header as associated data, so a changed length or type fails the
// tag like a changed body; without a password they carry the plaintext.
//
// The decoder asks its owner about every header before it keeps a single body byte: the type
// must be one the current phase expects and the length within the current bound (4 KiB until
// the handshake is done). A bad header therefore costs nothing, and no length prefix can make us
// allocate or buffer more than the bound.
export const FRAME_HEADER_BYTES = 5;
/** The bound on a frame body until the channel is established. */
export const PRE_AUTH_MAX_FRAME_BYTES = 4096;

export const FRAME = {
  hello: 1,
  refuse: 2,
  noise: 3,
  identity: 4,
  message: 5,
  keepalive: 6,
  bye: 7,
} as const;
export type FrameType = (typeof FRAME)[keyof typeof FRAME];

const NAMES = new Map<number, string>(Object.entries(FRAME).map(([name, n]) => [n, name]));

export function frameTypeName(type: number): string {
  return NAMES.get(type) ?? `unknown type ${type}`;
}

export function frameHeader(type: FrameType, bodyLength: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  h.writeUInt32BE(bodyLength, 0);
  h.writeUInt8(type, 4);
  return h;
}

export function encodeFrame(type: FrameType, body: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(type, body.length), body]);
}

export interface FrameSink {
  /** Throw (the owner's error type) to refuse a header; nothing of its body is kept then. */
  checkHeader(type: number, length: number): void;
  /** `header` is the 5 header bytes. Return false to stop decoding (the connection is closing). */
  onFrame(type: number, body: Buffer, header: Buffer): boolean;
}

export class FrameDecoder {
  readonly #sink: FrameSink;
  readonly #header = Buffer.alloc(FRAME_HEADER_BYTES);
  #headerHave = 0;
  #body: Buffer | null = null;
  #bodyHave = 0;
  #stopped = false;

  constructor(sink: FrameSink) {
    this.#sink = sink;
  }

  /** Bytes of an incomplete frame held right now (0 between frames). */
  get partial(): number {
    return this.#headerHave + this.#bodyHave;
  }

  /** Expected size of the frame in progress, for messages about truncation. */
  get expected(): number {
    return this.#body ? FRAME_HEADER_BYTES + this.#body.length : FRAME_HEADER_BYTES;
  }

  stop(): void {
    this.#stopped = true;
  }

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.#stopped) {
      if (this.#body === null) {
        // Fast path: a whole frame inside this chunk needs no copy at all.
        if (this.#headerHave === 0 && chunk.length - i >= FRAME_HEADER_BYTES) {
          const length = chunk.readUInt32BE(i);
          const type = chunk[i + 4]!;
          this.#sink.checkHeader(type, length);
          const end = i + FRAME_HEADER_BYTES + length;
          if (end <= chunk.length) {
            const header = chunk.subarray(i, i + FRAME_HEADER_BYTES);
            i = end;
            if (!this.#sink.onFrame(type, chunk.subarray(end - length, end), header)) this.#stopped = true;
            continue;
          }
          chunk.copy(this.#header, 0, i, i + FRAME_HEADER_BYTES);
          this.#headerHave = FRAME_HEADER_BYTES;
          i += FRAME_HEADER_BYTES;
          this.#startBody(length);
          continue;
        }
        const take = Math.min(FRAME_HEADER_BYTES - this.#headerHave, chunk.length - i);
        chunk.copy(this.#header, this.#headerHave, i, i + take);
        this.#headerHave += take;
        i += take;
        if (this.#headerHave < FRAME_HEADER_BYTES) break;
        const length = this.#header.readUInt32BE(0);
        this.#sink.checkHeader(this.#header[4]!, length);
        this.#startBody(length);
        continue;
      }
      const body = this.#body;
      const take = Math.min(body.length - this.#bodyHave, chunk.length - i);
      chunk.copy(body, this.#bodyHave, i, i + take);
      this.#bodyHave += take;
      i += take;
      if (this.#bodyHave === body.length) this.#finish();
    }
  }

  /** Called only after checkHeader accepted `length`, so this allocation is bounded. */
  #startBody(length: number): void {
    this.#body = Buffer.allocUnsafe(length);
    this.#bodyHave = 0;
    if (length === 0) this.#finish();
  }

  #finish(): void {
    const body = this.#body!;
    const header = Buffer.from(this.#header);
    this.#body = null;
    this.#bodyHave = 0;
    this.#headerHave = 0;
    if (!this.#sink.onFrame(header[4]!, body, header)) this.#stopped = true;
  }
}

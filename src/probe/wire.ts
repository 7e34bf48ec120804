// The little protocol between the probes and `weft probe serve`.
//
// UDP: the datagram is a nonce (1-64 hex digits); the answer is {"nonce","seen"} as JSON, seen
// being the source address the responder saw. (The lab's outside host speaks the same.)
// TCP: the client sends the line "weft-probe <nonce> <bytes>\n" and then <bytes> of payload;
// the responder answers {"nonce","seen"} as one JSON line and the same payload back, then
// closes. A payload larger than one segment makes full-size packets cross the path both ways,
// so an overlay MTU that is too large shows as a failed TCP probe, not only as slow transfers.
import { randomBytes } from 'node:crypto';

export const NONCE_RE = /^[0-9a-f]{1,64}$/;
export const TCP_HEADER_RE = /^weft-probe ([0-9a-f]{1,64}) (\d{1,6})$/;
export const MAX_TCP_PAYLOAD = 64 * 1024;
export const MAX_HEADER_BYTES = 128;
/** Large enough to need several full-size segments on any usual MTU. */
export const DEFAULT_TCP_PAYLOAD = 4096;

export function newNonce(): string {
  return randomBytes(8).toString('hex');
}

export function payloadFor(nonce: string, bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) out[i] = nonce.charCodeAt(i % nonce.length) ^ (i & 0x3f);
  return out;
}

/** The responder's answer, if `text` is one for `nonce`. */
export function parseAnswer(text: string, nonce: string): { seen: string } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const a = v as { nonce?: unknown; seen?: unknown };
  return a.nonce === nonce && typeof a.seen === 'string' && a.seen.length <= 64 ? { seen: a.seen } : undefined;
}

export function answer(nonce: string, seen: string): string {
  return JSON.stringify({ nonce, seen });
}

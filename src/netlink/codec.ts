// Netlink wire format: message headers (struct nlmsghdr), attributes (struct nlattr, the same
// layout as rtattr) with nesting, and NLMSG_ERROR / NLMSG_DONE payloads. Everything is in the
// host's byte order except where an attribute says otherwise (e.g. IFLA_VXLAN_PORT), and every
// header and attribute starts on a 4-byte boundary.
//
// Decoding never trusts a length field: anything that would read past the end of what the
// kernel sent throws WEFT_DECODE naming the offset, instead of reading garbage or crashing.
import { endianness } from 'node:os';
import { WeftError } from '../errors.ts';
import {
  NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK, NLMSG_HDRLEN, NLMSGERR_LEN, NLM_F_ACK_TLVS, NLM_F_CAPPED,
  NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS, NLMSGERR_ATTR_MISS_TYPE,
} from './constants.ts';

const LE = endianness() === 'LE';

/** Rounds up to the next multiple of 4 (NLMSG_ALIGN / NLA_ALIGN). */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

function decodeError(what: string): WeftError {
  return new WeftError('WEFT_DECODE', `netlink: ${what}`);
}

/**
 * Builds netlink messages into one growable buffer. A socket keeps one writer and reuses it for
 * every request, so the hot path does not allocate a send buffer per call.
 */
export class NlWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialSize = 8192) {
    this.buf = Buffer.alloc(initialSize);
  }

  reset(): void {
    this.pos = 0;
  }

  /** The bytes written so far (a view, valid until the next write). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  private reserve(n: number): number {
    const at = this.pos;
    if (at + n > this.buf.length) {
      const bigger = Buffer.alloc(Math.max(this.buf.length * 2, at + n));
      this.buf.copy(bigger, 0, 0, at);
      this.buf = bigger;
    }
    this.pos = at + n;
    return at;
  }

  /** Pads with zeros up to the next 4-byte boundary. */
  pad(): void {
    const end = align4(this.pos);
    if (end > this.pos) {
      const at = this.reserve(end - this.pos);
      this.buf.fill(0, at, end);
    }
  }

  // Always reserve() before touching this.buf: reserve() may replace the buffer, and in
  // `this.buf[this.reserve(1)] = v` the old buffer would already have been picked.
  u8(v: number): void {
    const at = this.reserve(1);
    this.buf[at] = v;
  }

  u16(v: number): void {
    const at = this.reserve(2);
    if (LE) this.buf.writeUInt16LE(v, at); else this.buf.writeUInt16BE(v, at);
  }

  u32(v: number): void {
    const at = this.reserve(4);
    if (LE) this.buf.writeUInt32LE(v >>> 0, at); else this.buf.writeUInt32BE(v >>> 0, at);
  }

  i32(v: number): void {
    const at = this.reserve(4);
    if (LE) this.buf.writeInt32LE(v, at); else this.buf.writeInt32BE(v, at);
  }

  raw(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length);
    this.buf.set(bytes, at);
  }

  /** Starts a message; returns its offset for endMessage(). */
  beginMessage(type: number, flags: number, seq: number, pid = 0): number {
    this.pad();
    const start = this.pos;
    this.u32(0); // length, patched by endMessage
    this.u16(type);
    this.u16(flags);
    this.u32(seq);
    this.u32(pid);
    return start;
  }

  endMessage(start: number): void {
    this.pad();
    this.patchU32(start, this.pos - start);
  }

  private patchU32(at: number, v: number): void {
    if (LE) this.buf.writeUInt32LE(v, at); else this.buf.writeUInt32BE(v, at);
  }

  private attrHeader(type: number, payloadLen: number): void {
    this.pad();
    this.u16(NLA_HDRLEN + payloadLen);
    this.u16(type);
  }

  attrU8(type: number, v: number): void { this.attrHeader(type, 1); this.u8(v); this.pad(); }
  attrU16(type: number, v: number): void { this.attrHeader(type, 2); this.u16(v); this.pad(); }
  attrU32(type: number, v: number): void { this.attrHeader(type, 4); this.u32(v); }
  attrI32(type: number, v: number): void { this.attrHeader(type, 4); this.i32(v); }

  /** A 16-bit value in network byte order (ports). */
  attrBe16(type: number, v: number): void {
    this.attrHeader(type, 2);
    const at = this.reserve(2);
    this.buf.writeUInt16BE(v, at);
    this.pad();
  }

  attrBytes(type: number, v: Uint8Array): void {
    this.attrHeader(type, v.length);
    this.raw(v);
    this.pad();
  }

  /** A NUL-terminated string (NLA_NUL_STRING / NLA_STRING both accept this). */
  attrString(type: number, v: string): void {
    const len = Buffer.byteLength(v);
    this.attrHeader(type, len + 1);
    const at = this.reserve(len + 1);
    this.buf.write(v, at, 'utf8');
    this.buf[at + len] = 0;
    this.pad();
  }

  /** A flag attribute: present means true. */
  attrFlag(type: number): void {
    this.attrHeader(type, 0);
  }

  /** Starts a nested attribute (NLA_F_NESTED set); returns its offset for endNest(). */
  beginNest(type: number): number {
    this.pad();
    const start = this.pos;
    this.u16(0);
    this.u16(type | NLA_F_NESTED);
    return start;
  }

  endNest(start: number): void {
    this.pad();
    const len = this.pos - start;
    if (len > 0xffff) throw new WeftError('WEFT_INTERNAL', `netlink: nested attribute of ${len} bytes exceeds 65535`);
    if (LE) this.buf.writeUInt16LE(len, start); else this.buf.writeUInt16BE(len, start);
  }
}

// --- decoding ----------------------------------------------------------------------------

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The payload after the header: a view into the receive buffer unless copied. */
  data: Buffer;
}

export function readU16(b: Buffer, at: number): number {
  return LE ? b.readUInt16LE(at) : b.readUInt16BE(at);
}
export function readU32(b: Buffer, at: number): number {
  return LE ? b.readUInt32LE(at) : b.readUInt32BE(at);
}
export function readI32(b: Buffer, at: number): number {
  return LE ? b.readInt32LE(at) : b.readInt32BE(at);
}

/** Splits a datagram into messages; throws WEFT_DECODE on a header that overruns the data. */
export function parseMessages(buf: Buffer, length = buf.length): NlMessage[] {
  const out: NlMessage[] = [];
  let at = 0;
  while (at < length) {
    if (length - at < NLMSG_HDRLEN) {
      throw decodeError(`truncated message header at offset ${at}: ${length - at} bytes left, need ${NLMSG_HDRLEN}`);
    }
    const len = readU32(buf, at);
    if (len < NLMSG_HDRLEN || len > length - at) {
      throw decodeError(`bad message length ${len} at offset ${at} (${length - at} bytes left)`);
    }
    out.push({
      type: readU16(buf, at + 4),
      flags: readU16(buf, at + 6),
      seq: readU32(buf, at + 8),
      pid: readU32(buf, at + 12),
      data: buf.subarray(at + NLMSG_HDRLEN, at + len),
    });
    at += align4(len);
  }
  return out;
}

/** Attributes by type (flag bits masked off); when a type repeats, the last one wins. */
export type Attrs = Map<number, Buffer>;

/** Calls fn for each attribute in buf[start, end); throws WEFT_DECODE when one overruns. */
export function forEachAttr(buf: Buffer, start: number, fn: (type: number, value: Buffer) => void, end = buf.length): void {
  let at = start;
  while (end - at >= NLA_HDRLEN) {
    const len = readU16(buf, at);
    if (len < NLA_HDRLEN || len > end - at) {
      throw decodeError(`bad attribute length ${len} at offset ${at} (${end - at} bytes left)`);
    }
    fn(readU16(buf, at + 2) & NLA_TYPE_MASK, buf.subarray(at + NLA_HDRLEN, at + len));
    at += align4(len);
  }
}

export function parseAttrs(buf: Buffer, start = 0, end = buf.length): Attrs {
  const attrs: Attrs = new Map();
  forEachAttr(buf, start, (type, value) => attrs.set(type, value), end);
  return attrs;
}

function need(value: Buffer, n: number, kind: string): void {
  if (value.length < n) throw decodeError(`attribute too short for ${kind}: ${value.length} bytes`);
}

export function attrU8(v: Buffer): number { need(v, 1, 'u8'); return v[0] as number; }
export function attrU16(v: Buffer): number { need(v, 2, 'u16'); return readU16(v, 0); }
export function attrU32(v: Buffer): number { need(v, 4, 'u32'); return readU32(v, 0); }
export function attrI32(v: Buffer): number { need(v, 4, 's32'); return readI32(v, 0); }
export function attrBe16(v: Buffer): number { need(v, 2, 'be16'); return v.readUInt16BE(0); }

/** A string attribute, up to its NUL terminator. */
export function attrString(v: Buffer): string {
  const nul = v.indexOf(0);
  return v.toString('utf8', 0, nul < 0 ? v.length : nul);
}

/** Decodes a fixed-size family header (ifinfomsg, rtmsg...) or throws WEFT_DECODE. */
export function requireLength(msg: NlMessage, n: number, what: string): void {
  if (msg.data.length < n) throw decodeError(`${what} message too short: ${msg.data.length} bytes, need ${n}`);
}

// --- NLMSG_ERROR / NLMSG_DONE ------------------------------------------------------------

export interface NlError {
  /** 0 for an ACK; otherwise the positive errno. */
  errno: number;
  /** Sequence number of the request this answers (from the echoed header). */
  seq: number;
  /** NLMSGERR_ATTR_MSG: the kernel's own explanation, when it gave one. */
  message?: string;
  /** NLMSGERR_ATTR_OFFS: byte offset of the offending attribute in our request. */
  offset?: number;
  /** NLMSGERR_ATTR_MISS_TYPE: type of a missing required attribute. */
  missingType?: number;
}

function readExtAck(out: NlError, data: Buffer, start: number): void {
  forEachAttr(data, start, (type, value) => {
    if (type === NLMSGERR_ATTR_MSG) out.message = attrString(value);
    else if (type === NLMSGERR_ATTR_OFFS && value.length >= 4) out.offset = readU32(value, 0);
    else if (type === NLMSGERR_ATTR_MISS_TYPE && value.length >= 4) out.missingType = readU32(value, 0);
  });
}

/** Decodes an NLMSG_ERROR payload (struct nlmsgerr + extended-ack attributes). */
export function decodeNlError(msg: NlMessage): NlError {
  requireLength(msg, NLMSGERR_LEN, 'NLMSG_ERROR');
  const out: NlError = { errno: 0 - readI32(msg.data, 0), seq: readU32(msg.data, 4 + 8) };
  if (msg.flags & NLM_F_ACK_TLVS) {
    // Without NETLINK_CAP_ACK the kernel echoes our whole request before the TLVs.
    const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(readU32(msg.data, 4));
    const start = 4 + echoed;
    if (start > msg.data.length) throw decodeError(`NLMSG_ERROR echo of ${echoed} bytes overruns the message`);
    readExtAck(out, msg.data, start);
  }
  return out;
}

/** Decodes an NLMSG_DONE payload: a dump can end with an error (and extended ack) too. */
export function decodeDone(msg: NlMessage): NlError {
  const out: NlError = { errno: msg.data.length >= 4 ? 0 - readI32(msg.data, 0) : 0, seq: msg.seq };
  if (msg.flags & NLM_F_ACK_TLVS && msg.data.length > 4) readExtAck(out, msg.data, 4);
  return out;
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import {
  attrString, attrU16, attrU32, attrU8, decodeDone, decodeNlError, forEachAttr, NlWriter, parseAttrs,
  parseMessages, readU16, readU32, type NlMessage,
} from './codec.ts';
import {
  NLA_F_NESTED, NLMSG_DONE, NLMSG_ERROR, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS, NLM_F_ACK_TLVS, NLM_F_CAPPED,
  NLM_F_MULTI, NLM_F_REQUEST,
} from './constants.ts';

const isDecodeError = (e: unknown): boolean => isWeftError(e, 'WEFT_DECODE');

function first(b: Buffer): NlMessage {
  const [msg] = parseMessages(b);
  assert.ok(msg, 'a message');
  return msg;
}

test('a message with scalar, string, flag and nested attributes survives a round trip', () => {
  const w = new NlWriter();
  const start = w.beginMessage(16, NLM_F_REQUEST, 42, 7);
  w.u32(0xdeadbeef); // a 4-byte family header
  w.attrU8(1, 0xab);
  w.attrU16(2, 0xbeef);
  w.attrU32(3, 0x12345678);
  w.attrString(4, 'cni0');
  w.attrFlag(5);
  const outer = w.beginNest(6);
  w.attrU32(1, 99);
  const inner = w.beginNest(2);
  w.attrString(1, 'veth');
  w.endNest(inner);
  w.endNest(outer);
  w.endMessage(start);

  const bytes = w.bytes();
  assert.equal(bytes.length % 4, 0);
  const [msg, ...rest] = parseMessages(bytes);
  assert.equal(rest.length, 0);
  assert.ok(msg);
  assert.deepEqual([msg.type, msg.flags, msg.seq, msg.pid], [16, NLM_F_REQUEST, 42, 7]);
  assert.equal(readU32(bytes, 0), bytes.length, 'nlmsg_len covers the whole message');
  assert.equal(readU32(msg.data, 0), 0xdeadbeef);

  const a = parseAttrs(msg.data, 4);
  assert.equal(attrU8(a.get(1) as Buffer), 0xab);
  assert.equal(attrU16(a.get(2) as Buffer), 0xbeef);
  assert.equal(attrU32(a.get(3) as Buffer), 0x12345678);
  assert.equal(attrString(a.get(4) as Buffer), 'cni0');
  assert.equal(a.get(5)?.length, 0);
  const nested = parseAttrs(a.get(6) as Buffer);
  assert.equal(attrU32(nested.get(1) as Buffer), 99);
  assert.equal(attrString(parseAttrs(nested.get(2) as Buffer).get(1) as Buffer), 'veth');
});

test('nested attributes carry NLA_F_NESTED on the wire, and the decoder masks it off', () => {
  const w = new NlWriter();
  const n = w.beginNest(18);
  w.attrU32(1, 1);
  w.endNest(n);
  assert.equal(readU16(w.bytes(), 2), 18 | NLA_F_NESTED);
  assert.deepEqual([...parseAttrs(w.bytes()).keys()], [18]);
});

test('attributes are padded to 4 bytes and the length field excludes the padding', () => {
  const w = new NlWriter();
  w.attrU8(1, 1); // 5 bytes + 3 padding
  w.attrString(2, 'ab'); // 7 bytes + 1 padding
  w.attrU32(3, 3);
  const b = w.bytes();
  assert.equal(b.length, 8 + 8 + 8);
  assert.equal(readU16(b, 0), 5);
  assert.equal(readU16(b, 8), 7);
  const types: number[] = [];
  forEachAttr(b, 0, (t) => types.push(t));
  assert.deepEqual(types, [1, 2, 3]);
});

test('the writer stays correct when it grows in the middle of a message', () => {
  // Regression: a write must land in the new buffer after a reallocation, not the old one.
  const w = new NlWriter(16);
  for (let i = 0; i < 500; i++) {
    const s = w.beginMessage(24, 0, i);
    w.u8(i & 0xff);
    w.u8(2);
    w.u16(3);
    w.raw(Buffer.from([1, 2, 3]));
    w.attrBe16(1, i);
    w.attrBytes(2, Buffer.from([i & 0xff, 5, 6, 7, 8]));
    w.endMessage(s);
  }
  const msgs = parseMessages(w.bytes());
  assert.equal(msgs.length, 500);
  msgs.forEach((m, i) => {
    assert.equal(m.seq, i);
    assert.deepEqual([...m.data.subarray(0, 7)], [i & 0xff, 2, 3, 0, 1, 2, 3]);
    const a = parseAttrs(m.data, 8);
    assert.equal(a.get(1)?.readUInt16BE(0), i);
    assert.deepEqual([...(a.get(2) as Buffer)], [i & 0xff, 5, 6, 7, 8]);
  });
});

test('a datagram with several messages (a multipart dump) splits on aligned boundaries', () => {
  const w = new NlWriter();
  for (let i = 0; i < 3; i++) {
    const s = w.beginMessage(16, NLM_F_MULTI, 1);
    w.attrString(3, `link${i}`);
    w.endMessage(s);
  }
  const s = w.beginMessage(NLMSG_DONE, NLM_F_MULTI, 1);
  w.i32(0);
  w.endMessage(s);
  const msgs = parseMessages(w.bytes());
  assert.deepEqual(msgs.map((m) => m.type), [16, 16, 16, NLMSG_DONE]);
  assert.deepEqual(msgs.slice(0, 3).map((m) => attrString(parseAttrs(m.data).get(3) as Buffer)), ['link0', 'link1', 'link2']);
  assert.equal(decodeDone(msgs[3] as NlMessage).errno, 0);
});

test('a message whose length is not a multiple of 4 is followed by padding', () => {
  const b = Buffer.alloc(24 + 16);
  b.writeUInt32LE(21, 0); // 16 header + 5 payload, padded to 24
  b.writeUInt16LE(16, 4);
  b.fill(0xaa, 16, 21);
  b.writeUInt32LE(16, 24);
  b.writeUInt16LE(NLMSG_DONE, 28);
  const msgs = parseMessages(b);
  assert.equal(msgs.length, 2);
  assert.equal(msgs[0]?.data.length, 5);
  assert.equal(msgs[1]?.type, NLMSG_DONE);
});

test('truncated or malformed input gives a WEFT_DECODE error naming the offset, never a crash', () => {
  const w = new NlWriter();
  const s = w.beginMessage(16, 0, 1);
  w.attrString(3, 'eth0');
  w.endMessage(s);
  const good = Buffer.from(w.bytes());

  assert.throws(() => parseMessages(good.subarray(0, 10)), (e) => isDecodeError(e) && /truncated message header at offset 0/.test((e as Error).message));
  assert.throws(() => parseMessages(good, good.length - 4), (e) => isDecodeError(e) && /bad message length 28 at offset 0 \(24 bytes left\)/.test((e as Error).message));

  const tooShort = Buffer.from(good);
  tooShort.writeUInt32LE(8, 0); // shorter than a header
  assert.throws(() => parseMessages(tooShort), isDecodeError);

  const badAttr = Buffer.from(good);
  badAttr.writeUInt16LE(200, 16); // attribute claims more than the message holds
  assert.throws(() => parseAttrs(first(badAttr).data), (e) => isDecodeError(e) && /bad attribute length 200 at offset 0/.test((e as Error).message));

  const tinyAttr = Buffer.from([2, 0, 1, 0]); // nla_len 2 < header
  assert.throws(() => parseAttrs(tinyAttr), isDecodeError);

  assert.throws(() => attrU32(Buffer.from([1, 2])), (e) => isDecodeError(e) && /too short for u32/.test((e as Error).message));
});

test('trailing bytes too short for an attribute header are ignored, as the kernel does', () => {
  const w = new NlWriter();
  w.attrU32(1, 5);
  const b = Buffer.concat([w.bytes(), Buffer.from([0, 0])]);
  assert.equal(parseAttrs(b).size, 1);
});

function errorMessage(errno: number, flags: number, seq: number, extack?: { msg?: string; offset?: number }, echo = Buffer.alloc(0)): Buffer {
  const w = new NlWriter();
  const s = w.beginMessage(NLMSG_ERROR, flags, seq);
  w.i32(-errno);
  // The echoed request header (and, uncapped, its payload).
  w.u32(16 + echo.length);
  w.u16(16);
  w.u16(NLM_F_REQUEST);
  w.u32(seq);
  w.u32(0);
  w.raw(echo);
  if (extack?.msg !== undefined) w.attrString(NLMSGERR_ATTR_MSG, extack.msg);
  if (extack?.offset !== undefined) w.attrU32(NLMSGERR_ATTR_OFFS, extack.offset);
  w.endMessage(s);
  return Buffer.from(w.bytes());
}

test('NLMSG_ERROR: an ACK has errno 0', () => {
  const msg = first(errorMessage(0, NLM_F_CAPPED, 5));
  assert.deepEqual(decodeNlError(msg), { errno: 0, seq: 5 });
});

test('NLMSG_ERROR: errno and the extended ack (message, offset) of a capped error', () => {
  const msg = first(errorMessage(22, NLM_F_CAPPED | NLM_F_ACK_TLVS, 9, { msg: 'Invalid prefix for given prefix length', offset: 36 }));
  assert.deepEqual(decodeNlError(msg), { errno: 22, seq: 9, message: 'Invalid prefix for given prefix length', offset: 36 });
});

test('NLMSG_ERROR: the extended ack is found after an uncapped echo of the request', () => {
  const echo = Buffer.alloc(12, 0x55);
  const msg = first(errorMessage(17, NLM_F_ACK_TLVS, 3, { msg: 'File exists' }, echo));
  assert.deepEqual(decodeNlError(msg), { errno: 17, seq: 3, message: 'File exists' });
});

test('NLMSG_ERROR: a payload shorter than struct nlmsgerr is a decode error', () => {
  const w = new NlWriter();
  const s = w.beginMessage(NLMSG_ERROR, 0, 1);
  w.i32(-1);
  w.endMessage(s);
  assert.throws(() => decodeNlError(first(w.bytes())), (e) => isDecodeError(e) && /NLMSG_ERROR message too short/.test((e as Error).message));
});

test('NLMSG_DONE can carry a dump error with an extended ack', () => {
  const w = new NlWriter();
  const s = w.beginMessage(NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS, 4);
  w.i32(-95);
  w.attrString(NLMSGERR_ATTR_MSG, 'not supported');
  w.endMessage(s);
  const msg = first(w.bytes());
  assert.deepEqual(decodeDone(msg), { errno: 95, seq: 4, message: 'not supported' });
});

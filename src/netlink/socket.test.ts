// NetlinkSocket's protocol logic (sequence matching, ACK collection, dumps, batches, errors)
// against a scripted fake kernel, so it runs without root. The e2e test covers the real one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { attrString, NlWriter, parseAttrs, parseMessages, type NlMessage } from './codec.ts';
import {
  NLMSG_DONE, NLMSG_ERROR, NLMSGERR_ATTR_MSG, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR,
  NLM_F_MULTI, NLM_F_REQUEST,
} from './constants.ts';
import { NetlinkBatchError, NetlinkError } from './errors.ts';
import { NetlinkSocket, type NetlinkRequest, type NetlinkTransport } from './socket.ts';

type Kernel = (requests: NlMessage[], datagram: number) => Buffer[];

/** A transport whose "kernel" answers each send() with the datagrams `kernel` returns. */
function fake(kernel: Kernel, recvError?: () => Error | undefined): NetlinkTransport & { sends: NlMessage[][]; queue: Buffer[] } {
  const t = {
    sends: [] as NlMessage[][],
    queue: [] as Buffer[],
    send(data: Uint8Array): number {
      const msgs = parseMessages(Buffer.from(data)).map((m) => ({ ...m, data: Buffer.from(m.data) }));
      t.sends.push(msgs);
      t.queue.push(...kernel(msgs, t.sends.length));
      return data.length;
    },
    recv(into: Uint8Array, _timeoutMs: number): number {
      const err = recvError?.();
      if (err) throw err;
      const next = t.queue.shift();
      if (!next) return 0; // nothing will ever come: behaves as a timeout
      into.set(next.subarray(0, Math.min(next.length, into.length)));
      return next.length;
    },
    close(): void {},
  };
  return t;
}

function message(type: number, flags: number, seq: number, body: (w: NlWriter) => void): Buffer {
  const w = new NlWriter();
  const s = w.beginMessage(type, flags, seq);
  body(w);
  w.endMessage(s);
  return Buffer.from(w.bytes());
}

function ack(req: NlMessage, errno = 0, text?: string): Buffer {
  return message(NLMSG_ERROR, NLM_F_CAPPED | (text ? NLM_F_ACK_TLVS : 0), req.seq, (w) => {
    w.i32(-errno);
    w.u32(16); w.u16(req.type); w.u16(req.flags); w.u32(req.seq); w.u32(0);
    if (text) w.attrString(NLMSGERR_ATTR_MSG, text);
  });
}

function named(seq: number, name: string, flags = NLM_F_MULTI): Buffer {
  return message(16, flags, seq, (w) => w.attrString(3, name));
}

const done = (seq: number, errno = 0): Buffer => message(NLMSG_DONE, NLM_F_MULTI, seq, (w) => w.i32(-errno));
const concat = (...b: Buffer[]): Buffer => Buffer.concat(b);
const nameOf = (m: NlMessage): string => attrString(parseAttrs(m.data).get(3) as Buffer);

function req(what: string, type = 16): NetlinkRequest {
  return { type, what, write: (w) => w.attrString(3, what) };
}

test('request() sets NLM_F_REQUEST|NLM_F_ACK and returns on the ACK', () => {
  const t = fake(([m]) => [ack(m as NlMessage)]);
  NetlinkSocket.over(t).request(req('create bridge cni0'));
  const [m] = t.sends[0] ?? [];
  assert.equal(m?.flags, NLM_F_REQUEST | NLM_F_ACK);
});

test('a refusal is a NetlinkError naming the operation, errno and the kernel message', () => {
  const t = fake(([m]) => [ack(m as NlMessage, 17, 'Device already exists')]);
  assert.throws(() => NetlinkSocket.over(t).request(req('create bridge cni0')), (e) => {
    assert.ok(e instanceof NetlinkError);
    assert.equal(e.code, 'WEFT_NETLINK');
    assert.equal(e.errnoName, 'EEXIST');
    assert.equal(e.exists, true);
    assert.equal(e.notFound, false);
    assert.match(e.message, /^create bridge cni0: .*EEXIST.*Device already exists/);
    return true;
  });
});

test('replies with another sequence number (late answers to earlier requests) are ignored', () => {
  const t = fake(([m]) => {
    const r = m as NlMessage;
    return [ack({ ...r, seq: r.seq - 1 }, 22, 'stale'), concat(ack({ ...r, seq: r.seq + 7 }, 1), ack(r))];
  });
  NetlinkSocket.over(t).request(req('set link eth0 up'));
});

test('no answer within the timeout is a WEFT_NETLINK error naming the request', () => {
  const t = fake(() => []);
  assert.throws(() => NetlinkSocket.over(t, { timeoutMs: 10 }).request(req('delete link eth0')),
    (e) => isWeftError(e, 'WEFT_NETLINK') && /delete link eth0: no answer from the kernel within 10 ms/.test((e as Error).message));
});

test('batch() sends every request in one send() and reports which ones failed', () => {
  const t = fake((msgs) => msgs.map((m, i) => ack(m, i === 3 || i === 7 ? 17 : 0)));
  const reqs = Array.from({ length: 10 }, (_, i) => req(`add route 10.${i}.0.0/16`));
  assert.throws(() => NetlinkSocket.over(t).batch(reqs), (e) => {
    assert.ok(e instanceof NetlinkBatchError);
    assert.deepEqual(e.failures.map((f) => f.index), [3, 7]);
    assert.equal(e.failures[0]?.error.operation, 'add route 10.3.0.0/16');
    assert.match(e.message, /batch of 10: request #3 failed: add route 10\.3\.0\.0\/16: .*EEXIST.*\(2 of 10 failed in all\)/);
    return true;
  });
  assert.equal(t.sends.length, 1);
  assert.equal(t.sends[0]?.length, 10);
  assert.equal(new Set(t.sends[0]?.map((m) => m.seq)).size, 10, 'distinct sequence numbers');
});

test('batchSettled() returns each outcome in order, whatever order the ACKs come in', () => {
  const t = fake((msgs) => msgs.map((m, i) => ack(m, i === 1 ? 3 : 0)).reverse());
  const out = NetlinkSocket.over(t).batchSettled([req('a'), req('b'), req('c')]);
  assert.deepEqual(out.map((e) => e?.errnoName), [undefined, 'ESRCH', undefined]);
});

test('a batch larger than maxPerSend goes out in several sends, all ACKs collected', () => {
  const t = fake((msgs) => msgs.map((m) => ack(m)));
  const out = NetlinkSocket.over(t, { maxPerSend: 4 }).batchSettled(Array.from({ length: 10 }, (_, i) => req(`r${i}`)));
  assert.equal(out.length, 10);
  assert.deepEqual(t.sends.map((s) => s.length), [4, 4, 2]);
});

test('dump() collects a multipart reply spread over several datagrams until NLMSG_DONE', () => {
  const t = fake(([m]) => {
    const s = (m as NlMessage).seq;
    assert.equal((m as NlMessage).flags, NLM_F_REQUEST | NLM_F_DUMP);
    return [concat(named(s, 'lo'), named(s, 'eth0')), concat(named(s, 'cni0'), done(s))];
  });
  const sock = NetlinkSocket.over(t);
  assert.deepEqual(sock.dump(req('list links'), nameOf), ['lo', 'eth0', 'cni0']);
  assert.deepEqual(sock.dump(req('list links')).map(nameOf), ['lo', 'eth0', 'cni0'], 'copied messages without a decoder');
});

test('an interrupted dump (NLM_F_DUMP_INTR) is retried', () => {
  const t = fake(([m], n) => {
    const s = (m as NlMessage).seq;
    return n === 1 ? [concat(named(s, 'old', NLM_F_MULTI | NLM_F_DUMP_INTR), done(s))] : [concat(named(s, 'new'), done(s))];
  });
  assert.deepEqual(NetlinkSocket.over(t).dump(req('list routes'), nameOf), ['new']);
  assert.equal(t.sends.length, 2);
});

test('a dump that ends in an error, or is refused up front, throws NetlinkError', () => {
  const failing = fake(([m]) => [concat(named((m as NlMessage).seq, 'x'), done((m as NlMessage).seq, 95))]);
  assert.throws(() => NetlinkSocket.over(failing).dump(req('list fdb entries')), (e) => e instanceof NetlinkError && e.errnoName === 'EOPNOTSUPP');
  const refused = fake(([m]) => [ack(m as NlMessage, 22, 'bad header')]);
  assert.throws(() => NetlinkSocket.over(refused).dump(req('list addresses')), (e) => e instanceof NetlinkError && e.kernelMessage === 'bad header');
});

test('query() returns the decoded reply that precedes the ACK', () => {
  const t = fake(([m]) => [concat(named((m as NlMessage).seq, 'eth0', 0), ack(m as NlMessage))]);
  assert.deepEqual(NetlinkSocket.over(t).query(req('get link eth0'), nameOf), ['eth0']);
});

test('a datagram larger than the receive buffer is reported, not silently cut', () => {
  const t = fake(([m]) => [concat(named((m as NlMessage).seq, 'x'.repeat(200)), done((m as NlMessage).seq))]);
  assert.throws(() => NetlinkSocket.over(t, { receiveBufferSize: 64 }).dump(req('list links')),
    (e) => isWeftError(e, 'WEFT_NETLINK') && /did not fit the 64-byte receive buffer/.test((e as Error).message));
});

test('a malformed reply is a WEFT_DECODE error', () => {
  const t = fake(() => [Buffer.from([200, 0, 0, 0, 2, 0, 0, 0])]);
  assert.throws(() => NetlinkSocket.over(t).request(req('x')), (e) => isWeftError(e, 'WEFT_DECODE'));
});

test('a receive-queue overflow (ENOBUFS) is reported and the queue is drained for the next call', () => {
  let overflow = true;
  const t = fake((msgs) => msgs.map((m) => ack(m)), () => {
    if (!overflow) return undefined;
    overflow = false;
    return Object.assign(new Error('netlink recv: No buffer space available'), { code: 'ENOBUFS' });
  });
  const sock = NetlinkSocket.over(t);
  assert.throws(() => sock.request(req('add route 10.0.0.0/8')), (e) => isWeftError(e, 'WEFT_NETLINK') && /overflowed/.test((e as Error).message));
  assert.equal(t.queue.length, 0, 'drained');
  sock.request(req('add route 10.1.0.0/16'));
});

test('a closed socket refuses requests', () => {
  const sock = NetlinkSocket.over(fake(() => []));
  sock.close();
  sock.close(); // idempotent
  assert.throws(() => sock.request(req('x')), /closed/);
});

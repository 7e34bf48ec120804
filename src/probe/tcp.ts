// TCP probe: a handshake, then an echo of a multi-segment payload through `weft probe serve`.
import { connect, type Socket } from 'node:net';
import { boundedError, roundRtt, type ProbeOutcome } from './types.ts';
import { DEFAULT_TCP_PAYLOAD, MAX_HEADER_BYTES, newNonce, parseAnswer, payloadFor } from './wire.ts';

export interface TcpOptions {
  attempts?: number;
  /** Milliseconds each try may take, handshake and echo together (default 2000). */
  timeoutMs?: number;
  /** Payload echoed (default 4096 bytes; 0: handshake only, for a port that is not `weft probe serve`). */
  payloadBytes?: number;
}

interface Try {
  ok: boolean;
  rttMs?: number;
  seen?: string;
  error?: string;
  /** The peer answered (refused or echoed): trying again soon is not hammering a black hole. */
  answered: boolean;
}

function socketError(e: NodeJS.ErrnoException, received: number): string {
  if (e.code === 'ECONNREFUSED') return 'connection refused (nothing listens on that port)';
  if (e.code === 'ECONNRESET') return `the peer reset the connection after ${received} bytes (not a weft probe responder, or it refused the request)`;
  return `${e.code ?? 'error'}: ${e.message}`;
}

function oneTry(address: string, port: number, timeoutMs: number, payloadBytes: number): Promise<Try> {
  const nonce = newNonce();
  const payload = payloadFor(nonce, payloadBytes);
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    let handshakeMs: number | undefined;
    let received = Buffer.alloc(0);
    let settled = false;
    const socket: Socket = connect({ host: address, port });
    const finish = (t: Try): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(t);
    };
    const timer = setTimeout(() => {
      if (handshakeMs === undefined) finish({ ok: false, error: `no TCP handshake within ${timeoutMs} ms`, answered: false });
      else finish({ ok: false, error: `connected, but the ${payloadBytes}-byte echo did not come back within ${timeoutMs} ms (${received.length} bytes did; an MTU too large for the path?)`, answered: false });
    }, timeoutMs);
    socket.on('connect', () => {
      handshakeMs = Number(process.hrtime.bigint() - started) / 1e6;
      if (payloadBytes === 0) return finish({ ok: true, rttMs: roundRtt(handshakeMs), answered: true });
      socket.write(`weft-probe ${nonce} ${payloadBytes}\n`);
      socket.write(payload);
    });
    socket.on('data', (b: Buffer) => {
      received = Buffer.concat([received, b]);
      const nl = received.indexOf(0x0a);
      if (nl < 0) {
        if (received.length > MAX_HEADER_BYTES) finish({ ok: false, error: 'the peer does not speak weft probe (no answer line)', answered: true });
        return;
      }
      const head = parseAnswer(received.subarray(0, nl).toString('utf8'), nonce);
      if (head === undefined) return finish({ ok: false, error: 'the peer does not speak weft probe (bad answer line)', answered: true });
      const body = received.subarray(nl + 1);
      if (body.length > payloadBytes || !payload.subarray(0, body.length).equals(body)) return finish({ ok: false, error: 'the echoed payload differs from what was sent', answered: true });
      if (body.length === payloadBytes) finish({ ok: true, rttMs: roundRtt(handshakeMs ?? 0), seen: head.seen, answered: true });
    });
    socket.on('end', () => finish({ ok: false, error: `the peer closed the connection after ${received.length} bytes`, answered: true }));
    socket.on('error', (e: NodeJS.ErrnoException) => finish({ ok: false, error: socketError(e, received.length), answered: e.code === 'ECONNREFUSED' || e.code === 'ECONNRESET' }));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function tcpProbe(address: string, port: number, o: TcpOptions = {}): Promise<ProbeOutcome> {
  const attempts = o.attempts ?? 3;
  const timeoutMs = o.timeoutMs ?? 2000;
  let last: Try = { ok: false, error: 'no try made', answered: false };
  for (let i = 1; i <= attempts; i++) {
    last = await oneTry(address, port, timeoutMs, o.payloadBytes ?? DEFAULT_TCP_PAYLOAD);
    if (last.ok) return { ok: true, rttMs: last.rttMs ?? 0, ...(last.seen === undefined ? {} : { seen: last.seen }), attempts: i };
    // A refusal comes back at once; pause so that a responder still starting gets its chance.
    if (last.answered && i < attempts) await sleep(Math.min(timeoutMs, 500));
  }
  return { ok: false, error: boundedError(last.error ?? 'failed'), attempts };
}

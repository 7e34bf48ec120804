// UDP probe: a nonce to `weft probe serve` (or the lab's outside host), which answers with the
// source address it saw.
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { roundRtt, type ProbeOutcome } from './types.ts';
import { newNonce, parseAnswer } from './wire.ts';

export interface UdpOptions {
  attempts?: number;
  /** Milliseconds to wait for the answer to each datagram (default 1000). */
  waitMs?: number;
  nonce?: string;
}

export function udpProbe(address: string, port: number, o: UdpOptions = {}): Promise<ProbeOutcome> {
  const attempts = o.attempts ?? 3;
  const waitMs = o.waitMs ?? 1000;
  const nonce = o.nonce ?? newNonce();
  const socket = createSocket(isIPv6(address) ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    let sentAt = 0n;
    let tries = 0;
    let lastError: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (r: ProbeOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      resolve(r);
    };
    const send = (): void => {
      if (tries >= attempts) return finish({ ok: false, error: lastError ?? `no answer to ${attempts} datagram${attempts === 1 ? '' : 's'} (${waitMs} ms each)`, nonce, attempts });
      tries++;
      sentAt = process.hrtime.bigint();
      // A send that fails at once (no route: ENETUNREACH) counts as an unanswered try.
      socket.send(nonce, port, address, (e) => {
        if (e) lastError = `${(e as NodeJS.ErrnoException).code ?? 'error'}: ${e.message}`;
      });
      timer = setTimeout(send, waitMs);
    };
    socket.on('message', (msg) => {
      const a = parseAnswer(msg.toString('utf8'), nonce);
      if (a === undefined) return;
      finish({ ok: true, rttMs: roundRtt(Number(process.hrtime.bigint() - sentAt) / 1e6), seen: a.seen, nonce, attempts: tries });
    });
    // ICMP port unreachable arrives as ECONNREFUSED on some paths; keep trying until the tries are spent.
    socket.on('error', (e: NodeJS.ErrnoException) => (lastError = `${e.code ?? 'error'}: ${e.message}`));
    send();
  });
}

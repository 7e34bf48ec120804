// A tiny UDP echo that reports who it saw, for `lab check`'s pod-outside probe: run by
// `lab check` inside the outside host (serve) and inside pods (probe), as separate node
// processes (it is a script: `node udp-echo.ts serve|probe …`; it imports only node:).
//
//   serve <address> <max-seconds>
//       Binds <address>, port 0. Prints "port <n>" once listening, then "seen <nonce> <ip>"
//       for every datagram, and answers it with {"nonce","seen"}: the source address as the
//       outside host saw it, which is the node's address when the node masqueraded. Exits
//       when stdin closes (the check that started it ended, however it ended) or after
//       <max-seconds>.
//   probe <address> <port> <nonce> <attempts> <wait-ms>
//       Sends <nonce>, waits <wait-ms> for the answer, up to <attempts> times; prints
//       {"ok":true,"seen":…,"rtt_ms":…} or {"ok":false}.
import { createSocket } from 'node:dgram';

function serve(address: string, maxSeconds: number): void {
  const socket = createSocket('udp4');
  const stop = (): void => {
    socket.close();
  };
  socket.on('message', (msg, peer) => {
    const nonce = msg.toString('utf8').trim();
    if (!/^[0-9a-f]{1,64}$/.test(nonce)) return;
    process.stdout.write(`seen ${nonce} ${peer.address}\n`);
    socket.send(JSON.stringify({ nonce, seen: peer.address }), peer.port, peer.address);
  });
  socket.on('error', (e) => {
    process.stderr.write(`udp-echo: ${e.message}\n`);
    process.exitCode = 1;
    stop();
  });
  socket.bind(0, address, () => process.stdout.write(`port ${socket.address().port}\n`));
  process.stdin.on('end', stop).on('close', stop).resume();
  setTimeout(stop, maxSeconds * 1000).unref();
}

function probe(address: string, port: number, nonce: string, attempts: number, waitMs: number): void {
  const socket = createSocket('udp4');
  let sentAt = 0n;
  let tries = 0;
  let timer: NodeJS.Timeout | undefined;
  const finish = (result: object): void => {
    clearTimeout(timer);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    socket.close();
  };
  const send = (): void => {
    if (tries++ >= attempts) return finish({ ok: false });
    sentAt = process.hrtime.bigint();
    socket.send(nonce, port, address);
    timer = setTimeout(send, waitMs);
  };
  socket.on('message', (msg) => {
    let reply: { nonce?: unknown; seen?: unknown };
    try {
      reply = JSON.parse(msg.toString('utf8')) as typeof reply;
    } catch {
      return;
    }
    if (reply.nonce !== nonce || typeof reply.seen !== 'string') return;
    finish({ ok: true, seen: reply.seen, rtt_ms: Number(process.hrtime.bigint() - sentAt) / 1e6 });
  });
  // A send that fails at once (no route: ENETUNREACH) counts as an unanswered try.
  socket.on('error', () => undefined);
  send();
}

const [mode, ...args] = process.argv.slice(2);
const num = (s: string | undefined, what: string): number => {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`udp-echo: ${what} must be a positive number, got ${s}`);
  return n;
};
if (mode === 'serve' && args[0] !== undefined) serve(args[0], num(args[1], 'max-seconds'));
else if (mode === 'probe' && args[0] !== undefined && args[2] !== undefined) probe(args[0], num(args[1], 'port'), args[2], num(args[3], 'attempts'), num(args[4], 'wait-ms'));
else {
  process.stderr.write('usage: udp-echo.ts serve <address> <max-seconds> | probe <address> <port> <nonce> <attempts> <wait-ms>\n');
  process.exitCode = 2;
}

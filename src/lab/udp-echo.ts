// A tiny UDP echo that reports who it saw, for `lab check`'s pod-outside probe: run by
// `lab check` inside the outside host as a separate node process (it is a script:
// `node udp-echo.ts serve …`; it imports only node:). It speaks the protocol of
// `weft probe serve` (src/probe/wire.ts), so the pods probe it with `weft probe --kinds udp`.
//
//   serve <address> <max-seconds>
//       Binds <address>, port 0. Prints "port <n>" once listening, then "seen <nonce> <ip>"
//       for every datagram, and answers it with {"nonce","seen"}: the source address as the
//       outside host saw it, which is the node's address when the node masqueraded. Exits
//       when stdin closes (the check that started it ended, however it ended) or after
//       <max-seconds>.
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

const [mode, ...args] = process.argv.slice(2);
const num = (s: string | undefined, what: string): number => {
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`udp-echo: ${what} must be a positive number, got ${s}`);
  return n;
};
if (mode === 'serve' && args[0] !== undefined) serve(args[0], num(args[1], 'max-seconds'));
else {
  process.stderr.write('usage: udp-echo.ts serve <address> <max-seconds>\n');
  process.exitCode = 2;
}

// `weft probe serve`: the responder the TCP and UDP probes talk to (src/probe/wire.ts), on one
// port for both. Everything that arrives is untrusted: headers and payloads are bounded, a
// connection gets a deadline, and the number of connections at once is capped.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { MAX_HEADER_BYTES, MAX_TCP_PAYLOAD, NONCE_RE, TCP_HEADER_RE, answer } from './wire.ts';

export interface ProbeServerOptions {
  /** 0 picks a free port (the same one for UDP). */
  port: number;
  /** Default: every address ('::' when IPv6 is available, else '0.0.0.0'). */
  address?: string;
  /** Called for each datagram or connection answered (for logs and tests). */
  onProbe?: (p: { method: 'tcp' | 'udp'; nonce: string; from: string }) => void;
}

export interface ProbeServer {
  address: string;
  port: number;
  close(): Promise<void>;
}

const CONNECTION_DEADLINE_MS = 10_000;
const MAX_CONNECTIONS = 256;

/** The IPv4 form of an IPv4-mapped IPv6 address (::ffff:10.0.0.1), as the prober knows it. */
export function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function handleConnection(socket: Socket, onProbe: ProbeServerOptions['onProbe']): void {
  socket.setTimeout(CONNECTION_DEADLINE_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  let buffered = Buffer.alloc(0);
  let header: { nonce: string; bytes: number } | undefined;
  socket.on('data', (b: Buffer) => {
    buffered = Buffer.concat([buffered, b]);
    if (header === undefined) {
      const nl = buffered.indexOf(0x0a);
      if (nl < 0) {
        if (buffered.length > MAX_HEADER_BYTES) socket.destroy();
        return;
      }
      const m = TCP_HEADER_RE.exec(buffered.subarray(0, nl).toString('latin1'));
      const bytes = Number(m?.[2]);
      if (m?.[1] === undefined || bytes > MAX_TCP_PAYLOAD) return void socket.destroy();
      header = { nonce: m[1], bytes };
      buffered = buffered.subarray(nl + 1);
    }
    if (buffered.length > header.bytes) return void socket.destroy();
    if (buffered.length < header.bytes) return;
    const from = plainAddress(socket.remoteAddress ?? '');
    onProbe?.({ method: 'tcp', nonce: header.nonce, from });
    socket.end(Buffer.concat([Buffer.from(`${answer(header.nonce, from)}\n`), buffered]));
  });
}

function listenTcp(port: number, address: string, onProbe: ProbeServerOptions['onProbe']): Promise<{ server: Server; connections: Set<Socket> }> {
  const connections = new Set<Socket>();
  const server = createServer((s) => {
    connections.add(s);
    s.on('close', () => connections.delete(s));
    handleConnection(s, onProbe);
  });
  server.maxConnections = MAX_CONNECTIONS;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: address }, () => {
      server.off('error', reject);
      resolve({ server, connections });
    });
  });
}

function listenUdp(port: number, address: string, onProbe: ProbeServerOptions['onProbe']): Promise<UdpSocket> {
  const socket = createSocket({ type: isIPv6(address) ? 'udp6' : 'udp4' });
  socket.on('message', (msg, peer) => {
    if (msg.length > MAX_HEADER_BYTES) return;
    const nonce = msg.toString('latin1').trim();
    if (!NONCE_RE.test(nonce)) return;
    const from = plainAddress(peer.address);
    onProbe?.({ method: 'udp', nonce, from });
    socket.send(answer(nonce, from), peer.port, peer.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      // A failed send to one peer must not end the responder.
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}

async function startOn(o: ProbeServerOptions, address: string): Promise<ProbeServer> {
  const { server: tcp, connections } = await listenTcp(o.port, address, o.onProbe);
  const bound = tcp.address();
  const port = typeof bound === 'object' && bound !== null ? bound.port : o.port;
  let udp: UdpSocket;
  try {
    udp = await listenUdp(port, address, o.onProbe);
  } catch (e) {
    tcp.close();
    throw e;
  }
  return {
    address,
    port,
    close: async () => {
      await new Promise<void>((r) => udp.close(() => r()));
      const closed = new Promise<void>((r) => tcp.close(() => r()));
      for (const s of connections) s.destroy();
      await closed;
    },
  };
}

export async function startProbeServer(o: ProbeServerOptions): Promise<ProbeServer> {
  if (o.address !== undefined) return startOn(o, o.address);
  try {
    return await startOn(o, '::');
  } catch (e) {
    // A pod or host without IPv6 cannot bind '::'; every IPv4 address is what was meant.
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL' && code !== 'EINVAL') throw e;
    return startOn(o, '0.0.0.0');
  }
}

// The CNI server: a long-lived process on each node that serves the weft-cni front end
// over a unix socket, so a pod ADD costs one small exec plus work on warm state instead of
// a Node.js start-up. It only serves root callers (SO_PEERCRED), since it changes the node.
import { createServer, type Server, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';
import type { Logger } from '../log/logger.ts';
import { native } from '../native/native.ts';
import { errnoCode } from '../errors.ts';
import { handleCni, type CniOperations } from './plugin.ts';
import { decodeRequest, encodeResponse, MAX_FIELD, type CniResponse } from './wire.ts';
import { CniErrorCodes } from './spec.ts';
import { DEFAULT_CNI_SOCKET } from './socket-address.ts';


export interface CniServerOptions {
  socket?: string;
  ops: CniOperations;
  log: Logger;
  /** Serve callers of any uid (tests); by default only root. */
  allowNonRoot?: boolean;
}

function listenPath(socket: string): string {
  return socket.startsWith('@') ? `\0${socket.slice(1)}` : socket;
}

function callerUid(conn: Socket): number | undefined {
  const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? native().peerCred(fd).uid : undefined;
}

export async function startCniServer(options: CniServerOptions): Promise<Server> {
  const socket = options.socket ?? DEFAULT_CNI_SOCKET;
  const { log, ops } = options;
  // allowHalfOpen: the front end shuts down its writing side to mark the end of the request,
  // and we still have to answer on ours.
  const server = createServer({ allowHalfOpen: true }, (conn) => {
    const uid = options.allowNonRoot ? 0 : callerUid(conn);
    if (uid !== 0) {
      log.warn({ uid }, 'refused a CNI request from a non-root caller');
      conn.end(encodeResponse(failure(CniErrorCodes.invalidEnvironment, 'the weft CNI server serves root only')));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    conn.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_FIELD + 65536) conn.destroy();
      else chunks.push(chunk);
    });
    conn.on('error', (e) => log.debug({ err: e.message }, 'CNI client connection error'));
    conn.on('end', () => {
      void serve(Buffer.concat(chunks)).then((res) => conn.end(encodeResponse(res)));
    });
  });

  async function serve(frame: Buffer): Promise<CniResponse> {
    try {
      return await handleCni(decodeRequest(frame), ops, log);
    } catch (e) {
      return failure(CniErrorCodes.decodeFailure, (e as Error).message);
    }
  }

  const path = listenPath(socket);
  if (!socket.startsWith('@')) {
    try {
      unlinkSync(path); // a stale socket file from a previous run
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw e;
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path, readableAll: false, writableAll: false }, () => resolve());
  });
  log.info({ socket }, 'CNI server listening');
  return server;
}

function failure(code: number, msg: string): CniResponse {
  return { exitCode: 1, stdout: `${JSON.stringify({ code, msg })}\n`, stderr: '' };
}

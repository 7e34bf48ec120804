// The framing between the weft-cni front end (src/cni/shim/weft-cni.c) and the CNI server.
// All integers are u32 big-endian:
//   request:  "WCNI" count { len "KEY=VALUE" }*count len stdin
//   response: "WCNR" exitCode len stdout len stderr
import { WeftError } from '../errors.ts';

export interface CniRequest {
  env: Record<string, string>;
  stdin: string;
}

export interface CniResponse {
  exitCode: number;
  stdout: string;
  stderr: string;
}

const REQUEST_MAGIC = 'WCNI';
const RESPONSE_MAGIC = 'WCNR';
/**
 * The largest request frame, all of it (env and stdin). A real one is a few KiB: the CNI_*
 * variables (a container ID, a netns path, CNI_ARGS with the pod's name and namespace) and the
 * network config, with runtimeConfig and, for CHECK and DEL, prevResult. 1 MiB leaves room for
 * a hundred times that, while 64 connections at the bound stay at 64 MiB. The front end
 * (src/cni/shim/weft-cni.c, MAX_REQUEST) refuses to send more, so it never meets the server's
 * refusal mid-send.
 */
export const MAX_REQUEST_BYTES = 1 << 20;
/** No field can be bigger than the frame; responses (an ADD result is ~1 KiB) keep the same bound. */
export const MAX_FIELD = MAX_REQUEST_BYTES;

class Reader {
  #buf: Buffer;
  #at = 0;
  constructor(buf: Buffer) {
    this.#buf = buf;
  }
  u32(what: string): number {
    if (this.#at + 4 > this.#buf.length) throw truncated(what);
    const n = this.#buf.readUInt32BE(this.#at);
    this.#at += 4;
    return n;
  }
  bytes(what: string): Buffer {
    const n = this.u32(what);
    if (n > MAX_FIELD) throw new WeftError('WEFT_DECODE', `CNI wire: ${what} claims ${n} bytes, more than the ${MAX_FIELD >> 20} MiB limit`);
    if (this.#at + n > this.#buf.length) throw truncated(what);
    const out = this.#buf.subarray(this.#at, this.#at + n);
    this.#at += n;
    return out;
  }
  magic(expected: string): void {
    if (this.#buf.length < 4 || this.#buf.toString('latin1', 0, 4) !== expected) {
      throw new WeftError('WEFT_DECODE', `CNI wire: expected a "${expected}" frame`);
    }
    this.#at = 4;
  }
  end(): void {
    if (this.#at !== this.#buf.length) throw new WeftError('WEFT_DECODE', 'CNI wire: trailing bytes after the frame');
  }
}

const truncated = (what: string): WeftError => new WeftError('WEFT_DECODE', `CNI wire: frame truncated in ${what}`);

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function field(text: string): Buffer[] {
  const b = Buffer.from(text);
  return [u32(b.length), b];
}

export function encodeRequest(req: CniRequest): Buffer {
  const entries = Object.entries(req.env);
  return Buffer.concat([
    Buffer.from(REQUEST_MAGIC), u32(entries.length),
    ...entries.flatMap(([k, v]) => field(`${k}=${v}`)),
    ...field(req.stdin),
  ]);
}

export function decodeRequest(buf: Buffer): CniRequest {
  const r = new Reader(buf);
  r.magic(REQUEST_MAGIC);
  const count = r.u32('the variable count');
  if (count > 1024) throw new WeftError('WEFT_DECODE', `CNI wire: ${count} variables is more than any runtime sends`);
  const env: Record<string, string> = {};
  for (let i = 0; i < count; i++) {
    const pair = r.bytes('a variable').toString();
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new WeftError('WEFT_DECODE', `CNI wire: variable "${pair.slice(0, 40)}" is not KEY=VALUE`);
    env[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  const stdin = r.bytes('stdin').toString();
  r.end();
  return { env, stdin };
}

export function encodeResponse(res: CniResponse): Buffer {
  return Buffer.concat([Buffer.from(RESPONSE_MAGIC), u32(res.exitCode), ...field(res.stdout), ...field(res.stderr)]);
}

export function decodeResponse(buf: Buffer): CniResponse {
  const r = new Reader(buf);
  r.magic(RESPONSE_MAGIC);
  const exitCode = r.u32('the exit code');
  const stdout = r.bytes('stdout').toString();
  const stderr = r.bytes('stderr').toString();
  r.end();
  return { exitCode, stdout, stderr };
}

// The cleartext parts of the protocol: the hello both sides send first, the refuse frame that
// explains a rejection to the other side, and the identity sent once the channel is keyed.
//
// Hello body (binary, so the version is at a fixed place whatever later versions add):
//   "weft-mesh"        9 bytes magic
//   uint16 BE min, max protocol versions the sender speaks
//   uint8 flags        bit 0: the sender has a password (wants Noise)
//   uint16 BE port     the sender's control listen port (0 = none)
//   uint8 n, n bytes   meshId (ASCII)
//   uint8 n, n bytes   mesh description for messages, e.g. "10.32.0.0/12 in /26 blocks" (UTF-8)
//   ...                ignored: room for later versions (the Noise prologue still covers it)
// The version range is read and compared before anything else, so a peer whose later layout
// we cannot parse still gets the clear "incompatible version" message rather than "garbage".
//
// Both hellos are mixed into the Noise prologue, so a man in the middle who edits one (say,
// to clear the password flag or change the mesh id) makes the handshake fail.
import { MeshHandshakeError, isMeshErrorReason, type MeshErrorReason } from './errors.ts';

export const HELLO_MAGIC = Buffer.from('weft-mesh', 'ascii');
const FLAG_PASSWORD = 1;
const MAX_SHORT_STRING = 255;

export interface Hello {
  min: number;
  max: number;
  password: boolean;
  port: number;
  meshId: string;
  description: string;
}

export function encodeHello(h: Hello): Buffer {
  const meshId = Buffer.from(h.meshId, 'ascii');
  const description = Buffer.from(h.description, 'utf8');
  if (meshId.length > MAX_SHORT_STRING || description.length > MAX_SHORT_STRING) throw new RangeError('hello fields are at most 255 bytes');
  const fixed = Buffer.alloc(7);
  fixed.writeUInt16BE(h.min, 0);
  fixed.writeUInt16BE(h.max, 2);
  fixed.writeUInt8(h.password ? FLAG_PASSWORD : 0, 4);
  fixed.writeUInt16BE(h.port, 5);
  return Buffer.concat([HELLO_MAGIC, fixed, Buffer.from([meshId.length]), meshId, Buffer.from([description.length]), description]);
}

/** Just the version range: readable from any hello, whatever follows it. */
export function helloVersions(body: Buffer, peer: string): { min: number; max: number } {
  if (body.length < HELLO_MAGIC.length || !body.subarray(0, HELLO_MAGIC.length).equals(HELLO_MAGIC)) {
    throw new MeshHandshakeError('garbage', `${peer} is not a weft mesh peer (its hello has no "weft-mesh" magic); check that the address is a weft agent's control port`);
  }
  if (body.length < HELLO_MAGIC.length + 4) throw truncatedHello(peer);
  const min = body.readUInt16BE(HELLO_MAGIC.length);
  const max = body.readUInt16BE(HELLO_MAGIC.length + 2);
  if (min < 1 || min > max) throw new MeshHandshakeError('garbage', `${peer} sent an invalid protocol range [${min},${max}]`);
  return { min, max };
}

export function decodeHello(body: Buffer, peer: string): Hello {
  const { min, max } = helloVersions(body, peer);
  let at = HELLO_MAGIC.length + 4;
  if (body.length < at + 3 + 1) throw truncatedHello(peer);
  const flags = body.readUInt8(at);
  const port = body.readUInt16BE(at + 1);
  at += 3;
  const meshIdLength = body.readUInt8(at++);
  if (body.length < at + meshIdLength + 1) throw truncatedHello(peer);
  const meshId = body.subarray(at, at + meshIdLength).toString('latin1');
  at += meshIdLength;
  const descriptionLength = body.readUInt8(at++);
  if (body.length < at + descriptionLength) throw truncatedHello(peer);
  const description = body.subarray(at, at + descriptionLength).toString('utf8');
  return { min, max, password: (flags & FLAG_PASSWORD) !== 0, port, meshId, description };
}

function truncatedHello(peer: string): MeshHandshakeError {
  return new MeshHandshakeError('garbage', `${peer} sent a truncated hello`);
}

export interface Ours {
  min: number;
  max: number;
  password: boolean;
  meshId: string;
  description: string;
}

/** The protocol version both speak, or the clear reason why none (the same text on both sides, from each one's view). */
export function agree(ours: Ours, theirs: Hello, peer: string): number {
  const version = agreeVersion(ours, theirs, peer);
  if (theirs.meshId !== ours.meshId) {
    const them = describeMesh(theirs.description, theirs.meshId);
    const us = describeMesh(ours.description, ours.meshId);
    throw new MeshHandshakeError('mesh', `peer ${peer} belongs to another mesh: it uses ${them}, we use ${us}; IPALLOC_RANGE and the block size must be the same on every peer`);
  }
  if (ours.password && !theirs.password) {
    throw new MeshHandshakeError('encryption', `password specified, but peer ${peer} requested an unencrypted connection; set the same password on every peer`);
  }
  if (!ours.password && theirs.password) {
    throw new MeshHandshakeError('encryption', `no password specified, but peer ${peer} requested an encrypted connection; set the same password on every peer`);
  }
  return version;
}

/** The highest version both speak; checked before anything else in a hello is read. */
export function agreeVersion(ours: { min: number; max: number }, theirs: { min: number; max: number }, peer: string): number {
  const low = Math.max(ours.min, theirs.min);
  const high = Math.min(ours.max, theirs.max);
  if (low > high) {
    throw new MeshHandshakeError('version', `remote protocol range [${theirs.min},${theirs.max}] is incompatible with ours [${ours.min},${ours.max}] (peer ${peer}); run compatible weft versions on every node`);
  }
  return high;
}

function describeMesh(description: string, meshId: string): string {
  const id = `mesh id ${printable(meshId, 16)}`;
  return description ? `${printable(description, 120)} (${id})` : id;
}

/** A remote string made safe for one log line: printable ASCII only, bounded. */
export function printable(s: string, max = 200): string {
  const clean = s.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

export function encodeRefuse(reason: MeshErrorReason, text: string): Buffer {
  return Buffer.from(JSON.stringify({ reason, message: printable(text, 1000) }));
}

/** A refusal from the peer, as our error: its reason when it names a known one. */
export function decodeRefuse(body: Buffer, peer: string): MeshHandshakeError {
  let reason: MeshErrorReason = 'closed';
  let text = 'no reason given';
  try {
    const parsed = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof parsed === 'object' && parsed !== null) {
      const r = (parsed as { reason?: unknown }).reason;
      const m = (parsed as { message?: unknown }).message;
      if (isMeshErrorReason(r)) reason = r;
      if (typeof m === 'string') text = printable(m, 300);
    }
  } catch {
    text = 'an unreadable refusal';
  }
  return new MeshHandshakeError(reason, `peer ${peer} refused the connection: ${text}`);
}

export interface PeerIdentity {
  name: string;
  uid: string;
  nickname: string;
  /** The peer's control listen port. */
  port: number;
}

const NAME = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$|^[A-Za-z0-9._-]{1,63}$/;
const UID = /^[0-9a-f]{16}$/;
const NICKNAME = /^[\x20-\x7e]{0,63}$/;

/** Why an identity is not acceptable, or undefined when it is. */
export function identityProblem(id: unknown): string | undefined {
  if (typeof id !== 'object' || id === null) return 'it is not an object';
  const { name, uid, nickname, port } = id as Record<string, unknown>;
  if (typeof name !== 'string' || !NAME.test(name)) return `name ${JSON.stringify(printable(String(name), 80))} is neither aa:bb:cc:dd:ee:ff nor 1-63 letters, digits, '.', '_', '-'`;
  if (typeof uid !== 'string' || !UID.test(uid)) return `uid ${JSON.stringify(printable(String(uid), 40))} is not 16 hex digits`;
  if (typeof nickname !== 'string' || !NICKNAME.test(nickname)) return `nickname ${JSON.stringify(printable(String(nickname), 80))} is not at most 63 printable characters`;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) return `port ${JSON.stringify(port)} is not 1-65535`;
  return undefined;
}

export function encodeIdentity(id: PeerIdentity): Buffer {
  return Buffer.from(JSON.stringify({ name: id.name, uid: id.uid, nickname: id.nickname, port: id.port }));
}

export function decodeIdentity(body: Buffer, peer: string): PeerIdentity {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw new MeshHandshakeError('identity', `peer ${peer} sent an identity that is not JSON`);
  }
  const problem = identityProblem(parsed);
  if (problem) throw new MeshHandshakeError('identity', `peer ${peer} sent an invalid identity: ${problem}`);
  const { name, uid, nickname, port } = parsed as PeerIdentity;
  return { name, uid, nickname, port };
}

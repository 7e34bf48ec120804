// A peer's identity: a name generated once and kept in the mesh directory, so that a restart
// keeps its address blocks, and never derived from machine-id (cloned VMs share that and would
// collide). `--name` overrides it. The uid is new on every start: the same name with another
// uid on a connection or in gossip means another live process claims our identity.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WeftError } from '../errors.ts';
import { writeFileAtomic } from './atomic-file.ts';

export interface LocalIdentity {
  name: string;
  nickname: string;
  /** New on every start (16 hex digits). */
  uid: string;
  /** Whether the name was generated just now (a new peer). */
  fresh: boolean;
}

export const PEER_NAME = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$|^[A-Za-z0-9._-]{1,63}$/;
const MAX_IDENTITY_BYTES = 4096;

/** A random 48-bit name printed like a MAC, unicast and locally administered. */
export function randomPeerName(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export function loadIdentity(dir: string, options: { name?: string; nickname: string }): LocalIdentity {
  const uid = randomBytes(8).toString('hex');
  if (options.name) {
    if (!PEER_NAME.test(options.name)) throw new WeftError('WEFT_INVALID_CONFIG', `--name ${JSON.stringify(options.name)}: a peer name is 1-63 letters, digits, '.', '_' or '-', or a MAC-like aa:bb:cc:dd:ee:ff`);
    return { name: options.name, nickname: options.nickname, uid, fresh: false };
  }
  const file = join(dir, 'identity.json');
  if (existsSync(file)) {
    const text = readFileSync(file, 'utf8');
    let name: unknown;
    try {
      name = text.length <= MAX_IDENTITY_BYTES ? (JSON.parse(text) as { name?: unknown }).name : undefined;
    } catch {
      name = undefined;
    }
    if (typeof name !== 'string' || !PEER_NAME.test(name)) {
      throw new WeftError('WEFT_MESH_STATE', `${file} does not hold a peer name; remove it to give this node a new identity (its address blocks then need 'weft rmpeer' on another node)`);
    }
    return { name, nickname: options.nickname, uid, fresh: false };
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = randomPeerName();
  writeFileAtomic(file, `${JSON.stringify({ name, created: new Date().toISOString() })}\n`);
  return { name, nickname: options.nickname, uid, fresh: true };
}

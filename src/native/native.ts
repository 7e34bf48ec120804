// Loads weft's native addon (src/native/weft_native.c, built by `npm run build:native`).
// See the C file for why each call exists; this module only gives them types.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export interface PeerCredentials { pid: number; uid: number; gid: number }

export interface NativeAddon {
  /** Opens a bound netlink socket, inside the network namespace at netnsPath when given. */
  nlOpen(protocol: number, netnsPath?: string | null): number;
  nlSend(fd: number, data: Uint8Array): number;
  /**
   * Waits up to timeoutMs for one datagram; returns its length, or 0 on timeout. A length
   * greater than into.length means the datagram was truncated to fit.
   */
  nlRecv(fd: number, into: Uint8Array, timeoutMs: number): number;
  close(fd: number): void;
  /** flock(2). Returns false when the lock is busy and wait is false. */
  flock(fd: number, mode: 'ex' | 'sh' | 'un', wait: boolean): boolean;
  peerCred(fd: number): PeerCredentials;
  /**
   * One netlink request on a thread-pool thread with its own socket (in netnsPath if given):
   * resolves with the first reply datagram. For requests the kernel answers slowly.
   */
  nlRequestAsync(protocol: number, netnsPath: string | null, message: Uint8Array, timeoutMs: number): Promise<Buffer>;
  /** Writes data to file (a /proc/sys/net knob) from inside the network namespace at netnsPath. */
  writeInNetns(netnsPath: string, file: string, data: string): void;
}

/**
 * Where the addon is: WEFT_NATIVE if set, else beside the bundle when this module runs bundled
 * (build/weft.mjs, or a chunk of it in build/chunks/, next to build/weft_native.node), else in
 * the checkout's build/.
 */
export function nativeAddonPath(): string {
  if (process.env.WEFT_NATIVE) return process.env.WEFT_NATIVE;
  for (const beside of ['./weft_native.node', '../weft_native.node']) {
    const path = fileURLToPath(new URL(beside, import.meta.url));
    if (existsSync(path)) return path;
  }
  return join(fileURLToPath(new URL('../../', import.meta.url)), 'build', 'weft_native.node');
}

let loaded: NativeAddon | undefined;

export function native(): NativeAddon {
  if (loaded) return loaded;
  const path = nativeAddonPath();
  if (!existsSync(path)) {
    throw new Error(`weft's native addon is missing at ${path}: run \`npm run build:native\` (needs gcc)`);
  }
  loaded = createRequire(import.meta.url)(path) as NativeAddon;
  return loaded;
}

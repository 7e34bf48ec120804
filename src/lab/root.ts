// The lab's commands that change the network need root; say so in one line up front rather
// than fail halfway with EPERM from the first `ip netns add`.
import { WeftError } from '../errors.ts';

export function requireRoot(command: string, why: string, uid: number | undefined = process.getuid?.()): void {
  if (uid === 0) return;
  throw new WeftError('WEFT_LAB', `${command} must run as root (${why}); run it again with sudo`);
}

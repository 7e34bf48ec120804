// The password becomes a 32-byte Noise PSK through scrypt, run once at start-up. scrypt is the
// only thing that slows down offline guessing by someone who completed one handshake with us
// (without a PAKE there is no way to avoid giving an active attacker a verifier), so it is
// memory-hard; N=2^14, r=8 needs 16 MiB, inside both node's default maxmem and a 64 MiB pod
// limit. The salt is per mesh (the caller passes something cluster-specific, such as the mesh
// id) so one precomputed table does not serve every weft install.
import { scryptSync } from 'node:crypto';
import { WeftError } from '../../errors.ts';
import { PSK_LEN } from './noise.ts';

export const PSK_SALT_PREFIX = 'weft-mesh-v1';
export const SCRYPT_PARAMS = { N: 2 ** 14, r: 8, p: 1, maxmem: 32 * 1024 * 1024 } as const;

/** scrypt(password, salt = "weft-mesh-v1" + meshSalt, N=2^14, r=8, p=1) -> 32 bytes. */
export function derivePsk(password: string | Buffer, meshSalt: string): Buffer {
  if (password.length === 0) throw new WeftError('WEFT_INVALID_CONFIG', 'the mesh password is empty; put a long random secret in the password file (or WEAVE_PASSWORD), or leave it unset for an unencrypted mesh');
  return scryptSync(password, Buffer.from(PSK_SALT_PREFIX + meshSalt, 'utf8'), PSK_LEN, SCRYPT_PARAMS);
}

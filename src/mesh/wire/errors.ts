// Why a mesh connection failed or closed, as one error type with a machine-readable reason.
// The integrator decides from `reason` (never retry 'self', throttle logs per reason and
// address) and shows `message` to users, so every message names the peer and the next step.
import { WeftError } from '../../errors.ts';

export type MeshErrorReason =
  | 'version' // no common protocol version
  | 'mesh' // another mesh: IPALLOC_RANGE or block size differ
  | 'encryption' // a password on one side only
  | 'auth' // different passwords, or a frame that failed authentication
  | 'timeout' // handshake too slow, or an established channel went silent
  | 'oversized' // a length prefix over the bound
  | 'garbage' // bytes that are not our protocol, or a truncated frame
  | 'identity' // the peer's name, uid, nickname or port is malformed
  | 'self' // we dialed ourselves (same name and uid)
  | 'slow' // the peer does not read: our write queue went over its bound
  | 'busy' // the listener is at its bound of handshakes in progress or accept rate
  | 'connect' // the TCP connection could not be made
  | 'aborted' // the dial was aborted by its signal
  | 'closed'; // the other end or the network closed the connection

export const MESH_ERROR_REASONS: readonly MeshErrorReason[] = [
  'version', 'mesh', 'encryption', 'auth', 'timeout', 'oversized', 'garbage', 'identity', 'self', 'slow', 'busy', 'connect', 'aborted', 'closed',
];

/** Used both for handshake refusals and for why an established channel closed. */
export class MeshHandshakeError extends WeftError {
  readonly reason: MeshErrorReason;
  /** What to tell the peer in a refuse frame (its point of view); defaults to the message. */
  readonly peerText: string;

  constructor(reason: MeshErrorReason, message: string, options: { peerText?: string; cause?: unknown } = {}) {
    super('WEFT_MESH_HANDSHAKE', message, options.cause === undefined ? {} : { cause: options.cause });
    this.name = 'MeshHandshakeError';
    this.reason = reason;
    this.peerText = options.peerText ?? message;
  }
}

export function isMeshErrorReason(value: unknown): value is MeshErrorReason {
  return typeof value === 'string' && (MESH_ERROR_REASONS as readonly string[]).includes(value);
}

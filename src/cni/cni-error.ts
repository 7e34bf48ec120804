// The CNI error object and the single place where weft's error codes become CNI codes.
import { WeftError, type WeftErrorCode } from '../errors.ts';
import { CniErrorCodes } from './spec.ts';

export interface CniErrorJson {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

const codeFor: Record<WeftErrorCode, number> = {
  WEFT_UNSUPPORTED_VERSION: CniErrorCodes.incompatibleVersion,
  WEFT_INVALID_CONFIG: CniErrorCodes.invalidConfig,
  WEFT_INVALID_ENV: CniErrorCodes.invalidEnvironment,
  WEFT_IO: CniErrorCodes.ioFailure,
  WEFT_DECODE: CniErrorCodes.decodeFailure,
  WEFT_NETNS: CniErrorCodes.invalidNetns,
  // No subnet.env usually means the node agent has not started yet: the runtime should retry.
  WEFT_SUBNET_FILE: CniErrorCodes.tryAgainLater,
  WEFT_NOT_READY: CniErrorCodes.tryAgainLater,
  WEFT_IPAM_EXHAUSTED: CniErrorCodes.addressesExhausted,
  WEFT_IPAM_CONFLICT: CniErrorCodes.addressConflict,
  WEFT_NETLINK: CniErrorCodes.kernelRefused,
  WEFT_FIREWALL: CniErrorCodes.firewallFailed,
  WEFT_CHECK_FAILED: CniErrorCodes.checkFailed,
  WEFT_LAB: CniErrorCodes.internal,
  // The mesh's and the Kubernetes API's own troubles never reach a CNI caller directly; should one, it is internal.
  WEFT_MESH_HANDSHAKE: CniErrorCodes.internal,
  WEFT_KUBE: CniErrorCodes.internal,
  WEFT_FASTPATH: CniErrorCodes.internal,
  WEFT_MESH_STATE: CniErrorCodes.internal,
  WEFT_INTERNAL: CniErrorCodes.internal,
};

/** An error that already carries its CNI code (for the few cases with no WeftError twin). */
export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;
  constructor(code: number, msg: string, details?: string) {
    super(msg);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }
}

export function toCniError(e: unknown, cniVersion?: string): CniErrorJson {
  let out: CniErrorJson;
  if (e instanceof CniError) out = { code: e.code, msg: e.message, ...(e.details ? { details: e.details } : {}) };
  else if (e instanceof WeftError) out = { code: codeFor[e.code], msg: e.message, ...(e.details ? { details: e.details } : {}) };
  else out = { code: CniErrorCodes.internal, msg: `internal error: ${e instanceof Error ? e.message : String(e)}` };
  return cniVersion ? { cniVersion, ...out } : out;
}

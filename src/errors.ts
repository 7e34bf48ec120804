// One error type for the whole project. `code` is stable and machine-readable; the message
// names the problem and, where we can tell, what to do next. Layers that speak a protocol
// (CNI, the CLI) map codes onto their own conventions in one place each.
export type WeftErrorCode =
  | 'WEFT_INVALID_CONFIG' // a config file or stdin config is wrong: names the field and value
  | 'WEFT_DECODE' // input is not parseable (JSON, subnet.env, a wire frame)
  | 'WEFT_INVALID_ENV' // required environment variables are missing or malformed
  | 'WEFT_UNSUPPORTED_VERSION' // a CNI version we do not speak
  | 'WEFT_SUBNET_FILE' // subnet.env missing or malformed
  | 'WEFT_IPAM_EXHAUSTED' // no free address left
  | 'WEFT_IPAM_CONFLICT' // a requested or existing allocation conflicts
  | 'WEFT_NETNS' // the network namespace cannot be opened
  | 'WEFT_NETLINK' // the kernel refused a netlink request
  | 'WEFT_FIREWALL' // iptables/nftables failed
  | 'WEFT_NOT_READY' // a dependency is not up yet; retry later
  | 'WEFT_IO' // reading or writing a file failed
  | 'WEFT_LAB' // the lab could not do what was asked
  | 'WEFT_CHECK_FAILED' // CNI CHECK found the attachment not as ADD left it
  | 'WEFT_MESH_HANDSHAKE' // a mesh peer connection was refused (version, mesh, password, identity)
  | 'WEFT_MESH_STATE' // a mesh peer's state (block map, records) is malformed or inconsistent
  | 'WEFT_KUBE' // the Kubernetes API refused a request: names the Status message
  | 'WEFT_FASTPATH' // the eBPF fast path cannot load, attach or update: names the kernel's reason
  | 'WEFT_INTERNAL';

export class WeftError extends Error {
  readonly code: WeftErrorCode;
  readonly details: string | undefined;

  constructor(code: WeftErrorCode, message: string, options: { cause?: unknown; details?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'WeftError';
    this.code = code;
    this.details = options.details;
  }
}

export function isWeftError(e: unknown, code?: WeftErrorCode): e is WeftError {
  return e instanceof WeftError && (code === undefined || e.code === code);
}

/** The errno-style code of a system error (ENOENT, EEXIST, ...), if it has one. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}

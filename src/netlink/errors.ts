// Kernel refusals as WeftError('WEFT_NETLINK'), with the errno kept as data so callers can
// make "ensure" operations idempotent (exists / notFound) without parsing messages.
import { getSystemErrorMessage, getSystemErrorName } from 'node:util';
import { WeftError } from '../errors.ts';
import type { NlError } from './codec.ts';

// The errnos rtnetlink answers with, named and worded as glibc (and so `ip`) does; libuv's
// wording ("operation not supported on socket") misleads for netlink. Others fall back to libuv.
const KNOWN: Record<number, [string, string]> = {
  1: ['EPERM', 'Operation not permitted'],
  2: ['ENOENT', 'No such file or directory'],
  3: ['ESRCH', 'No such process'],
  12: ['ENOMEM', 'Cannot allocate memory'],
  13: ['EACCES', 'Permission denied'],
  16: ['EBUSY', 'Device or resource busy'],
  17: ['EEXIST', 'File exists'],
  19: ['ENODEV', 'No such device'],
  22: ['EINVAL', 'Invalid argument'],
  28: ['ENOSPC', 'No space left on device'],
  34: ['ERANGE', 'Numerical result out of range'],
  90: ['EMSGSIZE', 'Message too long'],
  93: ['EPROTONOSUPPORT', 'Protocol not supported'],
  95: ['EOPNOTSUPP', 'Operation not supported'],
  97: ['EAFNOSUPPORT', 'Address family not supported by protocol'],
  98: ['EADDRINUSE', 'Address already in use'],
  99: ['EADDRNOTAVAIL', 'Cannot assign requested address'],
  101: ['ENETUNREACH', 'Network is unreachable'],
  105: ['ENOBUFS', 'No buffer space available'],
};

function errnoName(errno: number): string {
  const known = KNOWN[errno];
  if (known) return known[0];
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}

function errnoText(errno: number): string {
  const known = KNOWN[errno];
  if (known) return known[1];
  try {
    return getSystemErrorMessage(-errno);
  } catch {
    return 'unknown error';
  }
}

// "Not there" has several spellings depending on the object: ENODEV (link), ENOENT (neighbour,
// FDB), ESRCH (route), EADDRNOTAVAIL (IPv4 address).
const NOT_FOUND = new Set(['ENODEV', 'ENOENT', 'ESRCH', 'EADDRNOTAVAIL']);

export class NetlinkError extends WeftError {
  /** What we asked for, e.g. "add address 10.1.2.3/24 to link eth0". */
  readonly operation: string;
  /** Positive errno, e.g. 17. */
  readonly errno: number;
  /** Its name, e.g. "EEXIST". */
  readonly errnoName: string;
  /** The kernel's extended-ack message, when it sent one. */
  readonly kernelMessage: string | undefined;

  constructor(operation: string, reply: Pick<NlError, 'errno' | 'message'>) {
    const name = errnoName(reply.errno);
    const text = `${name} (${errnoText(reply.errno)})${reply.message ? `: ${reply.message}` : ''}`;
    super('WEFT_NETLINK', `${operation}: the kernel said ${text}`);
    this.name = 'NetlinkError';
    this.operation = operation;
    this.errno = reply.errno;
    this.errnoName = name;
    this.kernelMessage = reply.message;
  }

  /** The object already exists (EEXIST): an "ensure" caller can treat this as success. */
  get exists(): boolean {
    return this.errnoName === 'EEXIST';
  }

  /** The object (link, address, route, neighbour) does not exist. */
  get notFound(): boolean {
    return NOT_FOUND.has(this.errnoName);
  }
}

export function isNetlinkError(e: unknown): e is NetlinkError {
  return e instanceof NetlinkError;
}

/** True when e is a kernel EEXIST for a create request. */
export function isExists(e: unknown): boolean {
  return e instanceof NetlinkError && e.exists;
}

/** True when e says the object is absent (link, address, route, neighbour). */
export function isNotFound(e: unknown): boolean {
  return e instanceof NetlinkError && e.notFound;
}

export interface BatchFailure {
  /** Position of the failed request in the batch. */
  index: number;
  error: NetlinkError;
}

/** Some requests of a batch failed; the others were applied (the kernel does not roll back). */
export class NetlinkBatchError extends WeftError {
  readonly failures: BatchFailure[];
  readonly total: number;

  constructor(failures: BatchFailure[], total: number) {
    const first = failures[0];
    const head = first ? `request #${first.index} failed: ${first.error.message}` : 'no request failed';
    const more = failures.length > 1 ? ` (${failures.length} of ${total} failed in all)` : '';
    super('WEFT_NETLINK', `netlink batch of ${total}: ${head}${more}`, { cause: first?.error });
    this.name = 'NetlinkBatchError';
    this.failures = failures;
    this.total = total;
  }
}

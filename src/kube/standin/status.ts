// Status objects shaped like the real API server's (kind Status, reason, code, details), and
// the error that carries one through the stand-in's store to its HTTP layer.
import type { ResourceInfo } from './resources.ts';

export interface StatusCause { reason?: string; message: string; field?: string }
export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: { name?: string; group?: string; kind?: string; uid?: string; causes?: StatusCause[]; retryAfterSeconds?: number };
  code: number;
}

export class StatusError extends Error {
  readonly status: StatusBody;
  constructor(status: StatusBody) {
    super(status.message ?? status.reason ?? `HTTP ${status.code}`);
    this.name = 'StatusError';
    this.status = status;
  }
  get code(): number {
    return this.status.code;
  }
}

export function failure(code: number, reason: string, message: string, details?: StatusBody['details']): StatusError {
  const status: StatusBody = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
  if (details !== undefined) status.details = details;
  return new StatusError(status);
}

/** "leases.coordination.k8s.io" or "nodes": how the real server names a resource in messages. */
export function qualified(r: ResourceInfo): string {
  return r.group === '' ? r.name : `${r.name}.${r.group}`;
}

function details(r: ResourceInfo, name: string): StatusBody['details'] {
  return { name, group: r.group, kind: r.name };
}

export const notFound = (r: ResourceInfo, name: string): StatusError =>
  failure(404, 'NotFound', `${qualified(r)} "${name}" not found`, details(r, name));

export const alreadyExists = (r: ResourceInfo, name: string): StatusError =>
  failure(409, 'AlreadyExists', `${qualified(r)} "${name}" already exists`, details(r, name));

export const conflict = (r: ResourceInfo, name: string, why: string): StatusError =>
  failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(r)} "${name}": ${why}`, details(r, name));

export const modifiedConflict = (r: ResourceInfo, name: string): StatusError =>
  conflict(r, name, 'the object has been modified; please apply your changes to the latest version and try again');

/** 422: the real server names the Kind (not the resource) and lists each invalid field as a cause. */
export function invalid(r: ResourceInfo, name: string, causes: { field: string; message: string }[]): StatusError {
  const group = r.group === '' ? '' : `.${r.group}`;
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return failure(422, 'Invalid', `${r.kind}${group} "${name}" is invalid: ${text}`, {
    name, group: r.group, kind: r.kind,
    causes: causes.map((c) => ({ reason: 'FieldValueInvalid', message: c.message, field: c.field })),
  });
}

export const badRequest = (message: string): StatusError => failure(400, 'BadRequest', message);

export function success(r: ResourceInfo, name: string, uid: string | undefined): StatusBody {
  const d: NonNullable<StatusBody['details']> = { name, group: r.group, kind: r.name };
  if (uid !== undefined) d.uid = uid;
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: d, code: 200 };
}

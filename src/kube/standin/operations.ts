// What a request through the API does to the store, with the per-kind strategies of the real
// server: create (server-set fields, no resourceVersion), update (conditional unless the kind
// allows last-writer-wins), the status subresource (keeps spec, accepts metadata) versus the
// main endpoint (keeps status), patch (applied to the current object, CAS only when the patch
// carries a resourceVersion), delete (preconditions, Status or the object as the kind does).
import { randomBytes } from 'node:crypto';
import { RESOURCES, type ResourceInfo, type StandinResource } from './resources.ts';
import { badRequest, conflict, invalid, notFound, success, type StatusBody } from './status.ts';
import { jsonPatch, mergePatch, type PatchType } from './patch.ts';
import { decode, validate, validateUpdate, type KObject } from './validate.ts';
import type { Preconditions, Store } from './store.ts';

export type Subresource = 'status' | undefined;

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkNamespace(info: ResourceInfo, obj: KObject, ns: string | undefined): void {
  if (!info.namespaced) return;
  if (obj.metadata.namespace === undefined || obj.metadata.namespace === '') obj.metadata.namespace = ns;
  else if (obj.metadata.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
}

function generatedName(prefix: string): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return prefix + [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join('');
}

/** PrepareForCreate: what the real strategies reset on create. */
function prepareForCreate(info: ResourceInfo, obj: KObject): void {
  if (info.name === 'pods') obj.status = { phase: 'Pending' };
  if (info.name === 'namespaces') obj.status = { phase: 'Active' };
}

export function createObject(store: Store, r: StandinResource, ns: string | undefined, body: unknown, strategy: boolean): KObject {
  const info = RESOURCES[r];
  const obj = decode(info, body);
  checkNamespace(info, obj, ns);
  if (obj.metadata.name === '' && typeof obj.metadata.generateName === 'string' && obj.metadata.generateName !== '') {
    obj.metadata.name = generatedName(obj.metadata.generateName);
  }
  if (obj.metadata.resourceVersion !== undefined && obj.metadata.resourceVersion !== '') {
    throw invalid(info, obj.metadata.name, [{ field: 'metadata.resourceVersion', message: 'Invalid value: must be empty on create' }]);
  }
  delete obj.metadata.resourceVersion;
  if (strategy) prepareForCreate(info, obj);
  validate(info, obj);
  return store.create(r, obj);
}

function current(store: Store, info: ResourceInfo, ns: string | undefined, name: string): KObject {
  const old = store.get(info.name, ns, name);
  if (old === undefined) throw notFound(info, name);
  return old;
}

/** The shared tail of PUT and PATCH: strategy, validation, the conditional write. */
function write(store: Store, info: ResourceInfo, old: KObject, next: KObject, sub: Subresource, expectRv: string | undefined): KObject {
  if (next.metadata.uid !== undefined && next.metadata.uid !== '' && next.metadata.uid !== old.metadata.uid) {
    throw conflict(info, old.metadata.name, `Precondition failed: UID in precondition: ${next.metadata.uid}, UID in object meta: ${old.metadata.uid ?? ''}`);
  }
  if (info.statusSubresource) {
    if (sub === 'status') next.spec = structuredClone(old.spec);
    else next.status = structuredClone(old.status);
    if (next.spec === undefined) delete next.spec;
    if (next.status === undefined) delete next.status;
  }
  validate(info, next);
  validateUpdate(info, old, next);
  return store.replace(info.name, next, expectRv);
}

export function replaceObject(store: Store, r: StandinResource, ns: string | undefined, name: string, body: unknown, sub: Subresource): KObject {
  const info = RESOURCES[r];
  const next = decode(info, body);
  if (next.metadata.name !== name) throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
  checkNamespace(info, next, ns);
  const old = current(store, info, ns, name);
  const rv = next.metadata.resourceVersion;
  if ((rv === undefined || rv === '') && !info.unconditionalUpdate) {
    throw invalid(info, name, [{ field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);
  }
  return write(store, info, old, next, sub, rv);
}

export function patchObject(store: Store, r: StandinResource, ns: string | undefined, name: string, type: PatchType, patch: unknown, sub: Subresource): KObject {
  const info = RESOURCES[r];
  if (type !== 'json' && !isMap(patch)) throw badRequest('a merge patch must be a JSON object');
  const old = current(store, info, ns, name);
  const patched = type === 'json' ? jsonPatch(old, patch) : mergePatch(old, patch);
  const next = decode(info, patched);
  if (next.metadata.name !== name) throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
  checkNamespace(info, next, ns);
  // a patch is re-applied to the current object, so only a resourceVersion it carries itself is a CAS
  const rv = next.metadata.resourceVersion !== old.metadata.resourceVersion ? next.metadata.resourceVersion : undefined;
  return write(store, info, old, next, sub, rv ?? undefined);
}

function preconditionsOf(body: unknown): { pre: Preconditions; policy: string | undefined } {
  if (body === undefined) return { pre: {}, policy: undefined };
  if (!isMap(body)) throw badRequest('DeleteOptions must be a JSON object');
  if (body.dryRun !== undefined && !(Array.isArray(body.dryRun) && body.dryRun.length === 0)) throw badRequest('dryRun is not implemented by the weft stand-in API server');
  const pre: Preconditions = {};
  const p = body.preconditions;
  if (isMap(p)) {
    if (typeof p.uid === 'string') pre.uid = p.uid;
    if (typeof p.resourceVersion === 'string') pre.resourceVersion = p.resourceVersion;
  }
  const policy = typeof body.propagationPolicy === 'string' ? body.propagationPolicy : undefined;
  return { pre, policy };
}

export function deleteObject(store: Store, r: StandinResource, ns: string | undefined, name: string, body: unknown, queryPolicy: string | null): KObject | StatusBody {
  const info = RESOURCES[r];
  const { pre, policy } = preconditionsOf(body);
  const propagation = policy ?? queryPolicy ?? 'Background';
  if (propagation !== 'Background') throw badRequest(`propagationPolicy ${propagation} is not implemented by the weft stand-in API server (only Background)`);
  const last = store.remove(r, ns, name, pre);
  // pods answer with the object, as their strategy says; the rest with a Success Status
  return r === 'pods' ? last : success(info, name, last.metadata.uid);
}

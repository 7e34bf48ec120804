// Validation the real API server applies to what weft writes: decoding (types, MicroTime)
// answers 400 BadRequest, field rules answer 422 Invalid, as there.
import { badRequest, invalid } from './status.ts';
import type { ResourceInfo } from './resources.ts';

export interface Meta {
  name: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  [k: string]: unknown;
}
export interface OwnerReference { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }
export interface KObject { apiVersion?: string; kind?: string; metadata: Meta; [k: string]: unknown }

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
/** apimachinery's MicroTime layout 2006-01-02T15:04:05.000000Z07:00: exactly six fractional digits */
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;
export const MAX_ANNOTATION_BYTES = 256 * 1024;

function decodeError(r: ResourceInfo, why: string): Error {
  return badRequest(`${r.kind} in version "${r.version}" cannot be handled as a ${r.kind}: ${why}`);
}

function stringMap(r: ResourceInfo, v: unknown, field: string): void {
  if (v === undefined || v === null) return;
  if (!isMap(v) || Object.values(v).some((x) => typeof x !== 'string')) throw decodeError(r, `json: cannot unmarshal ${field} into Go value of type map[string]string`);
}

/** The shape checks decoding does: wrong types never reach the store. */
export function decode(r: ResourceInfo, body: unknown): KObject {
  if (!isMap(body)) throw badRequest("couldn't get version/kind; json parse error: the body is not a JSON object");
  if (body.kind !== undefined && body.kind !== r.kind) throw badRequest(`the kind of the provided object (${String(body.kind)}) does not match the kind of the request (${r.kind})`);
  const meta = body.metadata ?? {};
  if (!isMap(meta)) throw decodeError(r, 'json: cannot unmarshal metadata into Go struct field of type v1.ObjectMeta');
  for (const f of ['name', 'generateName', 'namespace', 'uid', 'resourceVersion'] as const) {
    if (meta[f] !== undefined && typeof meta[f] !== 'string') throw decodeError(r, `json: cannot unmarshal metadata.${f} into Go value of type string`);
  }
  stringMap(r, meta.labels, 'metadata.labels');
  stringMap(r, meta.annotations, 'metadata.annotations');
  if (meta.ownerReferences !== undefined && !Array.isArray(meta.ownerReferences)) throw decodeError(r, 'json: cannot unmarshal metadata.ownerReferences into Go value of type []v1.OwnerReference');
  if (r.name === 'leases') decodeLease(r, body.spec);
  if (r.name === 'configmaps') stringMap(r, body.data, 'data');
  return { ...body, metadata: { ...meta, name: typeof meta.name === 'string' ? meta.name : '' } } as KObject;
}

function decodeLease(r: ResourceInfo, spec: unknown): void {
  if (spec === undefined || spec === null) return;
  if (!isMap(spec)) throw decodeError(r, 'json: cannot unmarshal spec into Go struct field of type v1.LeaseSpec');
  for (const f of ['acquireTime', 'renewTime']) {
    const v = spec[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || !MICRO_TIME.test(v)) {
      throw decodeError(r, `parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": spec.${f} needs exactly six fractional digits`);
    }
  }
  for (const f of ['leaseDurationSeconds', 'leaseTransitions']) {
    const v = spec[f];
    if (v !== undefined && v !== null && !Number.isInteger(v)) throw decodeError(r, `json: cannot unmarshal spec.${f} into Go value of type int32`);
  }
  if (spec.holderIdentity !== undefined && spec.holderIdentity !== null && typeof spec.holderIdentity !== 'string') {
    throw decodeError(r, 'json: cannot unmarshal spec.holderIdentity into Go value of type string');
  }
}

function qualifiedKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? '' : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (slash >= 0 && (prefix.length > 253 || !SUBDOMAIN.test(prefix))) return 'prefix part must be a lowercase RFC 1123 subdomain';
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) return "name part must consist of alphanumeric characters, '-', '_' or '.', at most 63, and must start and end with an alphanumeric character";
  return undefined;
}

/** Field rules (422): names, label keys and values, annotation size, owner references, kind rules. */
export function validate(r: ResourceInfo, obj: KObject): void {
  const causes: { field: string; message: string }[] = [];
  const m = obj.metadata;
  const nameOk = r.name === 'namespaces' ? m.name.length <= 63 && LABEL.test(m.name) : m.name.length <= 253 && SUBDOMAIN.test(m.name);
  if (m.name === '') causes.push({ field: 'metadata.name', message: 'Required value: name or generateName is required' });
  else if (!nameOk) causes.push({ field: 'metadata.name', message: `Invalid value: "${m.name}": a lowercase RFC 1123 ${r.name === 'namespaces' ? 'label' : 'subdomain'} is required` });
  for (const [k, v] of Object.entries(m.labels ?? {})) {
    const p = qualifiedKeyProblem(k);
    if (p !== undefined) causes.push({ field: 'metadata.labels', message: `Invalid value: "${k}": ${p}` });
    if (v.length > 63 || !LABEL_VALUE.test(v)) causes.push({ field: 'metadata.labels', message: `Invalid value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', at most 63` });
  }
  let annotationBytes = 0;
  for (const [k, v] of Object.entries(m.annotations ?? {})) {
    const p = qualifiedKeyProblem(k);
    if (p !== undefined) causes.push({ field: 'metadata.annotations', message: `Invalid value: "${k}": ${p}` });
    annotationBytes += Buffer.byteLength(k) + Buffer.byteLength(v);
  }
  if (annotationBytes > MAX_ANNOTATION_BYTES) causes.push({ field: 'metadata.annotations', message: `Too long: must have at most ${MAX_ANNOTATION_BYTES} bytes` });
  (m.ownerReferences ?? []).forEach((o, i) => {
    const ref = o as unknown as Record<string, unknown>;
    for (const f of ['apiVersion', 'kind', 'name', 'uid']) {
      if (typeof ref[f] !== 'string' || ref[f] === '') causes.push({ field: `metadata.ownerReferences[${i}].${f}`, message: 'Required value' });
    }
  });
  const spec = isMap(obj.spec) ? obj.spec : {};
  if (r.name === 'leases') {
    if (typeof spec.leaseDurationSeconds === 'number' && spec.leaseDurationSeconds <= 0) causes.push({ field: 'spec.leaseDurationSeconds', message: 'Invalid value: must be greater than 0' });
    if (typeof spec.leaseTransitions === 'number' && spec.leaseTransitions < 0) causes.push({ field: 'spec.leaseTransitions', message: 'Invalid value: must be greater than or equal to 0' });
  }
  if (causes.length > 0) throw invalid(r, m.name, causes);
}

/** Kind rules that compare with the stored object. */
export function validateUpdate(r: ResourceInfo, old: KObject, next: KObject): void {
  if (r.name !== 'nodes') return;
  const oldCidr = isMap(old.spec) ? old.spec.podCIDR : undefined;
  const newCidr = isMap(next.spec) ? next.spec.podCIDR : undefined;
  if ((oldCidr ?? '') !== '' && oldCidr !== newCidr) {
    throw invalid(r, next.metadata.name, [{ field: 'spec.podCIDR', message: 'Forbidden: node updates may not change podCIDR except from "" to valid' }]);
  }
}

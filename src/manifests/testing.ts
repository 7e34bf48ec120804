// Offline validation of rendered objects, for the tests (kubernetes-models is a dev dependency).
// Two checks, because neither is enough alone:
//   - kubernetes-models' JSON-schema validators (types, required fields, formats);
//   - an unknown-field walk: the upstream OpenAPI schemas allow any extra property, so a typo
//     such as `hostNetwrok: true` passes the first check (and kubectl would drop it with only a
//     warning). The walk follows @kubernetes/client-node's generated models, whose
//     attributeTypeMap lists every field of every API type with its type.
import { Namespace, ServiceAccount, ConfigMap } from 'kubernetes-models/v1';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as clientModels from '@kubernetes/client-node/dist/gen/models/all.js';

interface Validating { validate(): void }
type SchemaModel = new (data: never) => Validating;

const SCHEMA_MODELS: Record<string, SchemaModel> = {
  'v1/Namespace': Namespace, 'v1/ServiceAccount': ServiceAccount, 'v1/ConfigMap': ConfigMap,
  'apps/v1/DaemonSet': DaemonSet,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole, 'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role, 'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
};

interface Attribute { baseName: string; type: string; format?: string }
const MODELS = clientModels as unknown as Record<string, { attributeTypeMap?: Attribute[] } | undefined>;

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Problems of `value` against client-node's type name `type` (e.g. "V1PodSpec", "Array<string>"). */
function walk(value: unknown, type: string, path: string, out: string[]): void {
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  const expect = (ok: boolean, what: string): void => {
    if (!ok) out.push(`${path}: expected ${what}, got ${typeOf(value)} ${JSON.stringify(value)}`);
  };
  if (array) {
    expect(Array.isArray(value), 'an array');
    if (Array.isArray(value)) value.forEach((item, i) => walk(item, array[1]!, `${path}[${i}]`, out));
    return;
  }
  if (map) {
    expect(typeOf(value) === 'object', 'an object');
    if (typeOf(value) === 'object') for (const [k, v] of Object.entries(value as object)) walk(v, map[1]!, `${path}.${k}`, out);
    return;
  }
  switch (type) {
    case 'string': case 'Date': case 'V1MicroTime': return expect(typeof value === 'string', 'a string');
    case 'number': return expect(typeof value === 'number', 'a number');
    case 'boolean': return expect(typeof value === 'boolean', 'a boolean');
    case 'IntOrString': return expect(typeof value === 'string' || Number.isInteger(value), 'an integer or a string');
    case 'any': case 'object': return;
  }
  const fields = MODELS[type]?.attributeTypeMap;
  if (fields === undefined) {
    out.push(`${path}: no model for type ${type} (validator out of date?)`);
    return;
  }
  expect(typeOf(value) === 'object', `an object (${type})`);
  if (typeOf(value) !== 'object') return;
  const byName = new Map(fields.map((f) => [f.baseName, f]));
  for (const [key, v] of Object.entries(value as object)) {
    const field = byName.get(key);
    if (field === undefined) out.push(`${path}.${key}: unknown field of ${type}`);
    else walk(v, field.type, `${path}.${key}`, out);
  }
}

/** Every problem found in one object (both checks); [] when it is valid. */
export function validateObject(obj: { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown } }): string[] {
  const id = `${String(obj.apiVersion)}/${String(obj.kind)}`;
  const where = `${String(obj.kind)}/${String(obj.metadata?.name)}`;
  const model = SCHEMA_MODELS[id];
  if (model === undefined) return [`${where}: no schema for ${id}`];
  const problems: string[] = [];
  try {
    new model(structuredClone(obj) as never).validate();
  } catch (e) {
    problems.push(`${where}: schema: ${(e as Error).message}`);
  }
  walk(obj, `V1${String(obj.kind)}`, where, problems);
  return problems;
}

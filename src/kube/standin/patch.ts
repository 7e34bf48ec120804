// PATCH bodies: JSON merge patch (RFC 7386), strategic merge patch treated as a merge patch
// (the same for maps, which is all weft patches; list merge keys are not modelled), and
// JSON patch (RFC 6902: add, remove, replace, test), client-node's default patch type.
import { badRequest, failure } from './status.ts';

export type PatchType = 'merge' | 'strategic' | 'json';

export function patchTypeOf(contentType: string | undefined): PatchType {
  const base = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  switch (base) {
    case 'application/merge-patch+json': return 'merge';
    case 'application/strategic-merge-patch+json': return 'strategic';
    case 'application/json-patch+json': return 'json';
    case 'application/apply-patch+yaml':
    case 'application/apply-patch+cbor':
      throw failure(415, 'UnsupportedMediaType', 'server-side apply is not implemented by the weft stand-in API server');
    default:
      throw failure(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
  }
}

const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isMap(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = isMap(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k.startsWith('$setElementOrder/') || k.startsWith('$deleteFromPrimitiveList/') || k.startsWith('$retainKeys')) {
      throw badRequest(`strategic merge directive ${k} is not implemented by the weft stand-in API server`);
    }
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw badRequest(`the json patch path "${path}" does not start with /`);
  return path.slice(1).split('/').map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function parentOf(doc: unknown, parts: string[], path: string): { parent: Record<string, unknown> | unknown[]; key: string } {
  let cur = doc;
  for (const p of parts.slice(0, -1)) {
    cur = Array.isArray(cur) ? cur[Number(p)] : isMap(cur) ? cur[p] : undefined;
    if (cur === undefined) throw failure(422, 'Invalid', `the json patch path "${path}" does not exist`);
  }
  if (!isMap(cur) && !Array.isArray(cur)) throw failure(422, 'Invalid', `the json patch path "${path}" does not exist`);
  return { parent: cur, key: parts[parts.length - 1] ?? '' };
}

export function jsonPatch(doc: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('a json patch must be an array of operations');
  const out = structuredClone(doc);
  for (const op of ops) {
    if (!isMap(op) || typeof op.op !== 'string' || typeof op.path !== 'string') throw badRequest('a json patch operation needs "op" and "path"');
    const parts = pointer(op.path);
    if (parts.length === 0) throw badRequest('a json patch may not replace the whole object');
    const { parent, key } = parentOf(out, parts, op.path);
    const has = Array.isArray(parent) ? Number(key) < parent.length : Object.hasOwn(parent, key);
    switch (op.op) {
      case 'add':
      case 'replace':
        if (op.op === 'replace' && !has) throw failure(422, 'Invalid', `the json patch path "${op.path}" does not exist`);
        if (Array.isArray(parent)) {
          const i = key === '-' ? parent.length : Number(key);
          parent.splice(i, op.op === 'replace' ? 1 : 0, structuredClone(op.value));
        } else parent[key] = structuredClone(op.value);
        break;
      case 'remove':
        if (!has) throw failure(422, 'Invalid', `the json patch path "${op.path}" does not exist`);
        if (Array.isArray(parent)) parent.splice(Number(key), 1);
        else delete parent[key];
        break;
      case 'test': {
        const cur = Array.isArray(parent) ? parent[Number(key)] : parent[key];
        if (JSON.stringify(cur) !== JSON.stringify(op.value)) throw failure(422, 'Invalid', `the json patch test of "${op.path}" failed`);
        break;
      }
      default:
        throw badRequest(`json patch operation "${op.op}" is not implemented by the weft stand-in API server`);
    }
  }
  return out;
}

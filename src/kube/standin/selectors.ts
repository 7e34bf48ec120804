// Label and field selectors as the real API server parses them (the subset weft and kubectl
// use): equality (=, ==, !=), existence (key, !key) and set-based (in, notin) requirements.
import { badRequest } from './status.ts';
import type { ResourceInfo } from './resources.ts';

export type Matcher = (obj: StoredLike) => boolean;
interface StoredLike { metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: unknown }

/** Commas inside "in (a,b)" do not separate requirements. */
function splitRequirements(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')') depth--;
    else if (s[i] === ',' && depth === 0) {
      out.push(s.slice(start, i));
      start = i + 1;
    }
  }
  out.push(s.slice(start));
  return out.map((r) => r.trim()).filter((r) => r !== '');
}

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function labelRequirement(req: string): (labels: Record<string, string>) => boolean {
  const set = /^(\S+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(req);
  if (set !== null) {
    const [, key = '', op, list = ''] = set;
    const values = new Set(list.split(',').map((v) => v.trim()));
    checkKey(key);
    for (const v of values) checkValue(v);
    return op === 'in' ? (l) => Object.hasOwn(l, key) && values.has(l[key] ?? '') : (l) => !Object.hasOwn(l, key) || !values.has(l[key] ?? '');
  }
  const eq = /^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(req);
  if (eq !== null) {
    const [, key = '', op, value = ''] = eq;
    checkKey(key);
    checkValue(value);
    return op === '!=' ? (l) => l[key] !== value : (l) => Object.hasOwn(l, key) && l[key] === value;
  }
  if (req.startsWith('!')) {
    const key = req.slice(1).trim();
    checkKey(key);
    return (l) => !Object.hasOwn(l, key);
  }
  checkKey(req);
  return (l) => Object.hasOwn(l, req);

  function checkKey(k: string): void {
    if (!KEY.test(k) || k.length > 317) throw badRequest(`unable to parse requirement: invalid label key "${k}"`);
  }
  function checkValue(v: string): void {
    if (!VALUE.test(v) || v.length > 63) throw badRequest(`unable to parse requirement: invalid label value: "${v}"`);
  }
}

export function parseLabelSelector(selector: string | null): Matcher {
  if (selector === null || selector.trim() === '') return () => true;
  const reqs = splitRequirements(selector).map(labelRequirement);
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    return reqs.every((r) => r(labels));
  };
}

function fieldValue(obj: StoredLike, path: string): string {
  let v: unknown = obj;
  for (const part of path.split('.')) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[part] : undefined;
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Only the fields the real server indexes for this kind; anything else is refused as it does. */
export function parseFieldSelector(selector: string | null, r: ResourceInfo): Matcher {
  if (selector === null || selector.trim() === '') return () => true;
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...r.extraFields]);
  const reqs = splitRequirements(selector).map((req) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(req);
    if (m === null) throw badRequest(`invalid field selector: "${req}"`);
    const [, field = '', op, value = ''] = m;
    if (!allowed.has(field.trim())) throw badRequest(`field label not supported: ${field.trim()}`);
    const path = field.trim();
    return op === '!=' ? (o: StoredLike) => fieldValue(o, path) !== value : (o: StoredLike) => fieldValue(o, path) === value;
  });
  return (obj) => reqs.every((r) => r(obj));
}

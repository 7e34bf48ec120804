// URL paths of the API the stand-in serves, parsed into resource, namespace, name and
// subresource. Anything else is "not implemented", answered with a 404 Status saying so.
import { RESOURCES, isStandinResource, type StandinResource } from './resources.ts';

export interface Route {
  resource: StandinResource;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
}

/** ['api','v1'] → core, ['apis','coordination.k8s.io','v1'] → coordination; the rest of the path */
function groupAndRest(parts: string[]): { group: string; rest: string[] } | undefined {
  if (parts[0] === 'api' && parts[1] === 'v1') return { group: '', rest: parts.slice(2) };
  if (parts[0] === 'apis' && parts[1] === 'coordination.k8s.io' && parts[2] === 'v1') return { group: 'coordination.k8s.io', rest: parts.slice(3) };
  return undefined;
}

function inGroup(name: string, group: string): name is StandinResource {
  return isStandinResource(name) && RESOURCES[name].group === group;
}

export function parseRoute(pathname: string): Route | undefined {
  let parts: string[];
  try {
    parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent);
  } catch {
    return undefined;
  }
  const g = groupAndRest(parts);
  if (g === undefined) return undefined;
  const { group, rest } = g;
  const [a, b, c, d, e, ...more] = rest;
  if (a === 'namespaces' && b !== undefined && c !== undefined && inGroup(c, group) && RESOURCES[c].namespaced) {
    if (more.length > 0) return undefined;
    return { resource: c, namespace: b, name: d, subresource: e };
  }
  if (a !== undefined && inGroup(a, group) && d === undefined) {
    // cluster-scoped objects, or a namespaced kind listed across all namespaces
    if (RESOURCES[a].namespaced && b !== undefined) return undefined;
    return { resource: a, namespace: undefined, name: b, subresource: c };
  }
  return undefined;
}

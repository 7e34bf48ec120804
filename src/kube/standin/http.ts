// The HTTP face of the stand-in: bearer-token check, outage switch, bounded request bodies,
// routing to the operations, and every error as a Status body with the matching HTTP code.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseRoute, type Route } from './routes.ts';
import { RESOURCES, apiVersionOf } from './resources.ts';
import { parseFieldSelector, parseLabelSelector } from './selectors.ts';
import { StatusError, badRequest, failure, notFound, type StatusBody } from './status.ts';
import { patchTypeOf } from './patch.ts';
import { createObject, deleteObject, patchObject, replaceObject, type Subresource } from './operations.ts';
import type { Store } from './store.ts';
import type { Watches } from './watch.ts';

export interface HttpContext {
  store: Store;
  watches: Watches;
  token: string | undefined;
  maxBodyBytes: number;
  available(): boolean;
  podLog(namespace: string, name: string): string | undefined;
  record(method: string, path: string, query: string): void;
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: ServerResponse, s: StatusBody): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (s.details?.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(s.details.retryAfterSeconds));
  sendJson(res, s.code, s);
}

/** Reads at most max bytes; a larger body is drained (up to a hard cap) and refused with 413. */
function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= max) chunks.push(c);
      else if (size > max * 16) req.destroy();
    });
    req.on('end', () => {
      if (size > max) reject(failure(413, 'RequestEntityTooLarge', `Request entity too large: limit is ${max}`));
      else resolve(Buffer.concat(chunks));
    });
    req.on('error', reject);
  });
}

async function jsonBody(req: IncomingMessage, max: number, optional: boolean): Promise<unknown> {
  const raw = await readBody(req, max);
  if (raw.length === 0) {
    if (optional) return undefined;
    throw badRequest("couldn't get version/kind; json parse error: unexpected end of JSON input");
  }
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw badRequest(`couldn't get version/kind; json parse error: ${(e as Error).message}`);
  }
}

function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (token === undefined) return true;
  const got = Buffer.from(req.headers.authorization ?? '');
  const want = Buffer.from(`Bearer ${token}`);
  return got.length === want.length && timingSafeEqual(got, want);
}

const NOT_IMPLEMENTED = (what: string): StatusError =>
  failure(404, 'NotFound', `${what} is not implemented by the weft stand-in API server (it serves only what weft uses; it is not Kubernetes)`);

function list(ctx: HttpContext, route: Route, q: URLSearchParams): object {
  const info = RESOURCES[route.resource];
  const labels = parseLabelSelector(q.get('labelSelector'));
  const fields = parseFieldSelector(q.get('fieldSelector'), info);
  const items = ctx.store.list(route.resource, route.namespace).filter((o) => labels(o) && fields(o));
  // items of a typed list carry no kind/apiVersion on the real server either
  for (const o of items) {
    delete o.kind;
    delete o.apiVersion;
  }
  return { kind: `${info.kind}List`, apiVersion: apiVersionOf(info), metadata: { resourceVersion: String(ctx.store.resourceVersion) }, items };
}

function watch(ctx: HttpContext, route: Route, q: URLSearchParams, res: ServerResponse): void {
  if (q.get('sendInitialEvents') !== null) throw badRequest('sendInitialEvents (watch-list) is not implemented by the weft stand-in API server');
  const info = RESOURCES[route.resource];
  const labels = parseLabelSelector(q.get('labelSelector'));
  const fields = parseFieldSelector(q.get('fieldSelector'), info);
  const t = q.get('timeoutSeconds');
  const timeoutSeconds = t === null ? undefined : Number(t);
  if (timeoutSeconds !== undefined && !(Number.isInteger(timeoutSeconds) && timeoutSeconds >= 0)) throw badRequest(`invalid timeoutSeconds "${t}"`);
  ctx.watches.serve(res, {
    resource: route.resource, namespace: route.namespace, matches: (o) => labels(o) && fields(o),
    resourceVersion: q.get('resourceVersion') ?? undefined, timeoutSeconds: timeoutSeconds === 0 ? undefined : timeoutSeconds,
    bookmarks: q.get('allowWatchBookmarks') === 'true',
  });
}

function subresourceOf(route: Route): Subresource {
  if (route.subresource === undefined) return undefined;
  if (route.subresource === 'status' && RESOURCES[route.resource].statusSubresource) return 'status';
  throw NOT_IMPLEMENTED(`${route.resource}/${route.subresource}`);
}

async function dispatch(ctx: HttpContext, req: IncomingMessage, res: ServerResponse, route: Route, q: URLSearchParams): Promise<void> {
  const { store } = ctx;
  const { resource: r, namespace: ns, name } = route;
  const info = RESOURCES[r];
  const method = req.method ?? 'GET';
  if (q.get('dryRun') !== null) throw badRequest('dryRun is not implemented by the weft stand-in API server');
  if (name === undefined) {
    if (method === 'GET') {
      if (q.get('watch') === 'true' || q.get('watch') === '1') return watch(ctx, route, q, res);
      return sendJson(res, 200, list(ctx, route, q));
    }
    if (method === 'POST' && (ns !== undefined || !info.namespaced)) {
      return sendJson(res, 201, createObject(store, r, ns, await jsonBody(req, ctx.maxBodyBytes, false), true));
    }
    throw NOT_IMPLEMENTED(`${method} on the ${r} collection`);
  }
  if (r === 'pods' && route.subresource === 'log' && method === 'GET') {
    if (store.get('pods', ns, name) === undefined) throw notFound(info, name);
    return podLog(ctx, ns ?? '', name, q, res);
  }
  const sub = subresourceOf(route);
  switch (method) {
    case 'GET': {
      const o = store.get(r, ns, name);
      if (o === undefined) throw notFound(info, name);
      return sendJson(res, 200, o);
    }
    case 'PUT':
      return sendJson(res, 200, replaceObject(store, r, ns, name, await jsonBody(req, ctx.maxBodyBytes, false), sub));
    case 'PATCH': {
      const type = patchTypeOf(req.headers['content-type']);
      return sendJson(res, 200, patchObject(store, r, ns, name, type, await jsonBody(req, ctx.maxBodyBytes, false), sub));
    }
    case 'DELETE':
      if (sub !== undefined) break;
      return sendJson(res, 200, deleteObject(store, r, ns, name, await jsonBody(req, ctx.maxBodyBytes, true), q.get('propagationPolicy')));
  }
  throw NOT_IMPLEMENTED(`${method} on ${r}${sub === undefined ? '' : '/' + sub}`);
}

function podLog(ctx: HttpContext, ns: string, name: string, q: URLSearchParams, res: ServerResponse): void {
  let text = ctx.podLog(ns, name) ?? '';
  const tail = q.get('tailLines');
  if (tail !== null && Number.isInteger(Number(tail)) && Number(tail) >= 0) {
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    text = lines.slice(Math.max(0, lines.length - Number(tail))).map((l) => l + '\n').join('');
  }
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function misc(pathname: string, res: ServerResponse): boolean {
  if (pathname === '/healthz' || pathname === '/livez' || pathname === '/readyz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return true;
  }
  if (pathname === '/version') {
    sendJson(res, 200, { major: '1', minor: '36', gitVersion: 'v1.36.0-weft-standin', platform: 'linux/amd64' });
    return true;
  }
  return false;
}

export function handler(ctx: HttpContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://standin');
    ctx.record(req.method ?? 'GET', url.pathname, url.search.replace(/^\?/, ''));
    const fail = (e: unknown): void => {
      if (e instanceof StatusError) sendStatus(res, e.status);
      else sendStatus(res, failure(500, 'InternalError', `Internal error occurred: ${(e as Error).message ?? String(e)}`).status);
    };
    try {
      if (!ctx.available()) throw failure(503, 'ServiceUnavailable', 'the API server is unavailable (the stand-in is switched off)', { retryAfterSeconds: 1 });
      if (!authorized(req, ctx.token)) throw failure(401, 'Unauthorized', 'Unauthorized');
      if (misc(url.pathname, res)) return;
      const route = parseRoute(url.pathname);
      if (route === undefined) throw NOT_IMPLEMENTED(`the path ${url.pathname}`);
      dispatch(ctx, req, res, route, url.searchParams).catch(fail);
    } catch (e) {
      fail(e);
    }
  };
}

// Kubernetes API failures as WeftErrors that name the server, what failed and what to do.
// client-node throws ApiException with .code (the HTTP status) and .body as the raw response
// text, so the Status (reason, message) is parsed here; watch failures carry .statusCode;
// transport failures are undici's "fetch failed" with the system error as .cause.
import { STATUS_CODES } from 'node:http';
import { WeftError, errnoCode } from '../errors.ts';

export interface ApiFailure { code: number; reason: string | undefined; message: string | undefined }

const RBAC_HINT = "check the ServiceAccount's RBAC (ClusterRole weft)";

function parseStatus(body: unknown): { reason?: string; message?: string } {
  let v: unknown = body;
  if (typeof body === 'string') {
    try {
      v = JSON.parse(body);
    } catch {
      return body.length > 0 ? { message: body.slice(0, 300) } : {};
    }
  }
  if (typeof v !== 'object' || v === null) return {};
  const s = v as Record<string, unknown>;
  const out: { reason?: string; message?: string } = {};
  if (typeof s.reason === 'string') out.reason = s.reason;
  if (typeof s.message === 'string') out.message = s.message.slice(0, 500);
  return out;
}

/** The HTTP status and Status reason of a failed API call, if it got that far. */
export function apiFailure(e: unknown): ApiFailure | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const o = e as Record<string, unknown>;
  const code = typeof o.statusCode === 'number' ? o.statusCode : typeof o.code === 'number' ? o.code : undefined;
  if (code === undefined || code < 100 || code > 599) return undefined;
  const s = parseStatus(o.body);
  return { code, reason: s.reason, message: s.message };
}

/** A Status object as delivered in a watch ERROR event. */
export function statusObjectFailure(obj: unknown): ApiFailure {
  const s = parseStatus(obj);
  const code = typeof obj === 'object' && obj !== null && typeof (obj as Record<string, unknown>).code === 'number' ? ((obj as Record<string, unknown>).code as number) : 500;
  return { code, reason: s.reason, message: s.message };
}

function transportProblem(e: unknown): string {
  if (typeof e === 'object' && e !== null && (e as { name?: unknown }).name === 'TimeoutError') return 'no answer in time (timed out)';
  const cause = typeof e === 'object' && e !== null ? (e as { cause?: unknown }).cause : undefined;
  const code = errnoCode(cause) ?? errnoCode(e);
  const text = cause instanceof Error ? cause.message : e instanceof Error ? e.message : String(e);
  switch (code) {
    case 'ECONNREFUSED': return 'connection refused (ECONNREFUSED)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN': return `the server name does not resolve (${code})`;
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET': return `the connection was reset (${code})`;
    case 'ETIMEDOUT':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'UND_ERR_CONNECT_TIMEOUT': return `the server is unreachable (${code})`;
    default:
      if (code !== undefined && /CERT|SELF_SIGNED|TLS|SSL|ALTNAME|VERIFY/.test(code)) {
        return `the server's TLS certificate was refused (${code}: ${text}); check the cluster CA (the ServiceAccount's ca.crt or the kubeconfig's certificate-authority)`;
      }
      return code === undefined ? text : `${text} (${code})`;
  }
}

/** server: the API URL; what: "GET node n1", "create lease weft/subnet-…". */
export function kubeError(server: string, what: string, e: unknown): WeftError {
  if (e instanceof WeftError) return e;
  const head = `kubernetes API ${server}: ${what} failed`;
  const f = apiFailure(e);
  if (f === undefined) {
    return new WeftError('WEFT_NOT_READY', `${head}: ${transportProblem(e)}; check that the API server is reachable from this node (KUBERNETES_SERVICE_HOST, --kube-api-url); weft retries`, { cause: e });
  }
  // client-node drops the body of a 401; the HTTP reason phrase stands in for the Status reason
  const reason = f.reason ?? (f.message === undefined ? STATUS_CODES[f.code] : undefined);
  const status = `HTTP ${f.code}${reason === undefined ? '' : ' ' + reason}${f.message === undefined ? '' : ': ' + f.message}`;
  if (f.code === 401) return new WeftError('WEFT_NOT_READY', `${head}: ${status}; the credentials were refused: check the ServiceAccount token (or the kubeconfig's user), and ${RBAC_HINT}`, { cause: e });
  if (f.code === 403) return new WeftError('WEFT_NOT_READY', `${head}: ${status}; ${RBAC_HINT}`, { cause: e });
  if (f.code === 429 || f.code >= 500) return new WeftError('WEFT_NOT_READY', `${head}: ${status}; the API server is overloaded or unavailable; weft retries`, { cause: e });
  return new WeftError('WEFT_KUBE', `${head}: ${status}`, { cause: e });
}

// Structured logs. Long-running commands log to stdout; the CNI plugin must keep stdout for
// its result, so it logs to stderr, which runtimes copy to their logs.
//
// Two formats: "json" (pino's JSON lines, the default: what log collectors and the tests
// read) and "text", one readable line per event for a person at a terminal:
//   2026-05-01T10:00:00.123Z INFO  weft-agent: lease acquired subnet=10.16.5.0/24 how=new
// Text is rendered from pino's own JSON line, so both formats carry the same fields; it needs
// no pretty-printer dependency.
import { pino, type Logger, type DestinationStream } from 'pino';
import { WeftError } from '../errors.ts';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  name: string;
  /** Default: WEFT_LOG_LEVEL, else info. "silent" is accepted for callers that want nothing. */
  level?: string;
  /** Default: WEFT_LOG_FORMAT, else json. */
  format?: LogFormat;
  /** 1 = stdout, 2 = stderr. */
  fd?: 1 | 2;
  destination?: DestinationStream;
}

const LEVEL_LABELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every line has; text shows them in its fixed prefix, not again as key=value. */
const PREFIX_FIELDS = new Set(['level', 'time', 'name', 'msg', 'pid', 'hostname']);

function textValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'object' && v !== null && 'message' in v && typeof v.message === 'string') return JSON.stringify(v.message); // a serialized Error
  return JSON.stringify(v) ?? String(v);
}

/** One of pino's JSON lines as one text line (newline-terminated). Unparseable input passes through. */
export function formatTextLine(jsonLine: string): string {
  let e: Record<string, unknown>;
  try {
    e = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine.endsWith('\n') ? jsonLine : `${jsonLine}\n`;
  }
  const time = typeof e.time === 'number' ? new Date(e.time).toISOString() : '';
  const level = (typeof e.level === 'number' ? LEVEL_LABELS[e.level] : undefined) ?? String(e.level ?? '');
  const name = typeof e.name === 'string' ? `${e.name}: ` : '';
  const fields = Object.entries(e).filter(([k]) => !PREFIX_FIELDS.has(k)).map(([k, v]) => `${k}=${textValue(v)}`);
  // A message never spans lines, so one event stays one line.
  const msg = String(e.msg ?? '').replace(/\s*\n\s*/g, ' ');
  return `${[time, level.padEnd(5), `${name}${msg}`, ...fields].filter((p) => p !== '').join(' ')}\n`;
}

function checked<T extends string>(what: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new WeftError('WEFT_INVALID_CONFIG', `${what} ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
  }
  return value as T;
}

/**
 * The level and format from the environment, or the defaults when they are unset or not valid:
 * for the CNI plugin, which must answer its runtime whatever WEFT_LOG_* say (daemons refuse a
 * bad value at start instead).
 */
export function lenientLogSettings(env: NodeJS.ProcessEnv, defaults: { level: LogLevel; format: LogFormat }): { level: LogLevel; format: LogFormat } {
  const pick = <T extends string>(value: string | undefined, allowed: readonly T[], fallback: T): T =>
    value !== undefined && (allowed as readonly string[]).includes(value) ? value as T : fallback;
  return { level: pick(env.WEFT_LOG_LEVEL, LOG_LEVELS, defaults.level), format: pick(env.WEFT_LOG_FORMAT, LOG_FORMATS, defaults.format) };
}

export function createLogger(options: LoggerOptions): Logger {
  const levelText = options.level ?? (process.env.WEFT_LOG_LEVEL || 'info');
  const level = levelText === 'silent' ? 'silent' : checked(options.level === undefined ? 'WEFT_LOG_LEVEL' : 'log level', levelText, LOG_LEVELS);
  const formatText = options.format ?? (process.env.WEFT_LOG_FORMAT || 'json');
  const format = checked(options.format === undefined ? 'WEFT_LOG_FORMAT' : 'log format', formatText, LOG_FORMATS);
  const out = options.destination ?? pino.destination({ fd: options.fd ?? 1, sync: true });
  const destination: DestinationStream = format === 'json' ? out : { write: (line: string) => void out.write(formatTextLine(line)) };
  return pino({ name: options.name, level, base: { pid: process.pid } }, destination);
}

/** A logger that drops everything: for library callers and tests that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' });

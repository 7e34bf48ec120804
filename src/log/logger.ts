// Structured logs (pino, JSON lines). Long-running commands log to stdout; the CNI plugin
// must keep stdout for its result, so it logs to stderr, which runtimes copy to their logs.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  name: string;
  level?: string;
  /** 1 = stdout, 2 = stderr. */
  fd?: 1 | 2;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? process.env.WEFT_LOG_LEVEL ?? 'info';
  const destination = options.destination ?? pino.destination({ fd: options.fd ?? 1, sync: true });
  return pino({ name: options.name, level, base: { pid: process.pid } }, destination);
}

/** A logger that drops everything: for library callers and tests that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' });

// Reads JSON from etcd with a bound on memory, whatever the stored values hold.
//
// etcd answers a listing (v3 range, v2 recursive GET) or a watch event with every value inline,
// so one hostile multi-megabyte value would make the whole answer huge. This scanner copies the
// bytes it is fed, except the contents of any string that is the value of a `"value"` field and
// is longer than `elideValuesOver`: such a string is replaced by a negative JSON number, minus its
// length in characters (`"value":-1873212`). Stored values are always strings, so a number there
// is unambiguous: the key is still readable and can be skipped by name, with its size.
//
// Everything else counts against `maxBytes`; past it, push() throws BodyTooLargeError. In line
// mode (the v3 watch stream, newline-delimited JSON) each document ends at a newline outside a
// string and is handed to onDocument; the bound is then per line.
import type { ClientRequest, IncomingMessage } from 'node:http';

export class BodyTooLargeError extends Error {
  readonly limit: number;
  constructor(limit: number, what = 'the answer') {
    super(`${what} is over ${limit} bytes (after leaving out oversized values)`);
    this.name = 'BodyTooLargeError';
    this.limit = limit;
  }
}

export interface ScannerOptions {
  /** Most bytes kept for one document. */
  maxBytes: number;
  /** A `"value"` string longer than this many characters is left out (replaced by -length). */
  elideValuesOver: number;
  /** Line mode: called with each newline-terminated document (without the newline). */
  onDocument?: (doc: Buffer) => void;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;
const VALUE_FIELD = Buffer.from('"value":');

export class ElidingJsonScanner {
  readonly #max: number;
  readonly #elideOver: number;
  readonly #onDocument: ((doc: Buffer) => void) | undefined;
  #out: Buffer = Buffer.allocUnsafe(16 * 1024);
  #len = 0;
  #inString = false;
  #escaped = false;
  /** The current string is a "value" field's: counted, and left out once too long. */
  #candidate = false;
  #eliding = false;
  #strStart = 0;
  #strLen = 0;

  constructor(options: ScannerOptions) {
    this.#max = options.maxBytes;
    this.#elideOver = options.elideValuesOver;
    this.#onDocument = options.onDocument;
  }

  push(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (!this.#inString) {
        // Copy up to the next quote (or newline in line mode) in one go.
        const q = chunk.indexOf(QUOTE, i);
        const nl = this.#onDocument ? chunk.indexOf(NEWLINE, i) : -1;
        const stop = q === -1 ? (nl === -1 ? n : nl) : (nl === -1 ? q : Math.min(q, nl));
        this.#append(chunk, i, stop);
        i = stop;
        if (i >= n) break;
        if (chunk[i] === NEWLINE) {
          this.#emit();
          i++;
          continue;
        }
        this.#inString = true;
        this.#escaped = false;
        this.#candidate = this.#endsWithValueField();
        this.#eliding = false;
        this.#strStart = this.#len;
        this.#strLen = 0;
        this.#appendByte(QUOTE);
        i++;
        continue;
      }
      // Inside a string: find where it ends (an unescaped quote).
      let end = i;
      let escaped = this.#escaped;
      for (; end < n; end++) {
        const b = chunk[end]!;
        if (escaped) escaped = false;
        else if (b === BACKSLASH) escaped = true;
        else if (b === QUOTE) break;
      }
      this.#escaped = escaped;
      const piece = end - i;
      if (this.#candidate) {
        this.#strLen += piece;
        if (!this.#eliding && this.#strLen > this.#elideOver) {
          this.#eliding = true;
          this.#len = this.#strStart; // drop what was copied of it
        }
      }
      if (!this.#eliding) this.#append(chunk, i, end);
      i = end;
      if (i < n) {
        // The closing quote.
        this.#inString = false;
        if (this.#eliding) this.#appendAscii(`-${this.#strLen}`);
        else this.#appendByte(QUOTE);
        i++;
      }
    }
  }

  /** The document so far (body mode), or the unterminated rest of the last line (line mode). */
  end(): Buffer {
    const out = Buffer.from(this.#out.subarray(0, this.#len));
    this.#len = 0;
    return out;
  }

  #emit(): void {
    const doc = this.#out.subarray(0, this.#len);
    this.#len = 0;
    if (doc.length > 0 && this.#onDocument) this.#onDocument(Buffer.from(doc));
  }

  #endsWithValueField(): boolean {
    const k = VALUE_FIELD.length;
    return this.#len >= k && this.#out.compare(VALUE_FIELD, 0, k, this.#len - k, this.#len) === 0;
  }

  #reserve(extra: number): void {
    const need = this.#len + extra;
    if (need > this.#max) throw new BodyTooLargeError(this.#max);
    if (need <= this.#out.length) return;
    const grown = Buffer.allocUnsafe(Math.min(Math.max(need, this.#out.length * 2), this.#max));
    this.#out.copy(grown, 0, 0, this.#len);
    this.#out = grown;
  }

  #append(src: Buffer, from: number, to: number): void {
    if (to <= from) return;
    this.#reserve(to - from);
    src.copy(this.#out, this.#len, from, to);
    this.#len += to - from;
  }

  #appendByte(b: number): void {
    this.#reserve(1);
    this.#out[this.#len++] = b;
  }

  #appendAscii(s: string): void {
    this.#reserve(s.length);
    this.#len += this.#out.write(s, this.#len, 'latin1');
  }
}

/** Parses one whole body with the scanner's bounds. */
export function parseBounded(body: Buffer, options: Omit<ScannerOptions, 'onDocument'>): unknown {
  const s = new ElidingJsonScanner(options);
  s.push(body);
  return JSON.parse(s.end().toString('utf8')) as unknown;
}

/** What a value field holds after scanning: the string, or the length of one left out. */
export function elidedLength(value: unknown): number | null {
  return typeof value === 'number' && value < 0 ? -value : null;
}

/**
 * Feeds a response body through a scanner as it arrives: resolves with the kept bytes at the
 * end; rejects (and destroys the request) the moment a bound is broken, or when the body
 * fails or is cut off. Both stores read every answer through this.
 */
export function scanBody(res: IncomingMessage, req: ClientRequest, scanner: ElidingJsonScanner): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let failed = false;
    res.on('data', (chunk: Buffer) => {
      if (failed) return;
      try {
        scanner.push(chunk);
      } catch (e) {
        failed = true;
        reject(e as Error);
        req.destroy();
      }
    });
    res.on('error', (e) => { if (!failed) reject(e); });
    res.on('aborted', () => { if (!failed) reject(new Error('the answer was cut off')); });
    res.on('end', () => { if (!failed) resolve(scanner.end()); });
  });
}


// Reading a backend's part of flannel's "Backend" JSON the way flanneld does (Go's
// encoding/json without tags): keys matched case-insensitively, the last spelling winning, null
// meaning absent. Unknown keys become warnings, a wrong type an error naming "Backend.<Key>".
// Each backend's parseConfig uses these on the raw object; none of them throws to its caller.

export type ConfigOrError<C> = { ok: true; config: C; warnings: string[] } | { ok: false; error: string };

/** A config error on its way out of a parseConfig (caught there, returned as { ok: false }). */
export class BackendConfigError extends Error {}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

export function configError(message: string): BackendConfigError {
  return new BackendConfigError(`network config: ${message}`);
}

export class BackendFields {
  readonly warnings: string[] = [];
  readonly #values = new Map<string, unknown>();

  /** `known` are the keys this backend reads (with their canonical spelling); "Type" is always known. */
  constructor(raw: Readonly<Record<string, unknown>>, known: readonly string[]) {
    const byLower = new Map(['Type', ...known].map((k) => [k.toLowerCase(), k]));
    for (const [name, value] of Object.entries(raw)) {
      const key = byLower.get(name.toLowerCase());
      if (key === undefined) {
        this.warnings.push(`unknown key "Backend.${name}" ignored`);
        continue;
      }
      if (value === null) this.#values.delete(key);
      else this.#values.set(key, value);
    }
  }

  bool(key: string, fallback: boolean): boolean {
    const value = this.#values.get(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw configError(`"Backend.${key}" ${show(value)} must be true or false`);
    return value;
  }

  uint(key: string): number | undefined {
    const value = this.#values.get(key);
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) throw configError(`"Backend.${key}" ${show(value)} must be a whole number`);
    return value;
  }
}

/** Runs a parse that throws BackendConfigError, as a ConfigOrError. */
export function parseWith<C>(parse: () => { config: C; warnings: string[] }): ConfigOrError<C> {
  try {
    return { ok: true, ...parse() };
  } catch (e) {
    if (e instanceof BackendConfigError) return { ok: false, error: e.message };
    throw e;
  }
}

/** Case-insensitive lookup of one field (the last spelling winning), for the Type. */
export function getField(obj: Readonly<Record<string, unknown>>, name: string): unknown {
  let found: unknown;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lower) found = v;
  return found;
}

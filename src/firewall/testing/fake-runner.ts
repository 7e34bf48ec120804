// A recording Runner for unit tests: answers each command from a callback, never spawns.
import type { RunResult, Runner } from '../exec.ts';

export interface FakeCall {
  argv: readonly string[];
  input: string | undefined;
}

export type FakeRunner = Runner & { calls: FakeCall[] };

/** `respond` returns the result for a command; fields left out default to success with no output. */
export function fakeRunner(respond: (argv: readonly string[], input: string | undefined) => Partial<RunResult> | undefined): FakeRunner {
  const calls: FakeCall[] = [];
  const run = async (argv: readonly string[], input?: string): Promise<RunResult> => {
    calls.push({ argv, input });
    return { code: 0, stdout: '', stderr: '', ...respond(argv, input) };
  };
  return Object.assign(run, { calls });
}

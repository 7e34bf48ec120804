// The CNI_* environment of one invocation (docs/cni-spec-notes.md §1.3). Runtimes set every variable, many to
// the empty string, so empty counts as absent. Requirements follow the spec's table.
import { WeftError } from '../errors.ts';
import { COMMANDS, ID_PATTERN, interfaceNameProblem, type CniCommand } from './spec.ts';

export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string;
}

const required: Record<CniCommand, string[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME'],
  VERSION: [],
  GC: [],
  STATUS: [],
};

export function parseCniEnv(env: Record<string, string | undefined>): CniEnv {
  const get = (key: string): string => env[key] ?? '';
  const command = get('CNI_COMMAND');
  if (command === '') throw new WeftError('WEFT_INVALID_ENV', 'required env variables [CNI_COMMAND] missing');
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw new WeftError('WEFT_INVALID_ENV', `unknown CNI_COMMAND: ${command} (expected one of ${COMMANDS.join(', ')})`);
  }
  const cmd = command as CniCommand;
  const missing = required[cmd].filter((k) => get(k) === '');
  if (missing.length > 0) throw new WeftError('WEFT_INVALID_ENV', `required env variables [${missing.join(',')}] missing`);

  const parsed: CniEnv = {
    command: cmd,
    containerId: get('CNI_CONTAINERID'),
    netns: get('CNI_NETNS'),
    ifname: get('CNI_IFNAME'),
    args: get('CNI_ARGS'),
    path: get('CNI_PATH'),
  };
  if (required[cmd].includes('CNI_CONTAINERID') && !ID_PATTERN.test(parsed.containerId)) {
    throw new WeftError('WEFT_INVALID_ENV', `invalid characters in CNI_CONTAINERID "${parsed.containerId}"`, { details: parsed.containerId });
  }
  if (required[cmd].includes('CNI_IFNAME')) {
    const problem = interfaceNameProblem(parsed.ifname);
    if (problem) throw new WeftError('WEFT_INVALID_ENV', `CNI_IFNAME "${parsed.ifname}" ${problem}`);
  }
  return parsed;
}

/** CNI_ARGS: "K=V;K=V". Unknown keys are an error unless IgnoreUnknown is set, as in libcni. */
export function parseCniArgs(text: string, known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  if (text === '') return out;
  for (const pair of text.split(';')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new WeftError('WEFT_INVALID_ENV', `CNI_ARGS: "${pair}" is not a KEY=VALUE pair`);
    out.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const ignore = out.get('IgnoreUnknown');
  const ignoring = ignore !== undefined && ['1', 'true', 'True', 'TRUE'].includes(ignore);
  if (!ignoring) {
    const unknown = [...out.keys()].filter((k) => k !== 'IgnoreUnknown' && !known.includes(k));
    if (unknown.length > 0) {
      throw new WeftError('WEFT_INVALID_ENV', `CNI_ARGS: unknown keys [${unknown.join(',')}] (add IgnoreUnknown=1 to ignore them)`);
    }
  }
  return out;
}

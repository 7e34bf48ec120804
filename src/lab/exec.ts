// `weft lab exec <member> -- cmd…`: a command inside one of the lab's namespaces.
import { WeftError } from '../errors.ts';
import { compareMemberNames, memberName, memberNs, parseLabNs, parseMemberName, validateLabName } from './names.ts';
import { execInNetnsInteractive, listNetns } from './netns.ts';
import { LAB_STATE_ROOT, labDir, nodeExecEnv, nodeFiles } from './paths.ts';
import { listLabs } from './status.ts';

/** The namespace of member `target` (n1, n1-p2, router, outside, az-a) of lab `name`, which must exist. */
export async function resolveMemberNs(name: string, target: string, stateRoot: string = LAB_STATE_ROOT): Promise<string> {
  validateLabName(name);
  const member = parseMemberName(target);
  const namespaces = await listNetns();
  const members = namespaces.flatMap((ns) => {
    const m = parseLabNs(name, ns);
    return m === undefined ? [] : [memberName(m)];
  }).sort(compareMemberNames);
  if (members.length === 0) {
    const labs = await listLabs(stateRoot);
    throw new WeftError('WEFT_LAB', `no lab named ${name} is running (${labs.length === 0 ? 'there are no labs' : `existing labs: ${labs.join(', ')}`}); start one with \`weft lab up --name ${name}\``);
  }
  if (member === undefined || !members.includes(memberName(member))) {
    throw new WeftError('WEFT_LAB', `lab ${name} has no member ${JSON.stringify(target)}; it has: ${members.join(', ')}`);
  }
  return memberNs(name, member);
}

/**
 * The environment for a command in `target`: in a node, WEFT_STATUS_SOCKET and friends point at
 * that node's agent and files, so `weft status` there needs no --socket (as on a real node), and
 * WEFT_BPF_DIR at the lab's bpffs.
 */
export function memberEnv(name: string, target: string, stateRoot: string = LAB_STATE_ROOT, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const member = parseMemberName(target);
  if (member?.kind !== 'node') return env;
  // The lab's bpffs (data-path.ts), so `weft uninstall` in a node finds its fast path's maps.
  const dir = labDir(name, stateRoot);
  return { ...env, ...nodeExecEnv(nodeFiles(`${dir}/${memberName(member)}`)), WEFT_BPF_DIR: `${dir}/bpf` };
}

/** Runs argv in the member's namespace with our stdio; resolves to its exit code. */
export async function labExec(name: string, target: string, argv: readonly string[], stateRoot?: string): Promise<number> {
  if (argv.length === 0) throw new WeftError('WEFT_LAB', 'no command given; usage: weft lab exec <member> -- <command…>');
  return execInNetnsInteractive(await resolveMemberNs(name, target, stateRoot), argv, memberEnv(name, target, stateRoot));
}

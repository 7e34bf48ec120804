// `weft status` (what the agent on this node reports) with, in mesh mode, Weave's layout and
// its sub-views (`weft status peers|connections|ipam|targets`), and `weft rmpeer` (give a dead
// peer's address blocks to this node). All of them talk to the agent's status socket.
import type { Command } from 'commander';
import { DEFAULT_AGENT_OPTIONS, envValue } from '../agent/options.ts';
import type { AgentStatus, CommandAnswer } from '../agent/status.ts';
import type { MeshStatus } from '../mesh/status/types.ts';
import { WeftError } from '../errors.ts';

interface SocketOptions {
  socket: string;
  json?: boolean;
}

const SOCKET_HELP = "the agent status socket (default: $WEFT_STATUS_SOCKET, which `weft lab exec` sets, else the agent's default)";

function withSocket(cmd: Command, json: string): Command {
  return cmd
    .option('--socket <path>', SOCKET_HELP, envValue('status-socket') ?? DEFAULT_AGENT_OPTIONS.statusSocket)
    .option('--json', json);
}

/** `weft status --socket x peers` and `weft status peers --socket x` mean the same. */
function viewOptions(cmd: Command): SocketOptions {
  const own = cmd.opts<SocketOptions>();
  const parent = cmd.parent?.opts<SocketOptions>();
  const socket = cmd.getOptionValueSource('socket') === 'cli' || !parent ? own.socket : parent.socket;
  return { socket, json: Boolean(own.json || parent?.json) };
}

/** The mesh report inside a mesh-mode agent's status; undefined for any other mode. */
function meshDetails(status: AgentStatus): unknown {
  const store: unknown = (status as Partial<AgentStatus> | null)?.store;
  if (typeof store !== 'object' || store === null || !('kind' in store) || store.kind !== 'mesh') return undefined;
  const details = 'details' in store ? store.details : undefined;
  return typeof details === 'object' && details !== null && 'mesh' in details ? details.mesh : undefined;
}

async function meshStatus(socket: string, view: string): Promise<MeshStatus> {
  const [{ fetchStatus }, { parseMeshStatus }] = await Promise.all([import('../agent/status.ts'), import('../mesh/status/schema.ts')]);
  const status = await fetchStatus(socket);
  const raw = meshDetails(status);
  if (raw !== undefined) return parseMeshStatus(raw);
  const kind = (status as Partial<AgentStatus> | null)?.store?.kind;
  throw new WeftError('WEFT_INVALID_CONFIG', kind === 'mesh'
    ? `the agent at ${socket} runs mesh mode but reports no mesh status yet; try again in a moment`
    : `\`weft status ${view}\` is for mesh mode; the agent at ${socket} uses the ${kind ?? 'unknown'} store (see \`weft status\`)`);
}

const VIEWS = [
  { name: 'peers', key: 'peers', description: 'mesh mode: every known peer (this one first) and its connections', render: 'renderPeers' },
  { name: 'connections', key: 'connections', description: "mesh mode: this node's connections and the targets it fails to reach, with why", render: 'renderConnections' },
  { name: 'ipam', key: 'ipam', description: 'mesh mode: pod addresses per owning peer, with the share of the range (this node first)', render: 'renderIpam' },
  { name: 'targets', key: 'targets', description: 'mesh mode: the configured peer addresses, one per line', render: 'renderTargets' },
] as const;

export function registerStatus(program: Command): void {
  const status = withSocket(program.command('status'), 'print the status as JSON')
    .description("what the agent on this node reports: node, lease, backend, peers, last sync, errors; in mesh mode, Weave's `weave status` layout")
    // The views take --socket and --json of their own, so this command must not swallow them.
    .enablePositionalOptions()
    .action(async (o: SocketOptions) => {
      const [{ fetchStatus }, { renderDataPath, renderStatus, renderWarnings }] = await Promise.all([import('../agent/status.ts'), import('../agent/render-status.ts')]);
      const s = await fetchStatus(o.socket);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      const raw = meshDetails(s);
      if (raw === undefined) {
        process.stdout.write(renderStatus(s));
        return;
      }
      const [{ parseMeshStatus }, mesh] = await Promise.all([import('../mesh/status/schema.ts'), import('../mesh/status/render.ts')]);
      process.stdout.write(mesh.renderStatus(parseMeshStatus(raw)) + renderDataPath(s) + renderWarnings(s.warnings));
    });

  for (const view of VIEWS) {
    withSocket(status.command(view.name), `print the mesh status's "${view.key}" field as JSON`)
      .description(view.description)
      .action(async (_o: SocketOptions, cmd: Command) => {
        const o = viewOptions(cmd);
        const s = await meshStatus(o.socket, view.name);
        if (o.json) process.stdout.write(`${JSON.stringify(s[view.key], null, 2)}\n`);
        else process.stdout.write((await import('../mesh/status/render.ts'))[view.render](s));
      });
  }
}

function errorOf(answer: CommandAnswer): string {
  const body = answer.body;
  const error = typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'string' ? body.error : undefined;
  return error ?? `HTTP ${answer.status}`;
}

/** A refused rmpeer, in words: what the agent said, and for an agent without commands, why. */
async function rmpeerError(answer: CommandAnswer, peer: string, socket: string): Promise<WeftError> {
  const { clean } = await import('../mesh/status/render.ts');
  const why = clean(errorOf(answer));
  if (answer.status === 404) {
    return new WeftError('WEFT_INVALID_CONFIG', `the agent at ${socket} does not take rmpeer (${why}); rmpeer is for mesh mode (\`weft agent --store mesh\`)`);
  }
  if (answer.status >= 500) return new WeftError('WEFT_INTERNAL', `rmpeer ${peer} failed in the agent: ${why}`);
  return new WeftError('WEFT_INVALID_CONFIG', `rmpeer ${peer}: ${why}`);
}

export function registerRmpeer(program: Command): void {
  withSocket(program.command('rmpeer'), "print the agent's answer as JSON")
    .description("mesh mode: this node takes over a dead peer's address blocks; for a peer that is gone for good, on one node only")
    .argument('<peer>', "the peer's name (aa:bb:cc:dd:ee:ff) or nickname (its node name)")
    .addHelpText('after', '\nPrints "<N> IPs taken over from <name>(<nickname>)". Pods the peer still runs would keep addresses that are now this node\'s: remove the node first.')
    .action(async (peer: string, o: SocketOptions) => {
      const { postCommand } = await import('../agent/status.ts');
      const answer = await postCommand(o.socket, 'rmpeer', { peer });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
        if (answer.status !== 200) process.exitCode = 1;
        return;
      }
      if (answer.status !== 200) throw await rmpeerError(answer, peer, o.socket);
      const [{ parseRmpeerAnswer }, { renderRmpeer }] = await Promise.all([import('../mesh/status/schema.ts'), import('../mesh/status/render.ts')]);
      process.stdout.write(renderRmpeer(parseRmpeerAnswer(answer.body)));
    });
}

export function registerLeave(program: Command): void {
  withSocket(program.command('leave'), "print the agent's answer as JSON")
    .description("mesh mode: hand this node's address blocks to a reachable peer and leave the mesh (before removing the node for good; Weave's `weave reset`)")
    .addHelpText('after', '\nThe agent keeps running but owns no blocks afterwards: stop it and uninstall. Pods still on this node keep addresses that now belong to the heir: drain the node first.')
    .action(async (o: SocketOptions) => {
      const { postCommand } = await import('../agent/status.ts');
      const answer = await postCommand(o.socket, 'leave', {});
      if (o.json) {
        process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
        if (answer.status !== 200) process.exitCode = 1;
        return;
      }
      if (answer.status !== 200) throw new WeftError(answer.status === 404 ? 'WEFT_INVALID_CONFIG' : 'WEFT_INTERNAL', `leave: ${errorOf(answer)}${answer.status === 404 ? '; leave is for mesh mode (`weft agent --store mesh`)' : ''}`);
      const body = answer.body as { addresses?: unknown; heir?: unknown };
      const heir = typeof body.heir === 'string' ? body.heir : null;
      process.stdout.write(heir ? `${Number(body.addresses) || 0} IPs handed to ${heir}; this node left the mesh\n` : 'no reachable peer to hand the blocks to; this node left the mesh, and its blocks need `weft rmpeer` on another node\n');
    });
}

// `weft cni` (the plugin, standalone in this process) and `weft cni-server` (the long-lived
// server that the weft-cni front end talks to). See docs/cni.md.
import type { Command } from 'commander';
import { writeFileSync, rmSync } from 'node:fs';
import { createLogger } from '../log/logger.ts';
import { WeftError, errnoCode } from '../errors.ts';
import { DEFAULT_CNI_SOCKET } from '../cni/socket-address.ts';

// The plugin's modules load when a CNI command runs, not when any `weft` command starts.
async function loadPlugin() {
  const [{ handleCni }, { startCniServer }, { BridgeOperations }, { iptablesPodMasquerade }] = await Promise.all([
    import('../cni/plugin.ts'), import('../cni/server.ts'), import('../cni/bridge-plugin.ts'), import('../cni/pod-masq.ts'),
  ]);
  return { handleCni, startCniServer, BridgeOperations, iptablesPodMasquerade };
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

export function registerCni(program: Command): void {
  program
    .command('cni')
    .description('run the CNI plugin in this process: reads CNI_* variables and the network config on stdin, as a container runtime calls it')
    .action(async () => {
      const { handleCni, BridgeOperations, iptablesPodMasquerade } = await loadPlugin();
      const log = createLogger({ name: 'weft-cni', fd: 2, level: process.env.WEFT_LOG_LEVEL ?? 'warn' });
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (k.startsWith('CNI_') && v !== undefined) env[k] = v;
      const ops = new BridgeOperations({ log, masquerade: iptablesPodMasquerade() });
      try {
        const res = await handleCni({ env, stdin: await readStdin() }, ops, log);
        process.stdout.write(res.stdout);
        process.stderr.write(res.stderr);
        process.exitCode = res.exitCode;
      } finally {
        ops.close();
      }
    });

  program
    .command('cni-server')
    .description("serve CNI requests from the weft-cni front end on this node's unix socket (the fast path for pod ADD/DEL)")
    .option('--socket <path>', 'unix socket to listen on; "@name" is an abstract socket of this network namespace', process.env.WEFT_CNI_SOCKET ?? DEFAULT_CNI_SOCKET)
    .option('--ready-file <path>', 'create this file once the server is listening, and remove it on exit')
    .action(async (opts: { socket: string; readyFile?: string }) => {
      const { startCniServer, BridgeOperations, iptablesPodMasquerade } = await loadPlugin();
      const log = createLogger({ name: 'weft-cni-server' });
      const ops = new BridgeOperations({ log, masquerade: iptablesPodMasquerade() });
      let server;
      try {
        server = await startCniServer({ socket: opts.socket, ops, log });
      } catch (e) {
        if (errnoCode(e) === 'EADDRINUSE') {
          throw new WeftError('WEFT_NOT_READY', `another CNI server already listens on ${opts.socket} in this network namespace; stop it first or pass --socket`);
        }
        throw e;
      }
      if (opts.readyFile) writeFileSync(opts.readyFile, `${process.pid}\n`);
      const stop = (signal: string): void => {
        log.info({ signal }, 'CNI server stopping');
        if (opts.readyFile) rmSync(opts.readyFile, { force: true });
        server.close();
        ops.close();
        process.exit(0);
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}

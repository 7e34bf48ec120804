// `weft cni` (the plugin, standalone in this process) and `weft cni-server` (the long-lived
// server that the weft-cni front end talks to). See docs/cni.md.
import type { Command } from 'commander';
import { writeFileSync, rmSync } from 'node:fs';
import { createLogger, lenientLogSettings } from '../log/logger.ts';
import { WeftError, errnoCode } from '../errors.ts';
import { DEFAULT_CNI_SOCKET } from '../cni/socket-address.ts';
import { MAX_REQUEST_BYTES } from '../cni/wire.ts';
import { CniErrorCodes } from '../cni/spec.ts';

// The plugin's modules load when a CNI command runs, not when any `weft` command starts.
async function loadPlugin() {
  const [{ handleCni }, { startCniServer }, { BridgeOperations }, { iptablesPodMasquerade }] = await Promise.all([
    import('../cni/plugin.ts'), import('../cni/server.ts'), import('../cni/bridge-plugin.ts'), import('../cni/pod-masq.ts'),
  ]);
  return { handleCni, startCniServer, BridgeOperations, iptablesPodMasquerade };
}

/** stdin up to the CNI server's bound (a real config is a few KiB), or undefined if it is bigger. */
async function readStdin(): Promise<string | undefined> {
  if (process.stdin.isTTY) return '';
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_REQUEST_BYTES) return undefined;
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString();
}

export function registerCni(program: Command): void {
  program
    .command('cni')
    .description('run the CNI plugin in this process: reads CNI_* variables and the network config on stdin, as a container runtime calls it')
    .action(async () => {
      const { handleCni, BridgeOperations, iptablesPodMasquerade } = await loadPlugin();
      const log = createLogger({ name: 'weft-cni', fd: 2, ...lenientLogSettings(process.env, { level: 'warn', format: 'json' }) });
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (k.startsWith('CNI_') && v !== undefined) env[k] = v;
      const stdin = await readStdin();
      if (stdin === undefined) {
        process.stdout.write(`${JSON.stringify({ code: CniErrorCodes.decodeFailure, msg: `the network configuration on stdin is larger than ${MAX_REQUEST_BYTES >> 20} MiB; a real one is a few KiB` })}\n`);
        process.exitCode = 1;
        return;
      }
      const ops = new BridgeOperations({ log, masquerade: iptablesPodMasquerade() });
      try {
        const res = await handleCni({ env, stdin }, ops, log);
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
      if (opts.socket === '') throw new WeftError('WEFT_INVALID_CONFIG', '--socket must not be empty; pass a path or "@name" (default @weft-cni)');
      const { startCniServer, BridgeOperations, iptablesPodMasquerade } = await loadPlugin();
      const log = createLogger({ name: 'weft-cni-server' });
      const ops = new BridgeOperations({ log, masquerade: iptablesPodMasquerade() });
      let server;
      try {
        // Its errors (a missing directory, an address in use) are WeftErrors that say what to do.
        server = await startCniServer({ socket: opts.socket, ops, log, socketSetting: '--socket' });
      } catch (e) {
        ops.close();
        throw e;
      }
      if (opts.readyFile) {
        try {
          writeFileSync(opts.readyFile, `${process.pid}\n`);
        } catch (e) {
          server.close();
          ops.close();
          throw new WeftError('WEFT_IO', `cannot write --ready-file ${opts.readyFile}: ${errnoCode(e) ?? String(e)}`, { cause: e });
        }
      }
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

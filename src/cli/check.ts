// `weft check`: connectivity inside a real cluster, by probe pods on every node (src/check), and
// `weft check --cleanup` for namespaces a killed check left. This file parses flags, wires
// SIGINT/SIGTERM to the check's cleanup, and prints.
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_PROBE_PORT } from '../probe/types.ts';

const DEFAULT_PREFIX = 'weft-check';

function port(value: string): number {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port number 1-65535.');
  return n;
}

async function seconds(flag: string, value: string, min: number, max: number): Promise<number> {
  const { parseDuration } = await import('../agent/options.ts');
  const s = parseDuration(flag, value, 1);
  if (s < min || s > max) throw new InvalidArgumentError(`--${flag} must be between ${min} s and ${max} s.`);
  return s;
}

interface CheckFlags {
  kubeconfig?: string;
  namespace: string;
  image: string;
  timeout: string;
  nodes?: string;
  port: number;
  keep?: boolean;
  json?: boolean;
  cleanup?: boolean;
  olderThan: string;
}

async function readable(file: string): Promise<void> {
  const [{ access, constants }, { WeftError }] = await Promise.all([import('node:fs/promises'), import('../errors.ts')]);
  await access(file, constants.R_OK).catch((e: NodeJS.ErrnoException) => {
    throw new WeftError('WEFT_INVALID_CONFIG', `--kubeconfig ${file}: cannot read it (${e.code ?? e.message}); pass a kubeconfig file for the cluster to check`);
  });
}

const printJson = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

/** SIGINT/SIGTERM abort the check (which then deletes its namespace); a second one exits at once. */
function interruptible(): { signal: AbortSignal; exitCode: () => number | undefined; dispose: () => void } {
  const controller = new AbortController();
  let code: number | undefined;
  const on = (sig: NodeJS.Signals, exit: number) => (): void => {
    if (code !== undefined) {
      process.stderr.write(`weft check: ${sig} again: exiting without waiting for the cleanup; run \`weft check --cleanup\` later\n`);
      process.exit(exit);
    }
    code = exit;
    process.stderr.write(`weft check: ${sig}: stopping, deleting the check's namespace (${sig} again to exit at once)\n`);
    controller.abort(new Error(`interrupted by ${sig}`));
  };
  const int = on('SIGINT', 130);
  const term = on('SIGTERM', 143);
  process.on('SIGINT', int).on('SIGTERM', term);
  return { signal: controller.signal, exitCode: () => code, dispose: () => void process.off('SIGINT', int).off('SIGTERM', term) };
}

export function registerCheck(program: Command, version: string): void {
  program
    .command('check')
    .description('probe a real cluster: a responder pod and two client pods (pod network, host network) on every node test pod↔pod and pod↔node on one node and across nodes; prints a matrix like `weft lab check`, deletes its namespace at the end (also on SIGINT/SIGTERM); exits 1 when any probe fails')
    .option('--kubeconfig <file>', 'kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or the ServiceAccount in a pod)')
    .option('--namespace <prefix>', 'prefix of the namespace the check creates (<prefix>-<random>) and --cleanup removes', DEFAULT_PREFIX)
    .option('--image <ref>', 'image with `weft` and `ping` on its PATH', `ghcr.io/weft-net/weft:${version}`)
    .option('--timeout <duration>', 'each wait: for the responders to be ready, then for the clients to finish', '120s')
    .option('--nodes <names>', 'only these nodes, comma-separated (default: every Ready, schedulable linux node)')
    .option('--port <n>', 'the responders\' tcp and udp port (in the pods\' own network)', port, DEFAULT_PROBE_PORT)
    .option('--keep', 'keep the namespace afterwards, to look at the pods (kubectl describe); delete it yourself or with --cleanup')
    .option('--json', 'print the report as JSON: {namespace, nodes, skipped_nodes, probes:[{from_node,from,to_node,to,kind,method,address,ok,rtt_ms,error,seen}], passed, failed, problems, warnings, not_tested, namespace_deleted}')
    .option('--cleanup', 'instead of checking: delete namespaces <prefix>-* labelled app=weft-check that are older than --older-than')
    .option('--older-than <duration>', 'with --cleanup: the age a leftover namespace must have', '1h')
    .action(async (o: CheckFlags) => {
      if (o.kubeconfig !== undefined) await readable(o.kubeconfig);
      const { connectCheckApi } = await import('../check/api.ts');
      const api = await connectCheckApi(o.kubeconfig === undefined ? {} : { kubeconfigFile: o.kubeconfig });
      if (o.cleanup === true) return cleanup(api, o);
      const [{ runClusterCheck, CheckInterrupted }, { renderCheck }] = await Promise.all([import('../check/run.ts'), import('../check/render.ts')]);
      const timeoutMs = (await seconds('timeout', o.timeout, 5, 3600)) * 1000;
      const nodes = o.nodes?.split(',').map((n) => n.trim()).filter((n) => n !== '');
      const interrupt = interruptible();
      try {
        const report = await runClusterCheck({
          api, image: o.image, timeoutMs, namespacePrefix: o.namespace, port: o.port, keep: o.keep === true, signal: interrupt.signal,
          ...(nodes === undefined ? {} : { nodes }),
          onProgress: (line) => void process.stderr.write(`${line}\n`),
        });
        if (o.json === true) printJson(report);
        else process.stdout.write(renderCheck(report));
        if (report.failed > 0 || report.problems.length > 0) process.exitCode = 1;
      } catch (e) {
        if (!(e instanceof CheckInterrupted)) throw e;
        process.stderr.write(`weft check: ${e.message}\n`);
        process.exit(interrupt.exitCode() ?? 130);
      } finally {
        interrupt.dispose();
      }
    });
}

async function cleanup(api: import('../check/api.ts').CheckApi, o: CheckFlags): Promise<void> {
  const { cleanupStaleChecks } = await import('../check/cleanup.ts');
  const olderThanMs = (await seconds('older-than', o.olderThan, 0, 365 * 86400)) * 1000;
  const r = await cleanupStaleChecks(api, { prefix: o.namespace, olderThanMs });
  if (o.json === true) printJson(r);
  else {
    for (const name of r.deleted) process.stdout.write(`deleted namespace ${name}\n`);
    for (const k of r.kept) process.stdout.write(`kept namespace ${k.name}: ${k.reason}\n`);
    for (const f of r.failed) process.stdout.write(`could not delete namespace ${f.name}: ${f.error}\n`);
    if (r.deleted.length + r.kept.length + r.failed.length === 0) process.stdout.write(`no ${o.namespace}-* namespace left by a check\n`);
  }
  if (r.failed.length > 0) process.exitCode = 1;
}

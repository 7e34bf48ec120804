// Runs the stand-in API server (NOT Kubernetes; see server.ts) as a process, for the lab:
//   node src/kube/standin/main.ts --listen HOST:PORT --kubeconfig OUT [--state FILE]
//        [--token T] [--tls-cert PEM --tls-key PEM] [--gc-delay-ms N] [--history-limit N]
// Prints one JSON line {"url":...,"kubeconfig":...} once listening and the kubeconfig is
// written (atomically, so a reader never sees half of it). SIGTERM/SIGINT stop it; with
// --state, the objects survive a restart (watch history does not: older watches get 410).
// Test and lab support only: not part of the agent or its bundle.
import { readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KubeStandin, type StandinOptions } from './server.ts';

function fail(message: string): never {
  process.stderr.write(`weft stand-in API server: ${message}\n`);
  process.exitCode = 2;
  throw new Error(message);
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(s);
  const port = Number(m?.[2]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) fail(`--listen ${s}: use HOST:PORT`);
  return { host: (m[1] ?? '').replace(/^\[|\]$/g, ''), port };
}

function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      listen: { type: 'string', default: '127.0.0.1:0' },
      kubeconfig: { type: 'string' },
      state: { type: 'string' },
      token: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'gc-delay-ms': { type: 'string' },
      'history-limit': { type: 'string' },
    },
    strict: true,
  });
  if (values.kubeconfig === undefined) fail('--kubeconfig OUT is required');
  const o: StandinOptions = parseListen(values.listen);
  if (values.token !== undefined) o.token = values.token;
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) fail('--tls-cert and --tls-key go together');
  if (values['tls-cert'] !== undefined && values['tls-key'] !== undefined) {
    o.tls = { cert: readFileSync(values['tls-cert'], 'utf8'), key: readFileSync(values['tls-key'], 'utf8') };
  }
  if (values['gc-delay-ms'] !== undefined) o.gcDelayMs = Number(values['gc-delay-ms']);
  if (values['history-limit'] !== undefined) o.historyLimit = Number(values['history-limit']);
  const standin = await KubeStandin.start(o);
  const statePath = values.state;
  let saveTimer: NodeJS.Timeout | undefined;
  const save = (): void => {
    if (statePath !== undefined) writeAtomically(statePath, JSON.stringify(standin.dump()));
  };
  if (statePath !== undefined) {
    if (existsSync(statePath)) standin.restore(JSON.parse(readFileSync(statePath, 'utf8')) as ReturnType<KubeStandin['dump']>);
    standin.onChange(() => {
      saveTimer ??= setTimeout(() => {
        saveTimer = undefined;
        save();
      }, 100);
    });
  }
  writeAtomically(values.kubeconfig, standin.kubeconfigYaml());
  process.stdout.write(JSON.stringify({ url: standin.url, kubeconfig: values.kubeconfig }) + '\n');
  const stop = (): void => {
    if (saveTimer !== undefined) clearTimeout(saveTimer);
    save();
    void standin.close();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((e: unknown) => {
  if (process.exitCode === undefined) {
    process.stderr.write(`weft stand-in API server: ${(e as Error).message}\n`);
    process.exitCode = 1;
  }
});

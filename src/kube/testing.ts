// Helpers for tests that talk to the stand-in API server through the real client (not used
// by the agent): a stand-in plus a KubeClient connected to it by a kubeconfig file, a logger
// that keeps its lines, and waiting on a condition with a generous bound.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, type Logger } from '../log/logger.ts';
import { connectKube, type KubeClient } from './client.ts';
import { KubeStandin, type StandinOptions } from './standin/server.ts';

export interface StandinFixture {
  standin: KubeStandin;
  client: KubeClient;
  dir: string;
  kubeconfig: string;
  close(): Promise<void>;
}

export async function startStandinWithClient(o: StandinOptions = {}, requestTimeoutMs?: number): Promise<StandinFixture> {
  const standin = await KubeStandin.start(o);
  const dir = mkdtempSync(join(tmpdir(), 'weft-kube-'));
  const kubeconfig = join(dir, 'kubeconfig');
  standin.writeKubeconfig(kubeconfig);
  const client = await connectKube(requestTimeoutMs === undefined ? { kubeconfigFile: kubeconfig } : { kubeconfigFile: kubeconfig, requestTimeoutMs });
  return {
    standin, client, dir, kubeconfig,
    close: async () => {
      await standin.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function memoryLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = createLogger({ name: 'test', level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  return { log, lines };
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

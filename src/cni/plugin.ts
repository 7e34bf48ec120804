// One CNI invocation, from environment + stdin to exit code + stdout, with no process
// globals: the standalone `weft cni` command and the long-lived CNI server both call this.
import type { Logger } from '../log/logger.ts';
import { CniError, toCniError } from './cni-error.ts';
import { checkVersion, decodeStdin, parsePluginConfig, type PluginConfig } from './config.ts';
import { parseCniEnv, type CniEnv } from './env.ts';
import { renderResult, type AddResult } from './result.ts';
import { CniErrorCodes, isSupportedVersion, LATEST_VERSION, SUPPORTED_VERSIONS, versionHasCheck } from './spec.ts';
import type { CniRequest, CniResponse } from './wire.ts';

/** What the verbs do to the node; the bridge implementation lives in bridge-plugin.ts. */
export interface CniOperations {
  add(env: CniEnv, config: PluginConfig): Promise<AddResult>;
  del(env: CniEnv, config: PluginConfig): Promise<void>;
  check(env: CniEnv, config: PluginConfig): Promise<void>;
  status(config: PluginConfig): Promise<void>;
  gc(config: PluginConfig): Promise<void>;
}

export async function handleCni(req: CniRequest, ops: CniOperations, log: Logger): Promise<CniResponse> {
  let cniVersion: string | undefined;
  let env: CniEnv | undefined;
  try {
    env = parseCniEnv(req.env);
    if (env.command === 'VERSION') return ok(versionAnswer(req.stdin));
    const raw = decodeStdin(req.stdin);
    cniVersion = typeof raw.cniVersion === 'string' && isSupportedVersion(raw.cniVersion) ? raw.cniVersion : undefined;
    checkVersion(raw);
    const config = parsePluginConfig(raw);
    switch (env.command) {
      case 'ADD': {
        const result = await ops.add(env, config);
        log.info({ cmd: 'ADD', containerId: env.containerId, ifname: env.ifname, ips: result.ips.map((i) => i.address) }, 'pod attached');
        return ok(JSON.stringify(renderResult(result, config.cniVersion)));
      }
      case 'DEL':
        await ops.del(env, config);
        log.info({ cmd: 'DEL', containerId: env.containerId, ifname: env.ifname }, 'pod detached');
        return ok('');
      case 'CHECK':
        if (!versionHasCheck(config.cniVersion)) {
          throw new CniError(CniErrorCodes.incompatibleVersion, `CHECK needs cniVersion 0.4.0 or later, the config says ${config.cniVersion}`);
        }
        await ops.check(env, config);
        return ok('');
      case 'STATUS':
        await ops.status(config);
        return ok('');
      case 'GC':
        await ops.gc(config);
        return ok('');
    }
  } catch (e) {
    const error = toCniError(e, cniVersion);
    const fields = { cmd: env?.command, containerId: env?.containerId, code: error.code, err: error.msg };
    if (error.code === CniErrorCodes.internal) log.error({ ...fields, stack: (e as Error).stack }, 'CNI request failed');
    else log.warn(fields, 'CNI request failed');
    return { exitCode: 1, stdout: `${JSON.stringify(error)}\n`, stderr: '' };
  }
}

function ok(stdout: string): CniResponse {
  return { exitCode: 0, stdout: stdout === '' ? '' : `${stdout}\n`, stderr: '' };
}

/** VERSION ignores the rest of the environment and tolerates any stdin (libcni's probe sends little). */
function versionAnswer(stdin: string): string {
  let asked: unknown;
  try {
    asked = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
  } catch {
    asked = undefined;
  }
  const cniVersion = typeof asked === 'string' && asked !== '' ? asked : LATEST_VERSION;
  return JSON.stringify({ cniVersion, supportedVersions: SUPPORTED_VERSIONS });
}

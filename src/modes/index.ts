// The control planes a node can run, by name: the one place that knows them all. The CLI
// picks one from the options and hands it to the runtime; adding a mode adds a line here.
import { WeftError } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import type { ControlPlane } from '../agent/control-plane.ts';
import type { AgentOptions } from '../agent/options.ts';
import { openLeaseStore } from '../lease/open-store.ts';
import { readSubnetEnv } from '../subnet/subnet-env.ts';
import { formatCidr } from '../net/cidr.ts';
import { EtcdControlPlane } from './etcd/etcd-control-plane.ts';
import { derivePsk } from '../mesh/wire/index.ts';
import { meshIdOf } from '../mesh/node.ts';
import { MeshControlPlane } from './mesh/mesh-control-plane.ts';
import { meshBackendSection, meshNodeSettings, readPasswords } from './mesh/options.ts';

function previousSubnet(path: string): string | undefined {
  try {
    const env = readSubnetEnv(path);
    return env.subnet ? formatCidr(env.subnet) : undefined;
  } catch {
    return undefined;
  }
}

function etcdMode(opts: AgentOptions, log: Logger, _version: string): ControlPlane {
  return new EtcdControlPlane({
    openStore: () => openLeaseStore({
      api: opts.etcdApi, endpoints: opts.etcdEndpoints, prefix: opts.etcdPrefix, logger: log,
      tls: { ...(opts.etcdCafile ? { caFile: opts.etcdCafile } : {}), ...(opts.etcdCertfile ? { certFile: opts.etcdCertfile } : {}), ...(opts.etcdKeyfile ? { keyFile: opts.etcdKeyfile } : {}) },
      ...(opts.etcdUsername ? { username: opts.etcdUsername } : {}), ...(opts.etcdPassword ? { password: opts.etcdPassword } : {}),
    }),
    endpoints: opts.etcdEndpoints, prefix: opts.etcdPrefix, previousSubnet: previousSubnet(opts.subnetFile),
    ttlSeconds: opts.leaseTtlSeconds, renewMarginSeconds: opts.renewMarginSeconds,
    configPollMs: opts.reconcileSeconds * 1000, log,
  });
}

function meshMode(opts: AgentOptions, log: Logger, version: string): ControlPlane {
  const settings = meshNodeSettings(opts);
  const passwords = readPasswords(opts);
  const meshId = meshIdOf(settings.universe, opts.ipallocBlock);
  return new MeshControlPlane({
    node: {
      dir: opts.meshDir, ...(opts.meshName ? { name: opts.meshName } : {}), nickname: settings.nickname,
      listenHost: opts.meshListen, port: opts.meshPort, targets: settings.targets,
      psks: passwords ? passwords.map((p) => derivePsk(p, meshId)) : null,
      universe: settings.universe, blockPrefix: opts.ipallocBlock, init: settings.init, connLimit: opts.connLimit, version, log,
      // Heartbeats every sixth of the window (at most 15 s), so a live peer is heard several times within it.
      timing: { deadAfterMs: opts.meshDeadAfterSeconds * 1000, heartbeatMs: Math.min(15_000, (opts.meshDeadAfterSeconds * 1000) / 6) },
    },
    backend: meshBackendSection(opts), nftables: false, log,
  });
}

function kubeMode(): ControlPlane {
  throw new WeftError('WEFT_INVALID_CONFIG', '--store kube is being built in this change');
}

export const MODES = { etcd: etcdMode, mesh: meshMode, kube: kubeMode } as const;

export type ModeName = keyof typeof MODES;

export function createControlPlane(mode: ModeName, opts: AgentOptions, log: Logger, version = 'unknown'): ControlPlane {
  return MODES[mode](opts, log, version);
}

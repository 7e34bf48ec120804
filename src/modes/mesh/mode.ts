// mesh mode's factory: the agent's options turned into a MeshControlPlane.
import type { Logger } from '../../log/logger.ts';
import type { ControlPlane } from '../../agent/control-plane.ts';
import type { AgentOptions } from '../../agent/options.ts';
import { derivePsk } from '../../mesh/wire/index.ts';
import { meshIdOf } from '../../mesh/node.ts';
import { MeshControlPlane } from './mesh-control-plane.ts';
import { meshBackendSection, meshNodeSettings, readPasswords } from './options.ts';

export function meshMode(opts: AgentOptions, log: Logger, version: string): ControlPlane {
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

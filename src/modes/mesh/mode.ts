// mesh mode's factory: the agent's options turned into a MeshControlPlane (with --kube-peers,
// plus the peer source that reads the Kubernetes Node list; the client library loads only then).
import { hostname } from 'node:os';
import type { Logger } from '../../log/logger.ts';
import type { ControlPlane } from '../../agent/control-plane.ts';
import type { AgentOptions } from '../../agent/options.ts';
import { connectKube } from '../../kube/client.ts';
import type { Target } from '../../mesh/connections.ts';
import { derivePsk } from '../../mesh/wire/index.ts';
import { meshIdOf } from '../../mesh/node.ts';
import { MeshControlPlane } from './mesh-control-plane.ts';
import { KubePeers } from './kube-peers.ts';
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
    ...(opts.kubePeers ? { peerSource: kubePeerSource(opts, settings.targets, log) } : {}),
  });
}

/** The Node list as the peer source; connectKube loads the Kubernetes client on first use (open()). */
export function kubePeerSource(opts: AgentOptions, staticTargets: readonly Target[], log: Logger): KubePeers {
  return new KubePeers({
    connect: () => connectKube({ ...(opts.kubeconfigFile ? { kubeconfigFile: opts.kubeconfigFile } : {}), ...(opts.kubeApiUrl ? { apiUrl: opts.kubeApiUrl } : {}) }),
    namespace: opts.kubeNamespace, nodeName: (opts.nodeName || hostname()).toLowerCase(), port: opts.meshPort, staticTargets,
    ipallocInit: opts.ipallocInit, log,
  });
}

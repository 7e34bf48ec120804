// The control planes a node can run, by name: the one place that knows them all. The CLI
// picks one from the options and hands it to the runtime; adding a mode adds a line here.
import type { Logger } from '../log/logger.ts';
import type { ControlPlane } from '../agent/control-plane.ts';
import type { AgentOptions } from '../agent/options.ts';
import { openLeaseStore } from '../lease/open-store.ts';
import { previousSubnet } from './previous-subnet.ts';
import { EtcdControlPlane } from './etcd/etcd-control-plane.ts';
import { meshMode } from './mesh/mode.ts';
import { kubeMode } from './kube/mode.ts';

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

export const MODES = { etcd: etcdMode, mesh: meshMode, kube: kubeMode } as const;

export type ModeName = keyof typeof MODES;

export function createControlPlane(mode: ModeName, opts: AgentOptions, log: Logger, version = 'unknown'): ControlPlane {
  return MODES[mode](opts, log, version);
}

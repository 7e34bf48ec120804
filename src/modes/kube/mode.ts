// kube mode's factory: the agent's options turned into a KubeControlPlane.
import { hostname } from 'node:os';
import type { Logger } from '../../log/logger.ts';
import type { ControlPlane } from '../../agent/control-plane.ts';
import type { AgentOptions } from '../../agent/options.ts';
import { previousSubnet } from '../previous-subnet.ts';
import { slimFor } from '../../kube/slim.ts';
import { KubeControlPlane, type KubeSession } from './kube-control-plane.ts';

/** Loaded only here: etcd and mesh nodes never pay for the Kubernetes client. */
export async function connectSession(opts: Pick<AgentOptions, 'kubeconfigFile' | 'kubeApiUrl'>, log: Logger): Promise<KubeSession> {
  const [{ connectKube }, { Reflector }] = await Promise.all([import('../../kube/client.ts'), import('../../kube/reflector.ts')]);
  const client = await connectKube({
    ...(opts.kubeconfigFile ? { kubeconfigFile: opts.kubeconfigFile } : {}), ...(opts.kubeApiUrl ? { apiUrl: opts.kubeApiUrl } : {}),
  });
  return { client, reflect: (what) => new Reflector({ client, log, ...what, slim: slimFor(what.path) }) };
}

export function kubeMode(opts: AgentOptions, log: Logger, _version: string): ControlPlane {
  return new KubeControlPlane({
    connect: () => connectSession(opts, log),
    nodeName: opts.nodeName ?? hostname().toLowerCase(),
    namespace: opts.kubeNamespace, configMap: opts.kubeConfigMap, annotationPrefix: opts.kubeAnnotationPrefix,
    previousSubnet: previousSubnet(opts.subnetFile), configPollMs: opts.reconcileSeconds * 1000, log,
  });
}

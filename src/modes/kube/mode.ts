// kube mode's factory: the agent's options turned into a KubeControlPlane.
import { WeftError } from '../../errors.ts';
import type { ControlPlane } from '../../agent/control-plane.ts';

export function kubeMode(): ControlPlane {
  throw new WeftError('WEFT_INVALID_CONFIG', '--store kube is being built in this change');
}

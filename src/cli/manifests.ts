// `weft manifests`: prints one mode's Kubernetes objects (docs/manifests.md). Rendering is pure:
// it reads no file, calls no API and touches nothing on this machine.
import type { Command } from 'commander';
import { isWeftError } from '../errors.ts';
import { UsageError } from './flanneld-args.ts';
import type { ManifestInput } from '../manifests/options.ts';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

type ManifestFlags = ManifestInput & { json?: boolean };

export function registerManifests(program: Command): void {
  program
    .command('manifests')
    .description('print the Kubernetes manifests of one mode (Namespace, ServiceAccount, RBAC, ConfigMap, DaemonSet) as YAML; `kubectl apply -f -` takes them')
    .option('--mode <mode>', 'etcd (flannel-compatible leases in your etcd), kube (subnets claimed through the Kubernetes API: no etcd) or mesh (Weave-style, no store)')
    .option('--etcd-endpoints <urls>', 'etcd mode (required): comma-separated etcd client URLs the agents reach from their nodes')
    .option('--network <cidr>', "etcd and kube modes: net-conf.json's Network (default 10.244.0.0/16, flannel's)")
    .option('--backend <type>', "vxlan, host-gw or auto: net-conf.json's Backend.Type (default vxlan), or mesh mode's --mesh-backend (default auto)")
    .option('--ipalloc-range <cidr>', "mesh mode: the pod address range, Weave's IPALLOC_RANGE (default 10.32.0.0/12)")
    .option('--password-secret <name>', "mesh mode: a Secret in the namespace whose key weave-passwd becomes WEAVE_PASSWORD (encrypts the mesh's control plane)")
    .option('--image <ref>', 'the weft image (default ghcr.io/weft-net/weft:<this version>)')
    .option('--namespace <ns>', 'the namespace of weft\'s objects (default weft)')
    .option('--env <NAME=VALUE>', "more agent environment, checked by the agent's parser: Weave's CONN_LIMIT, WEAVE_MTU, IPALLOC_INIT, KUBE_PEERS (mesh), or FLANNELD_<FLAG> for any agent flag (repeatable)", collect)
    .option('--json', 'print a JSON List instead of YAML')
    .addHelpText('after', '\nExamples:\n  weft manifests --mode kube | kubectl apply -f -\n  weft manifests --mode mesh --password-secret weave-passwd --env CONN_LIMIT=100\n' +
      '  weft manifests --mode etcd --etcd-endpoints https://10.0.1.10:2379,https://10.0.2.10:2379\n' +
      'The defaults of each mode are in deploy/ (npm run manifests regenerates them).')
    .action(async (flags: ManifestFlags) => {
      const { resolveManifestOptions, renderJsonList, renderYaml } = await import('../manifests/index.ts');
      const { json, ...input } = flags;
      let options;
      try {
        options = resolveManifestOptions(input);
      } catch (e) {
        if (isWeftError(e, 'WEFT_INVALID_CONFIG')) throw new UsageError('weft manifests', e.message);
        throw e;
      }
      process.stdout.write(json ? renderJsonList(options) : renderYaml(options));
    });
}

// `weft manifests`: every object of one mode, as multi-document YAML or a JSON List.
// YAML is written as YAML 1.1, the dialect kubectl's reader (go-yaml v2) speaks: strings such as
// "yes", "on" or "2024-01-01" come out quoted, so they are never read back as booleans or dates.
import YAML from 'yaml';
import pkg from '../../package.json' with { type: 'json' };
import { configMap, namespaceObject, serviceAccount, type K8sObject } from './objects.ts';
import { rbacObjects } from './rbac.ts';
import { daemonSet } from './daemonset.ts';
import { netConf } from './cni-config.ts';
import {
  DEFAULT_IMAGE, DEFAULT_IPALLOC_RANGE, DEFAULT_NAMESPACE, DEFAULT_NETWORK, ETCD_PLACEHOLDER, resolveManifestOptions, type ManifestOptions,
} from './options.ts';

export { resolveManifestOptions, type ManifestInput, type ManifestOptions } from './options.ts';
export type { K8sObject } from './objects.ts';

export function manifestObjects(o: ManifestOptions): K8sObject[] {
  return [namespaceObject(o), serviceAccount(o), ...rbacObjects(o), configMap(o), daemonSet(o)];
}

/** The `weft manifests` command line that renders exactly these objects (defaults left out). */
export function renderCommand(o: ManifestOptions): string {
  const args = ['weft', 'manifests', '--mode', o.mode];
  if (o.mode === 'etcd') args.push('--etcd-endpoints', o.etcdEndpoints.join(','));
  if (o.mode !== 'mesh' && o.network !== DEFAULT_NETWORK) args.push('--network', o.network);
  if (o.backend !== 'vxlan') args.push('--backend', o.backend);
  if (o.mode === 'mesh' && o.ipallocRange !== DEFAULT_IPALLOC_RANGE) args.push('--ipalloc-range', o.ipallocRange);
  if (o.passwordSecret !== undefined) args.push('--password-secret', o.passwordSecret);
  if (o.image !== DEFAULT_IMAGE) args.push('--image', o.image);
  if (o.namespace !== DEFAULT_NAMESPACE) args.push('--namespace', o.namespace);
  for (const [name, value] of o.env) args.push('--env', `${name}=${value}`);
  return args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`)).join(' ');
}

function modeText(o: ManifestOptions): string[] {
  switch (o.mode) {
    case 'etcd': return [
      'etcd mode: subnets are leases in etcd, as flanneld keeps them (flannel\'s data is used in place).',
      'The network config is read from etcd, not from the ConfigMap: put net-conf.json at <prefix>/config first:',
      `  etcdctl put /coreos.com/network/config '${JSON.stringify(netConf(o))}'`,
    ];
    case 'kube': return ['kube mode: subnets are claimed through the Kubernetes API (Leases in this namespace); no etcd to run.'];
    case 'mesh': return ['mesh mode: peers found from the Node list form a Weave-style mesh (TCP 6783, UDP 6784); no store.'];
  }
}

export function headerComment(o: ManifestOptions): string {
  const lines = [
    `weft ${pkg.version}: ${o.mode} mode. Rendered by: ${renderCommand(o)}`,
    'Do not edit by hand: render again with other options (weft manifests --help); docs/manifests.md explains every object.',
    ...modeText(o),
  ];
  if (o.mode === 'etcd' && o.etcdEndpoints.includes(ETCD_PLACEHOLDER)) {
    lines.push(`PLACEHOLDER: ${ETCD_PLACEHOLDER} is not a real etcd. Render with your endpoints:`, '  weft manifests --mode etcd --etcd-endpoints https://<your-etcd>:2379');
  }
  return lines.map((l) => ` ${l}`).join('\n');
}

export function renderYaml(o: ManifestOptions): string {
  return manifestObjects(o).map((obj, i) => {
    const doc = new YAML.Document(obj, { version: '1.1' });
    if (i === 0) doc.commentBefore = headerComment(o);
    return doc.toString({ lineWidth: 0 });
  }).join('---\n');
}

export function renderJsonList(o: ManifestOptions): string {
  return `${JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifestObjects(o) }, null, 2)}\n`;
}

/** What deploy/ holds: the default rendering of each mode (etcd with a placeholder endpoint). */
export function deployFiles(): Record<string, string> {
  return {
    'weft-etcd.yaml': renderYaml(resolveManifestOptions({ mode: 'etcd', etcdEndpoints: ETCD_PLACEHOLDER })),
    'weft-kube.yaml': renderYaml(resolveManifestOptions({ mode: 'kube' })),
    'weft-mesh.yaml': renderYaml(resolveManifestOptions({ mode: 'mesh' })),
  };
}

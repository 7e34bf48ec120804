// The lab's kubectl: what a cluster's other actors do to the API (the operator applying the
// ConfigMap, a kubelet registering its Node, the cloud's node controller deleting one), run as
// a short process inside the API server host's namespace (the lab's own process cannot reach
// into it). Usage: node kube-admin.ts <kubeconfig> <op> [args...]; prints JSON.
//   put-config <namespace> <name> <net-conf.json>   add-node <name> <internal-ip>
//   delete-node <name>                              claims <namespace>
import { readFileSync } from 'node:fs';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';

const [kubeconfig = '', op = '', ...args] = process.argv.slice(2);
const kc = new KubeConfig();
kc.loadFromString(readFileSync(kubeconfig, 'utf8'));
const core = kc.makeApiClient(CoreV1Api);
const code = (e: unknown): number | undefined => (e as { code?: number }).code;

async function putConfig(namespace: string, name: string, netConf: string): Promise<unknown> {
  try {
    await core.createNamespace({ body: { metadata: { name: namespace } } });
  } catch (e) {
    if (code(e) !== 409) throw e;
  }
  const body = { metadata: { name, namespace }, data: { 'net-conf.json': netConf } };
  try {
    return await core.createNamespacedConfigMap({ namespace, body });
  } catch (e) {
    if (code(e) !== 409) throw e;
    return core.replaceNamespacedConfigMap({ name, namespace, body });
  }
}

async function main(): Promise<unknown> {
  switch (op) {
    case 'put-config':
      return putConfig(args[0]!, args[1]!, args[2]!);
    case 'add-node':
      return core.createNode({ body: { metadata: { name: args[0]! }, status: { addresses: [{ type: 'InternalIP', address: args[1]! }, { type: 'Hostname', address: args[0]! }] } } });
    case 'delete-node':
      return core.deleteNode({ name: args[0]! });
    case 'claims':
      return (await kc.makeApiClient(CoordinationV1Api).listNamespacedLease({ namespace: args[0]!, labelSelector: 'weft.dev/claim=subnet' })).items
        .map((l) => ({ name: l.metadata?.name, holder: l.spec?.holderIdentity, owner: l.metadata?.ownerReferences?.[0]?.uid }));
    default:
      throw new Error(`unknown op ${JSON.stringify(op)}`);
  }
}

main().then((r) => {
  process.stdout.write(`${JSON.stringify(r ?? null)}\n`);
}, (e: unknown) => {
  process.stderr.write(`kube-admin ${op}: ${(e as { body?: string }).body ?? (e as Error).message}\n`);
  process.exitCode = 1;
});

// The API server side of bench:kube: weft's stand-in (src/kube/standin), run by run.ts as a
// process inside the lab's control-plane host (nsenter --net), so that cold-started agents
// reach it over the lab's underlay as they reach etcd. It is populated in-process (no HTTP:
// thousands of objects in well under a second) with N peer Nodes as kubelets register them,
// each announced by a weft agent (flannel's annotations) and holding a claim Lease exactly as
// src/modes/kube/claims.ts builds one, plus the ConfigMap with net-conf.json.
//
//   node standin.ts --listen HOST:PORT --kubeconfig OUT --nodes N --network-config JSON
//
// Prints one JSON line {"url","populateMs","nodeBytes","leaseBytes"} once listening; then
// answers one JSON line per command line on stdin: {"op":"add-node","name","ip"} (the
// cold-started agent's own Node, as its kubelet would register it) and {"op":"remove-node",
// "name"} (the Node and every claim it holds). stdin closing or SIGTERM stops it.
import { randomBytes, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { KubeStandin } from '../../src/kube/standin/server.ts';
import { claimLease, NODE_LABEL } from '../../src/modes/kube/claims.ts';
import { parseCidr } from '../../src/net/cidr.ts';
import { coldSubnet, fakePublicIp, randomMac } from '../control/inner.ts';

const NAMESPACE = 'weft';
const CONFIG_MAP = 'weft-cfg';
const PREFIX = 'flannel.alpha.coreos.com';

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

/** Images a small cluster's nodes typically have pulled (the same on every node, as in a real cluster). */
const IMAGES = [
  'registry.k8s.io/kube-proxy:v1.30.2', 'registry.k8s.io/pause:3.9', 'registry.k8s.io/coredns/coredns:v1.11.1',
  'ghcr.io/weft-net/weft:0.1.0', 'docker.io/library/nginx:1.27', 'quay.io/prometheus/node-exporter:v1.8.1',
  'registry.k8s.io/metrics-server/metrics-server:v0.7.1', 'docker.io/grafana/promtail:3.0.0',
  'public.ecr.aws/eks-distro/kubernetes-csi/livenessprobe:v2.12.0', 'docker.io/library/redis:7.2',
  'quay.io/jetstack/cert-manager-controller:v1.15.0', 'docker.io/bitnami/kubectl:1.30',
].map((name, i) => ({ names: [`${name.split(':')[0]}@sha256:${hex(32)}`, name], sizeBytes: 5_000_000 + i * 7_654_321 }));

function condition(type: string, status: string, reason: string, message: string): Record<string, string> {
  const t = '2026-12-01T08:00:00Z';
  return { type, status, reason, message, lastHeartbeatTime: t, lastTransitionTime: t };
}

/**
 * A Node as a kubelet registers and keeps updating it (labels, capacity, conditions, node info,
 * pulled images), announced by weft. No managedFields (the stand-in does not keep them; a real
 * API server sends them too, so a real Node is larger than this one).
 */
export function kubeletNode(name: string, ip: string, i: number, announce: boolean): Record<string, unknown> {
  const resources = { cpu: '2', 'ephemeral-storage': '20959212Ki', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '8024436Ki', pods: '110' };
  return {
    metadata: {
      name,
      labels: {
        'beta.kubernetes.io/arch': 'amd64', 'beta.kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux', 'node.kubernetes.io/instance-type': 'm5.large', 'topology.kubernetes.io/region': 'eu-west-1',
        'topology.kubernetes.io/zone': `eu-west-1${'abc'[i % 3]}`,
      },
      annotations: {
        'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
        ...(announce ? {
          [`${PREFIX}/backend-type`]: 'vxlan', [`${PREFIX}/backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: randomMac() }),
          [`${PREFIX}/public-ip`]: ip, [`${PREFIX}/kube-subnet-manager`]: 'true',
        } : {}),
      },
    },
    spec: { providerID: `aws:///eu-west-1${'abc'[i % 3]}/i-0${hex(8).slice(0, 16)}` },
    status: {
      addresses: [{ type: 'InternalIP', address: ip }, { type: 'Hostname', address: name }, { type: 'InternalDNS', address: `${name}.eu-west-1.compute.internal` }],
      allocatable: { ...resources, cpu: '1930m', memory: '7220184Ki' },
      capacity: resources,
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
        condition('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      images: IMAGES,
      nodeInfo: {
        architecture: 'amd64', bootID: randomUUID(), containerRuntimeVersion: 'containerd://1.7.11', kernelVersion: '6.1.94-99.176.amzn2023.x86_64',
        kubeProxyVersion: 'v1.30.2', kubeletVersion: 'v1.30.2', machineID: hex(16), operatingSystem: 'linux', osImage: 'Amazon Linux 2023.5.20240624',
        systemUUID: randomUUID(),
      },
    },
  };
}

const { values } = parseArgs({
  options: {
    listen: { type: 'string' },
    kubeconfig: { type: 'string' },
    nodes: { type: 'string', default: '0' },
    'network-config': { type: 'string' },
  },
  strict: true,
});
const listen = /^([\d.]+):(\d+)$/.exec(values.listen ?? '');
if (!listen || !values.kubeconfig || !values['network-config']) throw new Error('usage: standin.ts --listen IP:PORT --kubeconfig OUT --nodes N --network-config JSON');
const count = Number(values.nodes);
if (!Number.isInteger(count) || count < 0 || count > 20_000) throw new Error(`--nodes must be an integer from 0 to 20000 (got ${values.nodes})`);

// No GC timer (this file deletes claims itself) and a history long enough for a whole population.
const standin = await KubeStandin.start({ host: listen[1]!, port: Number(listen[2]), gcDelayMs: -1, historyLimit: 1000 });
const t0 = performance.now();
standin.create('configmaps', { metadata: { name: CONFIG_MAP, namespace: NAMESPACE }, data: { 'net-conf.json': values['network-config'] } });
let nodeBytes = 0;
let leaseBytes = 0;
for (let i = 1; i <= count; i++) {
  const name = `peer-${i}`;
  const node = standin.create('nodes', kubeletNode(name, fakePublicIp(i), i, true)) as { metadata: { uid: string } };
  const lease = standin.create('leases', claimLease(NAMESPACE, parseCidr(coldSubnet(i)), { name, uid: node.metadata.uid }));
  nodeBytes += JSON.stringify(node).length;
  leaseBytes += JSON.stringify(lease).length;
}
const populateMs = performance.now() - t0;
standin.writeKubeconfig(values.kubeconfig);
process.stdout.write(`${JSON.stringify({ url: standin.url, populateMs, nodeBytes: count ? nodeBytes / count : 0, leaseBytes: count ? leaseBytes / count : 0 })}\n`);

interface Command { op: string; name: string; ip?: string }

function answer(c: Command): unknown {
  if (c.op === 'add-node') return { uid: (standin.create('nodes', kubeletNode(c.name, c.ip ?? '', 0, false)) as { metadata: { uid: string } }).metadata.uid };
  if (c.op === 'remove-node') {
    const claims = standin.list('leases', NAMESPACE).filter((l) => (l as { metadata: { labels?: Record<string, string> } }).metadata.labels?.[NODE_LABEL] === c.name);
    for (const l of claims) standin.delete('leases', NAMESPACE, (l as { metadata: { name: string } }).metadata.name);
    return { node: standin.delete('nodes', undefined, c.name), claims: claims.length };
  }
  throw new Error(`unknown op ${JSON.stringify(c.op)}`);
}

const stop = (): void => void standin.close().finally(() => process.exit(0));
process.once('SIGTERM', stop);
createInterface({ input: process.stdin }).on('line', (line) => {
  try {
    process.stdout.write(`${JSON.stringify({ ok: true, ...answer(JSON.parse(line) as Command) as object })}\n`);
  } catch (e) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: (e as Error).message })}\n`);
  }
}).on('close', stop);

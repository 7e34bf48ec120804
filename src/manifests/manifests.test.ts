import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { deployFiles, manifestObjects, renderJsonList, renderYaml, resolveManifestOptions, type K8sObject, type ManifestInput } from './index.ts';
import { validateObject } from './testing.ts';
import { CONFLIST_NAME } from './cni-config.ts';
import { HEALTHZ_PORT, PASSWORD_SECRET_KEY } from './daemonset.ts';
import { ETCD_PLACEHOLDER } from './options.ts';
import { FLAG_NAMES, resolveAgentOptions, type AgentOptions, type RawOptions } from '../agent/options.ts';
import { parsePluginConfig } from '../cni/config.ts';
import { parseNetworkConfig } from '../lease/network-config.ts';
import { isWeftError } from '../errors.ts';

const MODES: ManifestInput[] = [{ mode: 'etcd', etcdEndpoints: ETCD_PLACEHOLDER }, { mode: 'kube' }, { mode: 'mesh' }];
const render = (input: ManifestInput): K8sObject[] => manifestObjects(resolveManifestOptions(input));
const find = (objects: K8sObject[], kind: string): K8sObject | undefined => objects.find((o) => o.kind === kind);
const must = <T>(value: T | undefined, what: string): T => {
  assert.ok(value !== undefined, `${what} is missing`);
  return value;
};

interface Container { name: string; args: string[]; env?: { name: string; value?: string; valueFrom?: unknown }[]; securityContext: Record<string, unknown>; ports?: { name: string; containerPort: number; protocol: string }[]; livenessProbe?: { httpGet: { path: string; port: number } }; readinessProbe?: { httpGet: { path: string; port: number } }; volumeMounts: { name: string; mountPath: string }[] }
interface PodSpec { initContainers: Container[]; containers: Container[]; volumes: { name: string; hostPath?: { path: string } }[]; automountServiceAccountToken: boolean; [k: string]: unknown }
const podSpec = (objects: K8sObject[]): PodSpec => (must(find(objects, 'DaemonSet'), 'DaemonSet').spec as { template: { spec: PodSpec } }).template.spec;
const agentContainer = (objects: K8sObject[]): Container => must(podSpec(objects).containers.find((c) => c.name === 'weft'), 'container weft');

test('every object of every mode validates against the API schemas, with no unknown field', () => {
  for (const input of [...MODES, { mode: 'mesh', passwordSecret: 'weave-passwd', backend: 'host-gw', env: ['CONN_LIMIT=100', 'WEAVE_MTU=1376', 'IPALLOC_INIT=consensus=3'] }, { mode: 'kube', backend: 'auto', namespace: 'kube-system' }]) {
    const objects = render(input);
    assert.ok(objects.length >= 4, input.mode);
    for (const obj of objects) assert.deepEqual(validateObject(obj), [], `${input.mode}: ${obj.kind}`);
  }
});

test('the validator catches a typo, a wrong type and a missing field (so the test above can fail)', () => {
  const ds = (): K8sObject => structuredClone(must(find(render({ mode: 'kube' }), 'DaemonSet'), 'DaemonSet'));
  const typo = ds();
  const spec = (typo.spec as { template: { spec: Record<string, unknown> } }).template.spec;
  spec.hostNetwrok = spec.hostNetwork;
  delete spec.hostNetwork;
  assert.match(validateObject(typo).join('\n'), /spec\.template\.spec\.hostNetwrok: unknown field of V1PodSpec/);

  const nestedTypo = ds();
  const c = (nestedTypo.spec as { template: { spec: { containers: Record<string, unknown>[] } } }).template.spec.containers[0]!;
  c.securityContext = { ...(c.securityContext as object), capabilites: { add: ['NET_ADMIN'] } };
  assert.match(validateObject(nestedTypo).join('\n'), /containers\[0\]\.securityContext\.capabilites: unknown field of V1SecurityContext/);

  const wrongType = ds();
  const port = ((wrongType.spec as { template: { spec: { containers: { ports: Record<string, unknown>[] }[] } } }).template.spec.containers[0]!.ports[0]!);
  port.containerPort = String(port.containerPort);
  const problems = validateObject(wrongType).join('\n');
  assert.match(problems, /containerPort must be integer/);
  assert.match(problems, /containerPort: expected a number, got string "6782"/);

  const missing = ds();
  delete (missing.spec as Record<string, unknown>).selector;
  assert.match(validateObject(missing).join('\n'), /spec must have required property selector/);
});

test('YAML is 1.1-safe and round-trips (as YAML 1.1 and 1.2), JSON is a List of the same objects', () => {
  // "yes" is a string the agent reads as true; a YAML 1.1 reader would make it a boolean unless quoted.
  const o = resolveManifestOptions({ mode: 'kube', env: ['FLANNELD_IPTABLES_FORWARD_RULES=yes'] });
  const yaml = renderYaml(o);
  assert.match(yaml, /value: "yes"/);
  assert.match(yaml, /prometheus\.io\/scrape: "true"/);
  assert.match(yaml, /^# weft \d+\.\d+\.\d+: kube mode\. Rendered by: weft manifests --mode kube --env FLANNELD_IPTABLES_FORWARD_RULES=yes$/m);
  const objects = manifestObjects(o);
  for (const version of ['1.1', '1.2'] as const) {
    const docs = YAML.parseAllDocuments(yaml, { version });
    for (const d of docs) assert.deepEqual(d.errors, []);
    assert.deepEqual(docs.map((d) => d.toJS()), objects, `YAML ${version}`);
  }
  const list = JSON.parse(renderJsonList(o)) as { apiVersion: string; kind: string; items: unknown[] };
  assert.equal(list.kind, 'List');
  assert.deepEqual(list.items, objects);
});

test('deploy/ holds the current default rendering of each mode (npm run manifests regenerates it)', () => {
  const deploy = fileURLToPath(new URL('../../deploy/', import.meta.url));
  for (const [name, text] of Object.entries(deployFiles())) {
    let committed = '';
    try {
      committed = readFileSync(`${deploy}${name}`, 'utf8');
    } catch {
      // reported below
    }
    assert.ok(committed === text, `deploy/${name} is not current: run \`npm run manifests\` and commit deploy/`);
  }
  assert.match(deployFiles()['weft-etcd.yaml']!, /^# PLACEHOLDER: https:\/\/etcd\.example\.internal:2379 is not a real etcd/m);
});

test('the conflist sorts before the VPC CNI\'s, flannel\'s, Weave\'s and the runtimes\' own', () => {
  const others = ['10-aws.conflist', '10-flannel.conflist', '10-weave.conflist', '10-calico.conflist', '87-podman-bridge.conflist', '99-loopback.conf', '10-containerd-net.conflist'];
  // Byte order, as containerd's go-cni sorts (sort.Strings).
  assert.equal([...others, CONFLIST_NAME].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))[0], CONFLIST_NAME);
  for (const input of MODES) {
    const args = podSpec(render(input)).initContainers[0]!.args;
    assert.ok(args.includes(`--conf-name=${CONFLIST_NAME}`), args.join(' '));
  }
});

/** The agent's own parser over the DaemonSet's args and literal env: what the agent would run with. */
function agentOptionsOf(c: Container): AgentOptions {
  const byFlag = new Map(Object.entries(FLAG_NAMES).map(([key, flag]) => [flag, key as keyof AgentOptions]));
  const raw: RawOptions = {};
  assert.equal(c.args[0], 'agent');
  for (const arg of c.args.slice(1)) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    assert.ok(m, `${arg}: not a --flag[=value]`);
    const key = byFlag.get(m[1]!);
    assert.ok(key !== undefined, `--${m[1]} is not a flag of weft agent (src/agent/options.ts FLAG_NAMES)`);
    raw[key] = m[2] ?? true;
  }
  const env: Record<string, string> = { NODE_NAME: 'node-a', POD_NAMESPACE: 'weft' };
  for (const e of c.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return resolveAgentOptions(raw, env);
}

test('every agent flag in the DaemonSet is one weft agent accepts, and the agent would run the mode asked for', () => {
  for (const input of MODES) {
    const objects = render(input);
    const opts = agentOptionsOf(agentContainer(objects));
    assert.equal(opts.store, input.mode);
    assert.equal(opts.ipMasq, true);
    assert.equal(opts.healthzPort, HEALTHZ_PORT);
    assert.equal(opts.kubePeers, input.mode === 'mesh');
    if (input.mode === 'etcd') assert.deepEqual(opts.etcdEndpoints, [ETCD_PLACEHOLDER]);
    if (input.mode === 'mesh') assert.equal(opts.ipallocRange, '10.32.0.0/12');
    const c = agentContainer(objects);
    assert.equal(c.livenessProbe?.httpGet.path, '/healthz');
    assert.equal(c.readinessProbe?.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe?.httpGet.port, opts.healthzPort);
    assert.equal(c.readinessProbe?.httpGet.port, opts.healthzPort);
    assert.equal(c.ports?.find((p) => p.name === 'metrics')?.containerPort, opts.healthzPort);
    // What the agent writes and reads sits on host paths.
    const mounts = new Set(c.volumeMounts.map((m) => m.mountPath));
    for (const path of [opts.statusSocket, opts.lockFile, opts.subnetFile, '/run/xtables.lock', '/var/lib/cni/networks/x', '/var/run/netns/cni-x', ...(input.mode === 'mesh' ? [`${opts.meshDir}/x`] : [])]) {
      assert.ok([...mounts].some((m) => path === m || path.startsWith(`${m}/`)), `${input.mode}: ${path} is on no volume`);
    }
  }
  const mesh = agentOptionsOf(agentContainer(render({ mode: 'mesh', backend: 'vxlan', ipallocRange: '10.40.0.0/16', env: ['CONN_LIMIT=100', 'WEAVE_MTU=1376'] })));
  assert.equal(mesh.meshBackend, 'vxlan');
  assert.equal(mesh.ipallocRange, '10.40.0.0/16');
  assert.equal(mesh.connLimit, 100);
  assert.equal(mesh.mtu, 1376);
});

test('the ConfigMap: a conflist the weft plugin accepts, chained with portmap; net-conf.json as flannel reads it', () => {
  for (const input of MODES) {
    const data = must(find(render(input), 'ConfigMap'), 'ConfigMap').data as Record<string, string>;
    const list = JSON.parse(must(data['cni-conf.json'], 'cni-conf.json')) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    assert.equal(list.cniVersion, '1.0.0');
    assert.equal(list.name, 'cbr0', "kube-flannel's network name: an in-place switch shares its address records");
    assert.deepEqual(list.plugins.map((p) => p.type), ['weft', 'portmap']);
    assert.deepEqual(list.plugins[1], { type: 'portmap', capabilities: { portMappings: true } });
    const weft = parsePluginConfig({ ...list.plugins[0], cniVersion: list.cniVersion, name: list.name });
    assert.equal(weft.subnetFile, '/run/flannel/subnet.env');
    assert.equal(weft.ipamDataDir, '/var/lib/cni/networks');
    if (input.mode === 'mesh') {
      assert.equal(data['net-conf.json'], undefined);
    } else {
      const conf = parseNetworkConfig(must(data['net-conf.json'], 'net-conf.json'));
      assert.deepEqual(conf.warnings, []);
      assert.equal(conf.backend.type, 'vxlan');
    }
  }
  const custom = must(find(render({ mode: 'kube', network: '10.50.0.0/16', backend: 'host-gw' }), 'ConfigMap'), 'ConfigMap').data as Record<string, string>;
  assert.deepEqual(JSON.parse(custom['net-conf.json']!), { Network: '10.50.0.0/16', Backend: { Type: 'host-gw' } });
});

test('RBAC is exactly what each mode calls', () => {
  const rules = (objects: K8sObject[], kind: string): unknown => find(objects, kind)?.rules;
  const etcd = render(MODES[0]!);
  assert.deepEqual(etcd.map((o) => o.kind), ['Namespace', 'ServiceAccount', 'ConfigMap', 'DaemonSet']);
  assert.equal(podSpec(etcd).automountServiceAccountToken, false);

  const kube = render({ mode: 'kube' });
  assert.deepEqual(rules(kube, 'ClusterRole'), [
    { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['nodes/status'], verbs: ['patch'] },
  ]);
  const leases = { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] };
  assert.deepEqual(rules(kube, 'Role'), [leases, { apiGroups: [''], resources: ['configmaps'], verbs: ['get'], resourceNames: ['weft-cfg'] }]);
  assert.equal(podSpec(kube).automountServiceAccountToken, true);

  const mesh = render({ mode: 'mesh' });
  assert.deepEqual(rules(mesh, 'ClusterRole'), [{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] }]);
  assert.deepEqual(rules(mesh, 'Role'), [leases]);

  for (const objects of [kube, mesh]) {
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      assert.deepEqual(find(objects, kind)?.subjects, [{ kind: 'ServiceAccount', name: 'weft', namespace: 'weft' }], kind);
    }
  }
});

test('no container is privileged; the agent adds NET_ADMIN, NET_RAW and SYS_ADMIN only, install-cni nothing', () => {
  for (const input of MODES) {
    const spec = podSpec(render(input));
    for (const key of ['hostPID', 'hostIPC']) assert.equal(spec[key], undefined);
    assert.equal(spec.hostNetwork, true);
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }]);
    assert.equal(spec.priorityClassName, 'system-node-critical');
    for (const c of [...spec.initContainers, ...spec.containers]) assert.equal(c.securityContext.privileged, false, c.name);
    assert.deepEqual(agentContainer(render(input)).securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'] });
    assert.deepEqual(spec.initContainers[0]!.securityContext.capabilities, { drop: ['ALL'] });
    const hostPaths = spec.volumes.flatMap((v) => (v.hostPath ? [v.hostPath.path] : []));
    assert.equal(hostPaths.includes('/var/lib/weft'), input.mode === 'mesh');
    assert.ok(!hostPaths.includes('/') && !hostPaths.includes('/proc') && !hostPaths.includes('/etc'), hostPaths.join(' '));
  }
});

test('mesh mode: Weave\'s environment, the password from the Secret (key weave-passwd, not optional)', () => {
  const env = agentContainer(render({ mode: 'mesh', ipallocRange: '10.40.0.0/16', passwordSecret: 'weave-passwd', env: ['IPALLOC_INIT=consensus=3'] })).env ?? [];
  assert.deepEqual(env.find((e) => e.name === 'IPALLOC_RANGE'), { name: 'IPALLOC_RANGE', value: '10.40.0.0/16' });
  assert.deepEqual(env.find((e) => e.name === 'IPALLOC_INIT'), { name: 'IPALLOC_INIT', value: 'consensus=3' });
  assert.deepEqual(env.find((e) => e.name === 'WEAVE_PASSWORD'), { name: 'WEAVE_PASSWORD', valueFrom: { secretKeyRef: { name: 'weave-passwd', key: PASSWORD_SECRET_KEY, optional: false } } });
  assert.deepEqual(env.slice(0, 2).map((e) => e.valueFrom), [{ fieldRef: { fieldPath: 'spec.nodeName' } }, { fieldRef: { fieldPath: 'metadata.namespace' } }]);
  assert.equal(agentContainer(render({ mode: 'mesh' })).env?.some((e) => e.name === 'WEAVE_PASSWORD'), false);
});

test('--namespace moves every namespaced object and the bindings\' subjects', () => {
  const objects = render({ mode: 'kube', namespace: 'kube-network' });
  assert.equal(find(objects, 'Namespace')?.metadata.name, 'kube-network');
  for (const o of objects) if (!['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) assert.equal(o.metadata.namespace, 'kube-network', o.kind);
  for (const o of objects) if (o.kind.endsWith('Binding')) assert.equal((o.subjects as { namespace: string }[])[0]?.namespace, 'kube-network');
});

test('bad options are refused with what to do', () => {
  const cases: [ManifestInput, RegExp][] = [
    [{}, /--mode is required/],
    [{ mode: 'flannel' }, /--mode "flannel": expected one of etcd, kube, mesh/],
    [{ mode: 'etcd' }, /--mode etcd needs --etcd-endpoints.*127\.0\.0\.1:2379.*--mode kube/],
    [{ mode: 'etcd', etcdEndpoints: 'etcd:2379' }, /expected http\(s\):\/\/host:port/],
    [{ mode: 'kube', etcdEndpoints: 'https://e:2379' }, /--etcd-endpoints applies to --mode etcd only/],
    [{ mode: 'mesh', network: '10.0.0.0/16' }, /mesh mode takes --ipalloc-range/],
    [{ mode: 'kube', ipallocRange: '10.32.0.0/12' }, /--ipalloc-range applies to --mode mesh only/],
    [{ mode: 'kube', passwordSecret: 'x' }, /--password-secret applies to --mode mesh only/],
    [{ mode: 'kube', network: '10.244.1.0/16' }, /--network 10\.244\.1\.0\/16: .*host bits/i],
    [{ mode: 'kube', network: 'fd00::/56' }, /--network fd00::\/56/],
    [{ mode: 'kube', backend: 'udp' }, /--backend "udp": expected one of vxlan, host-gw, auto/],
    [{ mode: 'mesh', ipallocRange: '10.32.0.1/12' }, /--ipalloc-range 10\.32\.0\.1\/12: .*host bits.*10\.32\.0\.0\/12/],
    [{ mode: 'mesh', ipallocRange: 'fd00::/64' }, /--ipalloc-range fd00::\/64: expected an IPv4 network/],
    [{ mode: 'kube', namespace: 'Weft' }, /--namespace "Weft"/],
    [{ mode: 'kube', image: 'bad image' }, /--image "bad image"/],
    [{ mode: 'mesh', env: ['CONN_LIMIT=lots'] }, /--env: --conn-limit="lots": expected a whole number/],
    [{ mode: 'kube', env: ['WEFT_FAST_PATH=ebpf'] }, /--fast-path ebpf needs --pod-link routed/],
    [{ mode: 'kube', env: ['CONN_LIMIT=10'] }, /CONN_LIMIT is read in mesh mode only/],
    [{ mode: 'mesh', env: ['WEAVE_PASSWORD=hunter2'] }, /--password-secret/],
    [{ mode: 'kube', env: ['FLANNELD_STORE=etcd'] }, /the manifest sets that flag itself/],
    [{ mode: 'kube', env: ['NOT_A_THING=1'] }, /the agent does not read NOT_A_THING/],
    [{ mode: 'kube', env: ['lower=1'] }, /expected NAME=VALUE/],
  ];
  for (const [input, re] of cases) {
    assert.throws(() => resolveManifestOptions(input), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && re.test(e.message), JSON.stringify(input));
  }
});

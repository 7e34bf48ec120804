import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_AGENT_OPTIONS, parseDuration, resolveAgentOptions } from './options.ts';
import { isWeftError } from '../errors.ts';

test("defaults are flanneld's", () => {
  const o = resolveAgentOptions({}, {});
  assert.deepEqual(o.etcdEndpoints, ['http://127.0.0.1:4001', 'http://127.0.0.1:2379']);
  assert.equal(o.etcdPrefix, '/coreos.com/network');
  assert.equal(o.subnetFile, '/run/flannel/subnet.env');
  assert.equal(o.renewMarginSeconds, 3600);
  assert.equal(o.leaseTtlSeconds, 86400);
  assert.equal(o.healthzPort, 0);
  assert.deepEqual(o, { ...DEFAULT_AGENT_OPTIONS, etcdEndpoints: o.etcdEndpoints });
});

test('flags win over FLANNELD_* and WEFT_* environment variables', () => {
  const env = { FLANNELD_ETCD_PREFIX: '/env/prefix', WEFT_IP_MASQ: 'true', FLANNELD_IFACE: 'eth1,eth2', FLANNELD_ETCD_ENDPOINTS: 'http://10.0.0.1:2379' };
  const o = resolveAgentOptions({ etcdPrefix: '/flag/prefix' }, env);
  assert.equal(o.etcdPrefix, '/flag/prefix');
  assert.equal(o.ipMasq, true);
  assert.deepEqual(o.iface, ['eth1', 'eth2']);
  assert.deepEqual(o.etcdEndpoints, ['http://10.0.0.1:2379']);
});

test('durations: bare renew margin is minutes as in flanneld; units allow seconds', () => {
  assert.equal(resolveAgentOptions({ renewMarginSeconds: '30' }, {}).renewMarginSeconds, 1800);
  const short = resolveAgentOptions({ renewMarginSeconds: '2s', leaseTtlSeconds: '6s' }, {});
  assert.equal(short.renewMarginSeconds, 2);
  assert.equal(short.leaseTtlSeconds, 6);
  assert.equal(parseDuration('x', '1.5h', 1), 5400);
  assert.equal(parseDuration('x', '250ms', 1), 0.25);
});

test('bad values name the flag and the value', () => {
  const cases: [Parameters<typeof resolveAgentOptions>[0], RegExp][] = [
    [{ renewMarginSeconds: '1440' }, /--subnet-lease-renew-margin="1440": minutes must be between 1 and 1439/],
    [{ renewMarginSeconds: 'soon' }, /--subnet-lease-renew-margin="soon": expected a number/],
    [{ renewMarginSeconds: '10s', leaseTtlSeconds: '5s' }, /must be shorter than --subnet-lease-ttl/],
    [{ etcdEndpoints: 'localhost:2379' }, /--etcd-endpoints="localhost:2379": expected http\(s\):\/\/host:port/],
    [{ etcdApi: 'v4' }, /--etcd-api="v4"/],
    [{ healthzPort: '70000' }, /--healthz-port="70000"/],
    [{ ipMasq: 'maybe' }, /--ip-masq="maybe": expected true or false/],
    [{ etcdKeyfile: '/k.pem' }, /--etcd-keyfile and --etcd-certfile go together/],
    [{ ifaceRegex: ['eth[0-'] }, /--iface-regex="eth\[0-"/],
  ];
  for (const [flags, pattern] of cases) {
    assert.throws(() => resolveAgentOptions(flags, {}), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && pattern.test(e.message), JSON.stringify(flags));
  }
});

test('lock file, log level and log format: flags, WEFT_* environment, defaults, and refusals by name', () => {
  const d = resolveAgentOptions({}, {});
  assert.equal(d.lockFile, '/run/weft/agent.lock');
  assert.equal(d.logLevel, 'info');
  assert.equal(d.logFormat, 'json');
  const env = { WEFT_LOCK_FILE: '/tmp/n1.lock', WEFT_LOG_LEVEL: 'debug', WEFT_LOG_FORMAT: 'text' };
  const fromEnv = resolveAgentOptions({}, env);
  assert.deepEqual([fromEnv.lockFile, fromEnv.logLevel, fromEnv.logFormat], ['/tmp/n1.lock', 'debug', 'text']);
  const fromFlags = resolveAgentOptions({ lockFile: '/x.lock', logLevel: 'trace', logFormat: 'json' }, env);
  assert.deepEqual([fromFlags.lockFile, fromFlags.logLevel, fromFlags.logFormat], ['/x.lock', 'trace', 'json']);
  assert.throws(() => resolveAgentOptions({ logLevel: 'loud' }, {}), /--log-level="loud": expected one of trace, debug, info, warn, error/);
  assert.throws(() => resolveAgentOptions({ logFormat: 'yaml' }, {}), /--log-format="yaml": expected one of json, text/);
  assert.throws(() => resolveAgentOptions({ lockFile: '' }, {}), /--lock-file="": needs a path/);
});

test('kube options: flanneld names, the downward-API environment (NODE_NAME, POD_NAMESPACE), defaults, refusals', () => {
  const d = resolveAgentOptions({}, {});
  assert.deepEqual([d.kubeNamespace, d.kubeConfigMap, d.kubeAnnotationPrefix, d.kubePeers, d.nodeName], ['weft', 'weft-cfg', 'flannel.alpha.coreos.com', false, undefined]);
  const o = resolveAgentOptions({ store: 'kube', kubeconfigFile: '/etc/kube.conf', kubeApiUrl: 'https://10.0.0.1:6443/' }, { NODE_NAME: 'ip-10-0-1-5.ec2.internal', POD_NAMESPACE: 'kube-system', WEFT_KUBE_PEERS: 'true' });
  assert.deepEqual([o.store, o.kubeconfigFile, o.kubeApiUrl, o.nodeName, o.kubeNamespace, o.kubePeers], ['kube', '/etc/kube.conf', 'https://10.0.0.1:6443', 'ip-10-0-1-5.ec2.internal', 'kube-system', true]);
  assert.throws(() => resolveAgentOptions({ nodeName: 'Node_1' }, {}), /--node-name="Node_1": expected a Kubernetes object name/);
  assert.throws(() => resolveAgentOptions({ kubeApiUrl: '10.0.0.1:6443' }, {}), /--kube-api-url="10.0.0.1:6443": expected https/);
  assert.throws(() => resolveAgentOptions({ store: 'consul' }, {}), /expected one of etcd, mesh, kube/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError, normalizeAgentArgs } from './flanneld-args.ts';

test("flanneld's one-dash long flags become commander's two-dash ones, as Go's flag package reads them", () => {
  assert.deepEqual(normalizeAgentArgs(['-etcd-endpoints=http://10.0.0.1:2379', '-iface=eth0', '-ip-masq', '-etcd-prefix', '/x']),
    ['--etcd-endpoints=http://10.0.0.1:2379', '--iface=eth0', '--ip-masq', '--etcd-prefix', '/x']);
  // A non-boolean flag without "=" takes the next argument as its value, even one starting with "-".
  assert.deepEqual(normalizeAgentArgs(['-etcd-prefix', '-odd', '-ip-masq=false']), ['--etcd-prefix', '-odd', '--ip-masq=false']);
  assert.deepEqual(normalizeAgentArgs(['--iface', 'eth0', '-version']), ['--iface', 'eth0', '--version']);
});

test('short flags, unknown flags and what follows "--" or a positional argument are left to commander', () => {
  assert.deepEqual(normalizeAgentArgs(['-h']), ['-h']);
  assert.deepEqual(normalizeAgentArgs(['-no-such-flag']), ['-no-such-flag']);
  assert.deepEqual(normalizeAgentArgs(['-ip-masq', 'stray', '-iface=eth0']), ['--ip-masq', 'stray', '-iface=eth0']);
  assert.deepEqual(normalizeAgentArgs(['--', '-iface=eth0']), ['--', '-iface=eth0']);
});

test("flanneld's --kube-subnet-mgr is weft's kube store; its kube flags keep their names", () => {
  assert.deepEqual(normalizeAgentArgs(['--ip-masq', '--kube-subnet-mgr', '-kubeconfig-file', '/k', '--healthz-port=8081']),
    ['--ip-masq', '--store=kube', '--kubeconfig-file', '/k', '--healthz-port=8081']);
  assert.deepEqual(normalizeAgentArgs(['-kube-subnet-mgr=false', '-kube-api-url=https://10.0.0.1:6443']), ['--kube-api-url=https://10.0.0.1:6443']);
});

test("flanneld's flags that weft lacks are refused by name, with what to do instead", () => {
  const cases: [string[], RegExp][] = [
    [['-net-config-path=/etc/kube-flannel/net-conf.json'], /^-net-config-path is not supported by weft: .*--kube-config-map/],
    [['--ip-masq', '--set-node-network-unavailable=false', '--healthz-port=8081'], /^--set-node-network-unavailable is not supported/],
    [['-net-config-path', '/etc/kube-flannel/net-conf.json'], /-net-config-path .*etcd/],
    [['-v=2'], /^-v is not supported by weft: .*--log-level/],
    [['-iface-can-reach=10.0.0.1'], /--iface/],
    [['-public-ipv6=fd00::1'], /IPv4/],
  ];
  for (const [args, re] of cases) {
    assert.throws(() => normalizeAgentArgs(args), (e) => e instanceof UsageError && e.command === 'weft agent' && re.test(e.message), args.join(' '));
  }
});

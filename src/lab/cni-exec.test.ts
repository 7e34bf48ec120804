import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cniEnv, firstIPv4, parseCniError, parseCniResult } from './cni-exec.ts';

test('the CNI environment is what a runtime sets', () => {
  const env = cniEnv('ADD', { plugin: '/usr/lib/cni/bridge', hostNs: 'weft-x-n1', podNs: 'weft-x-n1-p2', containerId: 'weft-x-n1-p2', podName: 'n1-p2' });
  assert.equal(env.CNI_COMMAND, 'ADD');
  assert.equal(env.CNI_CONTAINERID, 'weft-x-n1-p2');
  assert.equal(env.CNI_NETNS, '/run/netns/weft-x-n1-p2');
  assert.equal(env.CNI_IFNAME, 'eth0');
  assert.equal(env.CNI_ARGS, 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=n1-p2');
  assert.equal(env.CNI_PATH, '/usr/lib/cni');
  assert.equal(env.PATH, process.env.PATH);
});

test('an ADD result yields its addresses and is kept whole', () => {
  const out = JSON.stringify({
    cniVersion: '1.0.0',
    interfaces: [{ name: 'cni0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/run/netns/p' }],
    ips: [{ interface: 2, address: '10.16.1.2/24', gateway: '10.16.1.1' }],
    dns: {},
  });
  const r = parseCniResult(out);
  assert.deepEqual(r.addresses, ['10.16.1.2/24']);
  assert.equal(r.raw.cniVersion, '1.0.0');
  assert.equal(firstIPv4(['fd00::2/64', ...r.addresses]), '10.16.1.2');
  assert.equal(firstIPv4(['fd00::2/64']), undefined);
});

test('results without usable ips are rejected with a reason', () => {
  assert.throws(() => parseCniResult('not json'), /not JSON/);
  assert.throws(() => parseCniResult('[]'), /not a JSON object/);
  assert.throws(() => parseCniResult('{"cniVersion":"1.0.0"}'), /no ips/);
  assert.throws(() => parseCniResult('{"ips":[{"address":"10.16.1.2"}]}'), /ips\[0\]\.address/);
});

test('CNI error objects are summarised; other output is not mistaken for one', () => {
  assert.equal(parseCniError('{"code":7,"msg":"bad config","details":"field x"}'), 'CNI error 7: bad config (field x)');
  assert.equal(parseCniError('{"code":11,"msg":"try again"}'), 'CNI error 11: try again');
  assert.equal(parseCniError('{"ips":[]}'), undefined);
  assert.equal(parseCniError('panic'), undefined);
});

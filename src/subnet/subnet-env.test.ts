import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatCidr, parseCidr } from '../net/cidr.ts';
import { firstAddressOf, formatSubnetEnv, parseSubnetEnv, readSubnetEnv, writeSubnetEnv } from './subnet-env.ts';
import { isWeftError } from '../errors.ts';

const flannelWritten = 'FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';

test('parses what flanneld writes and masks the subnet to its network', () => {
  const env = parseSubnetEnv(flannelWritten);
  assert.deepEqual(env.networks.map(formatCidr), ['10.244.0.0/16']);
  assert.equal(env.subnet && formatCidr(env.subnet), '10.244.1.0/24');
  assert.equal(env.mtu, 1450);
  assert.equal(env.ipMasq, true);
  assert.equal(env.ipv6Subnet, undefined);
});

test('dual stack and comma-separated networks are deduplicated', () => {
  const env = parseSubnetEnv('FLANNEL_NETWORK=10.1.0.0/16,10.1.0.0/16\nFLANNEL_SUBNET=10.1.2.1/24\nFLANNEL_IPV6_NETWORK=fd00:42::/56\nFLANNEL_IPV6_SUBNET=fd00:42::1/64\nFLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\n');
  assert.deepEqual(env.networks.map(formatCidr), ['10.1.0.0/16']);
  assert.equal(env.ipv6Subnet && formatCidr(env.ipv6Subnet), 'fd00:42::/64');
  assert.equal(env.ipMasq, false);
});

test('missing keys are all named', () => {
  assert.throws(() => parseSubnetEnv('FLANNEL_NETWORK=10.1.0.0/16\n', '/x/subnet.env'), (e) =>
    isWeftError(e, 'WEFT_SUBNET_FILE') && /\/x\/subnet.env is missing FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ/.test(e.message));
});

test('malformed values name the key and value', () => {
  const cases: [string, RegExp][] = [
    [flannelWritten.replace('10.244.1.1/24', '10.244.1.300/24'), /FLANNEL_SUBNET="10.244.1.300\/24" is not a CIDR/],
    [flannelWritten.replace('1450', 'big'), /FLANNEL_MTU="big"/],
    [flannelWritten.replace('IPMASQ=true', 'IPMASQ=yes'), /FLANNEL_IPMASQ="yes"/],
    [flannelWritten.replace('10.244.1.1/24', '10.9.1.1/24'), /FLANNEL_SUBNET="10.9.1.1\/24" is not inside the network 10.244.0.0\/16/],
  ];
  for (const [text, pattern] of cases) assert.throws(() => parseSubnetEnv(text), pattern);
});

test('a missing file says the agent is probably not running', () => {
  assert.throws(() => readSubnetEnv('/nonexistent/subnet.env'), (e) =>
    isWeftError(e, 'WEFT_SUBNET_FILE') && /no such file or directory/.test(e.message) && /agent/.test(e.message));
});

test('writes flannel\'s exact format atomically with mode 0644, and reads it back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-subnet-'));
  try {
    const path = join(dir, 'run', 'subnet.env');
    const subnet = parseCidr('10.244.1.0/24');
    writeSubnetEnv(path, { network: parseCidr('10.244.0.0/16'), subnet: firstAddressOf(subnet), mtu: 1450, ipMasq: true });
    assert.equal(readFileSync(path, 'utf8'), flannelWritten);
    assert.equal(statSync(path).mode & 0o777, 0o644);
    assert.equal(formatCidr(readSubnetEnv(path).subnet!), '10.244.1.0/24');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('format puts IPv6 lines after IPv4, then MTU and IPMASQ', () => {
  const text = formatSubnetEnv({ ipv6Network: parseCidr('fd00::/56'), ipv6Subnet: firstAddressOf(parseCidr('fd00::/64')), mtu: 1500, ipMasq: false });
  assert.equal(text, 'FLANNEL_IPV6_NETWORK=fd00::/56\nFLANNEL_IPV6_SUBNET=fd00::1/64\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n');
});

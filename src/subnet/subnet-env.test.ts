import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
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

const input = { network: parseCidr('10.244.0.0/16'), subnet: firstAddressOf(parseCidr('10.244.1.0/24')), mtu: 1450, ipMasq: true };

test('a path that cannot be written is a WEFT_IO error naming the file, and nothing is left behind', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-subnet-'));
  try {
    writeFileSync(join(dir, 'file'), '');
    const path = join(dir, 'file', 'subnet.env');
    assert.throws(() => writeSubnetEnv(path, input), (e) => isWeftError(e, 'WEFT_IO') && e.message.includes(path) && /is not a directory/.test(e.message));
    mkdirSync(join(dir, 'subnet.env'));
    assert.throws(() => writeSubnetEnv(join(dir, 'subnet.env'), input), (e) => isWeftError(e, 'WEFT_IO') && /is a directory/.test(e.message));
    assert.deepEqual(readdirSync(dir).sort(), ['file', 'subnet.env'], 'no temp file left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Real filesystems that refuse the write: a read-only tmpfs and a full one, mounted in a
// private mount namespace of a child process (root only), so the machine's mounts never change.
test('read-only and full filesystems: the cause in words, the file named, no temp file left', { skip: process.getuid?.() === 0 ? false : 'needs root (mounts in a private mount namespace)' }, () => {
  const base = mkdtempSync(join(tmpdir(), 'weft-subnet-fs-'));
  try {
    const script = `
      import { writeSubnetEnv, firstAddressOf } from ${JSON.stringify(new URL('./subnet-env.ts', import.meta.url).href)};
      import { parseCidr } from ${JSON.stringify(new URL('../net/cidr.ts', import.meta.url).href)};
      import { readdirSync, writeFileSync } from 'node:fs';
      const input = { network: parseCidr('10.244.0.0/16'), subnet: firstAddressOf(parseCidr('10.244.1.0/24')), mtu: 1450, ipMasq: true };
      const out = {};
      for (const d of ['ro', 'full']) {
        try { writeSubnetEnv('${base}/' + d + '/subnet.env', input); out[d] = { ok: true }; }
        catch (e) { out[d] = { code: e.code, message: e.message, left: readdirSync('${base}/' + d) }; }
      }
      process.stdout.write(JSON.stringify(out));`;
    const shell = [
      `mkdir -p ${base}/ro ${base}/full`,
      `mount -t tmpfs -o ro,size=64k tmpfs ${base}/ro`,
      `mount -t tmpfs -o size=4k tmpfs ${base}/full`,
      `dd if=/dev/zero of=${base}/full/filler bs=4k count=1 2>/dev/null; true`,
      `exec ${process.execPath} --input-type=module -e "$WEFT_SCRIPT"`,
    ].join(' && ');
    const { NODE_TEST_CONTEXT: _ctx, ...env } = process.env;
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', shell], { encoding: 'utf8', env: { ...env, WEFT_SCRIPT: script } });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<'ro' | 'full', { code?: string; message?: string; left?: string[] }>;
    assert.equal(out.ro.code, 'WEFT_IO');
    assert.match(out.ro.message ?? '', new RegExp(`cannot write subnet.env ${base}/ro/subnet.env: ${base}/ro is on a read-only filesystem`));
    assert.deepEqual(out.ro.left, []);
    assert.equal(out.full.code, 'WEFT_IO');
    assert.match(out.full.message ?? '', new RegExp(`cannot write subnet.env ${base}/full/subnet.env: no space left on the device holding ${base}/full`));
    assert.deepEqual(out.full.left, ['filler'], 'no temp file left');
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('WEFT_POD_LINK: absent is bridge, bridge and routed are read, anything else names the key and value', () => {
  assert.equal(parseSubnetEnv(flannelWritten).podLink, 'bridge');
  assert.equal(parseSubnetEnv(`${flannelWritten}WEFT_POD_LINK=routed\n`).podLink, 'routed');
  assert.equal(parseSubnetEnv(`${flannelWritten}WEFT_POD_LINK=bridge\n`).podLink, 'bridge');
  for (const value of ['Routed', 'ebpf', '']) {
    assert.throws(() => parseSubnetEnv(`${flannelWritten}WEFT_POD_LINK=${value}\n`, '/run/flannel/subnet.env'), (e) =>
      isWeftError(e, 'WEFT_SUBNET_FILE') && e.message.includes(`/run/flannel/subnet.env: WEFT_POD_LINK="${value}" must be "bridge" or "routed"`));
  }
});

test('WEFT_POD_LINK is written after flannel\'s keys only when given, and read back', () => {
  const input = { network: parseCidr('10.244.0.0/16'), subnet: firstAddressOf(parseCidr('10.244.1.0/24')), mtu: 1450, ipMasq: true };
  assert.equal(formatSubnetEnv(input), flannelWritten);
  const routed = formatSubnetEnv({ ...input, podLink: 'routed' });
  assert.equal(routed, `${flannelWritten}WEFT_POD_LINK=routed\n`);
  assert.equal(parseSubnetEnv(routed).podLink, 'routed');
  assert.equal(parseSubnetEnv(formatSubnetEnv({ ...input, podLink: 'bridge' })).podLink, 'bridge');
});

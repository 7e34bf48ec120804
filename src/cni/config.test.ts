import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeStdin, parsePluginConfig } from './config.ts';
import { CniError } from './cni-error.ts';
import { isWeftError } from '../errors.ts';

test('weft form: defaults are the operator-friendly ones', () => {
  const c = parsePluginConfig({ cniVersion: '1.0.0', name: 'weft', type: 'weft' });
  assert.equal(c.form, 'weft');
  assert.equal(c.bridge, 'cni0');
  assert.equal(c.subnetFile, '/run/flannel/subnet.env');
  assert.equal(c.ipamDataDir, '/var/lib/cni/networks');
  assert.equal(c.hairpinMode, true);
  assert.equal(c.isDefaultGateway, true);
  assert.equal(c.ipMasq, undefined);
  assert.ok(Object.isFrozen(c));
});

test("flannel form: kube-flannel's cni-conf.json plugin object is accepted as is", () => {
  const c = parsePluginConfig({
    cniVersion: '0.3.1', name: 'cbr0', type: 'flannel',
    delegate: { hairpinMode: true, isDefaultGateway: true },
    runtimeConfig: { portMappings: [] }, capabilities: { portMappings: true },
  });
  assert.equal(c.form, 'flannel');
  assert.equal(c.flannelStateDir, '/var/lib/cni/flannel');
  assert.equal(c.ipamDataDir, '/var/lib/cni/networks');
  assert.equal(c.hairpinMode, true);
  assert.equal(c.isDefaultGateway, true);
});

test('flannel form honours subnetFile, dataDir and delegate fields', () => {
  const c = parsePluginConfig({
    cniVersion: '1.0.0', name: 'cbr0', type: 'flannel', subnetFile: '/x/subnet.env', dataDir: '/x/flannel',
    delegate: { bridge: 'br9', mtu: 1400, ipMasq: true },
  });
  assert.equal(c.subnetFile, '/x/subnet.env');
  assert.equal(c.flannelStateDir, '/x/flannel');
  assert.equal(c.bridge, 'br9');
  assert.equal(c.mtu, 1400);
  assert.equal(c.ipMasq, true);
  assert.equal(c.hairpinMode, false); // the bridge plugin's default when the delegate omits it
});

test('errors name the field and the value', () => {
  const base = { cniVersion: '1.0.0', name: 'weft', type: 'weft' };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...base, mtu: 'big' }, /field "mtu": .* \(got "big"\)/],
    [{ ...base, mtu: 20 }, /field "mtu": .*68.*\(got 20\)/],
    [{ ...base, bridge: 'a/b' }, /field "bridge"/],
    [{ ...base, subnetFile: 'relative' }, /field "subnetFile": must be an absolute path/],
    [{ ...base, name: 'bad name' }, /field "name"/],
    [{ ...base, type: 'calico' }, /field "type": must be "weft" or "flannel" \(got "calico"\)/],
    [{ ...base, ipam: { type: 'dhcp' } }, /field "ipam.type"/],
    [{ ...base, type: 'flannel', delegate: { type: 'ipvlan' } }, /field "delegate.type"/],
    [{ ...base, type: 'flannel', delegate: { name: 'x' } }, /field "delegate.name": must not be set/],
    [{ ...base, cniVersion: undefined }, /field "cniVersion" is missing/],
  ];
  for (const [raw, pattern] of cases) {
    assert.throws(() => parsePluginConfig(raw), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && pattern.test(e.message), JSON.stringify(raw));
  }
});

test('an unknown cniVersion is error code 1 listing what we support', () => {
  assert.throws(() => parsePluginConfig({ cniVersion: '9.9.9', name: 'weft', type: 'weft' }),
    (e) => e instanceof CniError && e.code === 1 && /"9.9.9".*1.0.0/.test(e.message));
});

test('requested IPs and MAC come from runtimeConfig and args.cni', () => {
  const c = parsePluginConfig({
    cniVersion: '1.0.0', name: 'weft', type: 'weft',
    runtimeConfig: { ips: ['10.1.2.5/24'], mac: '0a:58:0a:01:02:05' }, args: { cni: { ips: ['10.1.2.6'] } },
  });
  assert.deepEqual(c.requestedIps, ['10.1.2.5/24', '10.1.2.6']);
  assert.equal(c.requestedMac, '0a:58:0a:01:02:05');
});

test('stdin that is not a JSON object is a decode error', () => {
  assert.throws(() => decodeStdin('{'), (e) => isWeftError(e, 'WEFT_DECODE') && /error decoding network config from stdin/.test(e.message));
  assert.throws(() => decodeStdin('[1]'), /expected a JSON object/);
});

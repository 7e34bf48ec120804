import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { formatCidr } from '../net/cidr.ts';
import { MemoryLeaseStore } from './memory/memory-store.ts';
import { configNotFoundMessage, loadNetworkConfig, parseNetworkConfig, type SubnetRange } from './network-config.ts';
import type { LeaseStore } from './store.ts';

const range = (r: SubnetRange | undefined): string[] =>
  r ? [formatCidr(r.network), String(r.subnetLen), formatCidr(r.subnetMin), formatCidr(r.subnetMax)] : [];

function rejects(json: string, pattern: RegExp, code: 'WEFT_INVALID_CONFIG' | 'WEFT_DECODE' = 'WEFT_INVALID_CONFIG'): void {
  assert.throws(() => parseNetworkConfig(json), (e) => {
    assert.ok(isWeftError(e, code), `expected ${code}, got ${String(e)}`);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('network config: the examples flannel documents (docs/flannel-compat.md §1.3)', () => {
  it('reads {"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}} with every default', () => {
    const c = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}');
    assert.deepEqual(range(c.ipv4), ['10.244.0.0/16', '24', '10.244.1.0/24', '10.244.255.0/24']);
    assert.equal(c.ipv6, undefined);
    assert.equal(c.enableNFTables, false);
    assert.deepEqual(c.backend, { type: 'vxlan', raw: { Type: 'vxlan' } });
    assert.deepEqual(c.warnings, []);
  });

  it('reads the SubnetLen/SubnetMin/SubnetMax example; its udp Backend is passed on raw (the data plane refuses it)', () => {
    const example = '{"Network":"10.0.0.0/8","SubnetLen":20,"SubnetMin":"10.10.0.0","SubnetMax":"10.99.0.0","Backend":{"Type":"udp","Port":7890}}';
    const c = parseNetworkConfig(example);
    assert.deepEqual(range(c.ipv4), ['10.0.0.0/8', '20', '10.10.0.0/20', '10.99.0.0/20']);
    assert.deepEqual(c.backend, { type: 'udp', raw: { Type: 'udp', Port: 7890 } });
  });
});

describe('network config: defaults', () => {
  it('SubnetLen is 24 up to a /22 and prefix+2 for smaller networks', () => {
    assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/22"}').ipv4?.subnetLen, 24);
    assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/23"}').ipv4?.subnetLen, 25);
    assert.deepEqual(range(parseNetworkConfig('{"Network":"10.1.0.0/28"}').ipv4), ['10.1.0.0/28', '30', '10.1.0.4/30', '10.1.0.12/30']);
  });

  it('a missing Backend (flannel: udp) is vxlan in weft, and so is a Backend without a Type', () => {
    assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/16"}').backend.type, 'vxlan');
    assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"VNI":7}}').backend.type, 'vxlan');
  });

  it('Backend: Type lower-cased, every other field kept as written for the backend to read', () => {
    const c = parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"Type":"Host-GW","VNI":4096,"Port":0,"MTU":0,"GBP":true}}');
    assert.deepEqual(c.backend, { type: 'host-gw', raw: { Type: 'Host-GW', VNI: 4096, Port: 0, MTU: 0, GBP: true } });
    assert.deepEqual(parseNetworkConfig('{"Network":"10.1.0.0/16","Backend":{"VNI":7}}').backend.raw, { VNI: 7 });
    assert.deepEqual(parseNetworkConfig('{"Network":"10.1.0.0/16"}').backend, { type: 'vxlan', raw: {} });
  });

  it('IPv6: IPv6SubnetLen 64 up to a /62, else prefix+2; the first subnet skipped, the last one used', () => {
    const c = parseNetworkConfig('{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"2001:cafe:42::/56"}');
    assert.deepEqual(range(c.ipv6), ['2001:cafe:42::/56', '64', '2001:cafe:42:1::/64', '2001:cafe:42:ff::/64']);
    assert.equal(parseNetworkConfig('{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/100"}').ipv6?.subnetLen, 102);
  });

  it('IPv6-only: EnableIPv4 false needs no Network (and ignores one, with a warning)', () => {
    const c = parseNetworkConfig('{"EnableIPv4":false,"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","IPv6SubnetMin":"fd00:0:0:10::","IPv6SubnetMax":"fd00:0:0:20::"}');
    assert.equal(c.ipv4, undefined);
    assert.deepEqual(range(c.ipv6), ['fd00::/48', '64', 'fd00:0:0:10::/64', 'fd00:0:0:20::/64']);
    assert.deepEqual(c.warnings, ['"Network" is ignored because "EnableIPv4" is false']);
  });

  it('EnableNFTables', () => {
    assert.equal(parseNetworkConfig('{"Network":"10.1.0.0/16","EnableNFTables":true}').enableNFTables, true);
  });
});

describe('network config: keys as Go matches them', () => {
  it('matches keys case-insensitively, the later spelling winning, null meaning unset', () => {
    const c = parseNetworkConfig('{"network":"10.1.0.0/16","SUBNETLEN":26,"subnetlen":25,"subnetmin":null,"backend":{"type":"VXLAN","vni":3,"directrouting":true}}');
    assert.deepEqual(range(c.ipv4), ['10.1.0.0/16', '25', '10.1.0.128/25', '10.1.255.128/25']);
    assert.equal(c.backend.type, 'vxlan');
    assert.deepEqual(c.backend.raw, { type: 'VXLAN', vni: 3, directrouting: true });
  });

  it('masks host bits in Network as Go does, with a warning; warns about unknown keys (the Backend\'s own keys are the backend\'s to judge)', () => {
    const c = parseNetworkConfig('{"Network":"10.1.2.3/16","Netwrok":"x","Backend":{"Type":"vxlan","Foo":1}}');
    assert.equal(c.ipv4 && formatCidr(c.ipv4.network), '10.1.0.0/16');
    assert.deepEqual(c.warnings, [
      'unknown key "Netwrok" ignored',
      '"Network" "10.1.2.3/16" has host bits set; using 10.1.0.0/16',
    ]);
  });

  it('returns a deeply frozen object', () => {
    const c = parseNetworkConfig('{"Network":"10.1.0.0/16"}');
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.backend) && Object.isFrozen(c.backend.raw) && Object.isFrozen(c.ipv4) && Object.isFrozen(c.ipv4?.subnetMin));
    assert.throws(() => { (c as { enableNFTables: boolean }).enableNFTables = true; }, TypeError);
  });
});

describe('network config: errors name the field and the value', () => {
  const cases: [string, RegExp, ('WEFT_DECODE' | 'WEFT_INVALID_CONFIG')?][] = [
    ['not json', /network config is not valid JSON/, 'WEFT_DECODE'],
    ['[1]', /must be a JSON object/, 'WEFT_DECODE'],
    ['{}', /"Network" is missing: set it to an IPv4 CIDR/],
    ['{"Network":"0.0.0.0/0"}', /"Network" is 0.0.0.0\/0/],
    ['{"Network":"10.1.0.0"}', /"Network" "10.1.0.0" is not a CIDR/],
    ['{"Network":"fd00::/48"}', /"Network" "fd00::\/48" must be an IPv4 CIDR; put an IPv6 network in "IPv6Network"/],
    ['{"Network":10}', /"Network" 10 must be a string/],
    ['{"Network":"10.1.0.0/29"}', /"Network" 10.1.0.0\/29 is too small: the prefix must be \/28 or shorter/],
    ['{"Network":"10.1.0.0/16","SubnetLen":33}', /^network config: "SubnetLen" 33 must be at most 30$/],
    ['{"Network":"10.1.0.0/16","SubnetLen":31}', /"SubnetLen" 31 must be at most 30/],
    ['{"Network":"10.1.0.0/16","SubnetLen":17}', /"SubnetLen" 17 must be at least 18: Network 10.1.0.0\/16 must hold at least four subnets/],
    ['{"Network":"10.1.0.0/16","SubnetLen":"24"}', /"SubnetLen" "24" must be a whole number/],
    ['{"Network":"10.1.0.0/16","SubnetLen":24.5}', /"SubnetLen" 24.5 must be a whole number/],
    ['{"Network":"10.1.0.0/16","SubnetMin":"10.2.0.0"}', /"SubnetMin" 10.2.0.0 is not inside Network 10.1.0.0\/16/],
    ['{"Network":"10.1.0.0/16","SubnetMax":"10.1.3.7"}', /"SubnetMax" 10.1.3.7 is not on a \/24 boundary \(SubnetLen\); did you mean 10.1.3.0\?/],
    ['{"Network":"10.1.0.0/16","SubnetMin":"fd00::"}', /"SubnetMin" "fd00::" must be an IPv4 address/],
    ['{"Network":"10.1.0.0/16","SubnetMin":"10.1.9.0","SubnetMax":"10.1.3.0"}', /"SubnetMin" 10.1.9.0 is above "SubnetMax" 10.1.3.0/],
    ['{"Network":"10.1.0.0/16","EnableIPv4":"yes"}', /"EnableIPv4" "yes" must be true or false/],
    ['{"EnableIPv4":false}', /"EnableIPv4" and "EnableIPv6" are both false/],
    ['{"Network":"10.1.0.0/16","EnableIPv6":true}', /"IPv6Network" is missing: "EnableIPv6" is true/],
    ['{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"10.2.0.0/16"}', /"IPv6Network" "10.2.0.0\/16" must be an IPv6 CIDR/],
    ['{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/125"}', /"IPv6Network" fd00::\/125 is too small: the prefix must be \/124 or shorter/],
    ['{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","IPv6SubnetLen":127}', /"IPv6SubnetLen" 127 must be at most 126/],
    ['{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","IPv6SubnetLen":49}', /"IPv6SubnetLen" 49 must be at least 50/],
    ['{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","IPv6SubnetMin":"fd01::"}', /"IPv6SubnetMin" fd01:: is not inside IPv6Network fd00::\/48/],
    ['{"Network":"10.1.0.0/16","EnableIPv6":true,"IPv6Network":"fd00::/48","IPv6SubnetMax":"fd00:0:0:1::1"}', /"IPv6SubnetMax" fd00:0:0:1::1 is not on a \/64 boundary/],
    ['{"Network":"10.1.0.0/16","Backend":"vxlan"}', /"Backend" "vxlan" must be an object/],
    ['{"Network":"10.1.0.0/16","Backend":{"Type":5}}', /"Backend.Type" 5 must be a string/],
    // The Backend's own fields (Type support, VNI, Port, MTU, GBP) are checked by the data plane's registry (src/dataplane/index.test.ts).
  ];
  for (const [json, pattern, code] of cases) {
    it(json, () => rejects(json, pattern, code));
  }
});

describe('loadNetworkConfig', () => {
  it('parses the stored config', async () => {
    const store = new MemoryLeaseStore({ config: '{"Network":"10.5.0.0/16"}' });
    assert.equal((await loadNetworkConfig(store)).ipv4?.subnetLen, 24);
  });

  it('a missing config is WEFT_NOT_READY naming the key and the API it must be written with', async () => {
    const missing = (kind: LeaseStore['kind']): LeaseStore => Object.assign(new MemoryLeaseStore(), { kind }) as LeaseStore;
    await assert.rejects(loadNetworkConfig(missing('etcd-v3')), (e) => isWeftError(e, 'WEFT_NOT_READY')
      && e.message.startsWith('flannel config not found in etcd at /coreos.com/network/config; did you write it with the v3 API?'));
    await assert.rejects(loadNetworkConfig(missing('etcd-v2'), '/example.com/net/'), (e) => isWeftError(e, 'WEFT_NOT_READY')
      && e.message.startsWith('flannel config not found in etcd at /example.com/net/config; did you write it with the v2 API?'));
    assert.match(configNotFoundMessage('etcd-v3'), /etcdctl put \/coreos.com\/network\/config '\{"Network":"10.244.0.0\/16"/);
  });
});

// The registry: which backend a Backend section names, each backend's own config checks (moved
// here from the network config, which now keeps the section raw), and the factory's choice.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Rtnetlink } from '../netlink/index.ts';
import { BACKEND_NAMES, createBackend, HostGwBackend, parseBackendConfig, VxlanBackend, type BackendConfig } from './index.ts';

const nl = {} as Rtnetlink;
const node = { underlayInterface: 'eth0', underlayIndex: 2, underlayMtu: 1500, publicIp: '192.168.1.10' };
const deps = { network: '10.244.0.0/16' };

function ok(raw: Record<string, unknown>): { config: BackendConfig; warnings: string[] } {
  const parsed = parseBackendConfig(raw);
  assert.ok(parsed.ok, parsed.ok ? '' : parsed.error);
  return parsed;
}

function refused(raw: Record<string, unknown>): string {
  const parsed = parseBackendConfig(raw);
  assert.ok(!parsed.ok, `expected ${JSON.stringify(raw)} to be refused`);
  return parsed.error;
}

describe('parseBackendConfig', () => {
  test('the registry names vxlan, host-gw and auto', () => {
    assert.deepEqual(BACKEND_NAMES, ['vxlan', 'host-gw', 'auto']);
  });

  test('vxlan defaults: VNI 1, Port 0 is 8472, MTU 0 is the underlay\'s; a missing Type is vxlan', () => {
    const want = { type: 'vxlan', settings: { vni: 1, port: 8472, mtu: undefined, learning: false, directRouting: false } };
    assert.deepEqual(ok({ Type: 'vxlan' }).config, want);
    assert.deepEqual(ok({}).config, want);
    assert.deepEqual(ok({ Type: 'vxlan', Port: 0, MTU: 0 }).config, want);
    assert.deepEqual(ok({ Type: 'vxlan', Port: 7890 }).config.settings, { ...want.settings, port: 7890 });
  });

  test('keys match as Go matches them: any case, the later spelling winning, null unset', () => {
    assert.deepEqual(ok({ type: 'VXLAN', vni: 3, directrouting: true, VNI: null, Vni: 4 }).config, {
      type: 'vxlan', settings: { vni: 4, port: 8472, mtu: undefined, learning: false, directRouting: true },
    });
  });

  test('flannel\'s Backend becomes the data plane\'s config; auto always routes directly where it can', () => {
    assert.deepEqual(ok({ Type: 'vxlan', VNI: 4096, MTU: 9001, DirectRouting: true }).config,
      { type: 'vxlan', settings: { vni: 4096, port: 8472, mtu: 9001, learning: false, directRouting: true } });
    assert.deepEqual(ok({ Type: 'Host-GW' }).config, { type: 'host-gw', settings: {} });
    const a = ok({ Type: 'auto', DirectRouting: false, MTU: 1400 }).config;
    assert.deepEqual(a, { type: 'auto', settings: { vni: 1, port: 8472, mtu: 1400, learning: false, directRouting: true } });
  });

  test('unknown keys are warnings, named under Backend', () => {
    assert.deepEqual(ok({ Type: 'vxlan', Foo: 1 }).warnings, ['unknown key "Backend.Foo" ignored']);
    assert.deepEqual(ok({ Type: 'host-gw', VNI: 1 }).warnings, ['unknown key "Backend.VNI" ignored']);
  });

  test('an unknown Type is refused, naming it and what weft has', () => {
    assert.equal(refused({ Type: 'udp', Port: 7890 }),
      'network config: backend type "udp" ("Backend.Type") is not supported by weft (a flannel backend weft does not implement); use vxlan, host-gw or auto');
    assert.match(refused({ Type: 'wireguard' }), /"wireguard" \("Backend\.Type"\) is not supported by weft \(a flannel backend weft does not implement\)/);
    assert.equal(refused({ Type: 'geneve' }), 'network config: backend type "geneve" ("Backend.Type") is not supported by weft; use vxlan, host-gw or auto');
    assert.match(refused({ Type: 'toString' }), /"tostring" \("Backend\.Type"\) is not supported/);
    assert.match(refused({ Type: 7 }), /"Backend.Type" 7 must be a string/);
  });

  test('what a backend cannot do is refused with the field named', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ VNI: 16777216 }, /"Backend.VNI" 16777216 must be at most 16777215/],
      [{ VNI: -1 }, /"Backend.VNI" -1 must be a whole number/],
      [{ Port: 70000 }, /"Backend.Port" 70000 must be at most 65535/],
      [{ MTU: 40 }, /"Backend.MTU" 40 must be between 68 and 65535/],
      [{ MTU: 100 }, /"Backend.MTU" 100 leaves less than IPv4's minimum of 68 after the 50 bytes of VXLAN overhead/],
      [{ GBP: 1 }, /"Backend.GBP" 1 must be true or false/],
      [{ GBP: true }, /"Backend.GBP" \(VXLAN Group Based Policy\) is not supported by weft/],
      [{ Type: 'auto', Learning: 'yes' }, /"Backend.Learning" "yes" must be true or false/],
    ];
    for (const [raw, re] of cases) assert.match(refused(raw), re, JSON.stringify(raw));
  });
});

describe('createBackend', () => {
  test('picks the implementation; auto publishes vxlan and routes directly', () => {
    assert.ok(createBackend(nl, node, { Type: 'host-gw' }, deps) instanceof HostGwBackend);
    const auto = createBackend(nl, node, { Type: 'auto', VNI: 7 }, deps);
    assert.ok(auto instanceof VxlanBackend);
    assert.equal(auto.type, 'auto');
    assert.equal(auto.spec.name, 'flannel.7');
    assert.equal(auto.directRouting, true);
    const vx = createBackend(nl, node, { Type: 'vxlan', VNI: 4096, Port: 4789, MTU: 9001 }, deps) as VxlanBackend;
    assert.deepEqual([vx.type, vx.spec.name, vx.spec.port, vx.spec.mtu, vx.directRouting], ['vxlan', 'flannel.4096', 4789, 8951, false]);
  });

  test('a refused section throws WEFT_INVALID_CONFIG with the same message', () => {
    assert.throws(() => createBackend(nl, node, { Type: 'udp' }, deps), (e: Error & { code?: string }) =>
      e.code === 'WEFT_INVALID_CONFIG' && /backend type "udp" \("Backend\.Type"\) is not supported by weft/.test(e.message));
  });
});

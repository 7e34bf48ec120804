import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calcFlannelRules } from './rules.ts';
import { formatSpec } from './iptables-save.ts';
import { renderRule, renderTableReplace } from './nft-plan.ts';
import { isWeftError } from '../errors.ts';
import type { FirewallRules, IptablesRuleset } from './model.ts';

/** The ruleset as iptables-save lines, chains first, then the jumps. */
function saveLines(rs: IptablesRuleset | undefined): string[] {
  assert.ok(rs);
  return [
    ...rs.chains.flatMap((c) => [`*${c.table} :${c.name}`, ...c.rules.map((r) => `-A ${c.name} ${formatSpec(r)}`)]),
    ...rs.jumps.map((j) => `*${j.table} -A ${j.chain} ${formatSpec(j.spec)}`),
  ];
}

const v4: FirewallRules = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.1/24' });

test('IPv4: flannel ≥0.20 layout, byte for byte as iptables-save prints it', () => {
  assert.equal(v4.iptables.length, 1);
  assert.deepEqual(saveLines(v4.iptables[0]), [
    '*nat :FLANNEL-POSTRTG',
    '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN',
    '-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN',
    '-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
    '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN',
    '-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    '-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully',
    '*filter :FLANNEL-FWD',
    '-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    '-A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT',
    '*nat -A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG',
    '*filter -A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD',
  ]);
});

test('nftables: tables flannel-ipv4, chains postrtg (nat/srcnat) and forward (filter), flannel quirks kept', () => {
  const [t] = v4.nftables;
  assert.ok(t);
  assert.equal(t.name, 'flannel-ipv4');
  assert.deepEqual(t.chains.map((c) => [c.name, c.type, c.hook, c.priority]), [
    ['postrtg', 'nat', 'postrouting', 'srcnat'], ['forward', 'filter', 'forward', 'filter'],
  ]);
  assert.deepEqual(t.chains.map((c) => c.rules.map((r) => renderRule('ipv4', r))), [[
    'meta mark 0x4000 return', // exact, not masked (flannel's nftables mode)
    'ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return',
    'ip saddr 10.244.0.0/16 ip daddr 10.244.1.0/24 return',
    'ip saddr != 10.244.1.0/24 ip daddr 10.244.0.0/16 return', // "saddr != P", unlike iptables' "! -s N -d P"
    'ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random',
    'ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random',
  ], ['ip saddr 10.244.0.0/16 accept', 'ip daddr 10.244.0.0/16 accept']]);
  const script = renderTableReplace(t);
  assert.match(script, /^add table ip flannel-ipv4\ndelete table ip flannel-ipv4\ntable ip flannel-ipv4 \{\n/);
  assert.match(script, /type nat hook postrouting priority srcnat; policy accept;/);
});

test('IPv6 uses ip6tables, the same rules and ff00::/8; dual stack gives two families', () => {
  const r = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.0/24', ipv6Network: 'fd00:10:244::/56', ipv6Subnet: 'fd00:10:244:1::5/64' });
  assert.deepEqual(r.iptables.map((x) => x.family), ['ipv4', 'ipv6']);
  const v6 = saveLines(r.iptables[1]);
  assert.ok(v6.includes('-A FLANNEL-POSTRTG -s fd00:10:244::/56 ! -d ff00::/8 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully'));
  assert.ok(v6.includes('-A FLANNEL-POSTRTG -s fd00:10:244:1::/64 -d fd00:10:244::/56 -m comment --comment "flanneld masq" -j RETURN'));
  assert.deepEqual(r.nftables.map((t) => [t.family, t.name]), [['ipv4', 'flannel-ipv4'], ['ipv6', 'flannel-ipv6']]);
  assert.equal(renderRule('ipv6', r.nftables[1]?.chains[0]?.rules[4] ?? assert.fail()), 'ip6 saddr fd00:10:244::/56 ip6 daddr != ff00::/8 masquerade fully-random');
  const only6 = calcFlannelRules({ ipv6Network: 'fd00::/48', ipv6Subnet: 'fd00:0:0:1::/64' });
  assert.deepEqual(only6.iptables.map((x) => x.family), ['ipv6']);
});

test('options: no --random-fully, no masquerade (FLANNEL_IPMASQ=false), no forward rules', () => {
  const plain = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.0/24', randomFully: false });
  assert.ok(!saveLines(plain.iptables[0]).some((l) => l.includes('--random-fully')));
  assert.ok(!plain.nftables[0]?.chains[0]?.rules.some((r) => r.fullyRandom));
  const fwdOnly = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.0/24', ipMasq: false });
  assert.deepEqual(fwdOnly.iptables[0]?.chains.map((c) => c.name), ['FLANNEL-FWD']);
  assert.deepEqual(fwdOnly.nftables[0]?.chains.map((c) => c.name), ['forward']);
  const none = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.0/24', ipMasq: false, forwardRules: false });
  assert.deepEqual(none, { iptables: [], nftables: [] });
});

test('invalid combinations are WEFT_INVALID_CONFIG errors', () => {
  const bad = [
    {},
    { network: '10.244.0.0/16' },
    { network: 'fd00::/48', subnet: 'fd00:0:0:1::/64' },
    { network: '10.244.0.0/16', subnet: '10.244.1.0/24', ipv6Network: '10.0.0.0/8', ipv6Subnet: '10.1.0.0/16' },
  ];
  for (const o of bad) assert.throws(() => calcFlannelRules(o), (e: unknown) => isWeftError(e, 'WEFT_INVALID_CONFIG'), JSON.stringify(o));
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planEnsure, planRemove } from './iptables-plan.ts';
import { formatSpec, parseIptablesSave } from './iptables-save.ts';
import { calcFlannelRules } from './rules.ts';
import type { IptablesRuleset } from './model.ts';

const rs = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.0/24' }).iptables[0] as IptablesRuleset;
const [postrtg, fwd] = rs.chains;
const [masqJump, fwdJump] = rs.jumps;
assert.ok(postrtg && fwd && masqJump && fwdJump);

/** An iptables-save text holding the given chains (name → specs) per table. */
function save(tables: Record<string, Record<string, readonly (readonly string[])[]>>): string {
  return Object.entries(tables).map(([t, chains]) => [`*${t}`, ...Object.keys(chains).map((c) => `:${c} - [0:0]`),
    ...Object.entries(chains).flatMap(([c, specs]) => specs.map((s) => `-A ${c} ${formatSpec(s)}`)), 'COMMIT'].join('\n')).join('\n');
}
const installed = (): Record<string, Record<string, readonly (readonly string[])[]>> => ({
  nat: { POSTROUTING: [masqJump.spec], 'FLANNEL-POSTRTG': postrtg.rules },
  filter: { FORWARD: [fwdJump.spec], 'FLANNEL-FWD': fwd.rules },
});

test('fully installed: in sync, nothing to run', () => {
  const p = planEnsure(rs, parseIptablesSave(save(installed())));
  assert.deepEqual(p, { check: { inSync: true, missing: [], unexpected: [] }, script: undefined });
});

test('nothing installed: every rule missing; one script creates chains, then appends jumps', () => {
  const p = planEnsure(rs, parseIptablesSave(''));
  assert.equal(p.check.inSync, false);
  assert.equal(p.check.missing.length, 2 + 6 + 2 + 2); // 2 chains, 8 rules, 2 jumps
  assert.equal(p.script, [
    '*nat', ':FLANNEL-POSTRTG - [0:0]', ...postrtg.rules.map((r) => `-A FLANNEL-POSTRTG ${formatSpec(r)}`),
    '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG', 'COMMIT',
    '*filter', ':FLANNEL-FWD - [0:0]', ...fwd.rules.map((r) => `-A FLANNEL-FWD ${formatSpec(r)}`),
    '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD', 'COMMIT', '',
  ].join('\n'));
});

test('reordered chain: reported and rebuilt (flush via declaration, then re-append); other table untouched', () => {
  const state = installed();
  state.nat!['FLANNEL-POSTRTG'] = [...postrtg.rules].reverse();
  const p = planEnsure(rs, parseIptablesSave(save(state)));
  assert.deepEqual(p.check.missing, []);
  assert.deepEqual(p.check.unexpected, ['rules of nat FLANNEL-POSTRTG are out of order']);
  assert.ok(p.script?.startsWith('*nat\n:FLANNEL-POSTRTG - [0:0]\n'));
  assert.ok(!p.script?.includes('*filter'));
  assert.ok(!p.script?.includes('POSTROUTING'), 'a single correct jump is left where it is');
});

test('partial chain and a foreign rule inside it: missing and unexpected both listed', () => {
  const state = installed();
  state.filter!['FLANNEL-FWD'] = [fwd.rules[0]!, ['-s', '6.6.6.0/24', '-j', 'ACCEPT']];
  const p = planEnsure(rs, parseIptablesSave(save(state)));
  assert.deepEqual(p.check.missing, ['-t filter -A FLANNEL-FWD -d 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT']);
  assert.deepEqual(p.check.unexpected, ['foreign rule in FLANNEL-FWD: -t filter -A FLANNEL-FWD -s 6.6.6.0/24 -j ACCEPT']);
});

test('duplicate jumps: delete every copy, append one', () => {
  const state = installed();
  state.nat!.POSTROUTING = [masqJump.spec, ['-j', 'KUBE-POSTROUTING'], masqJump.spec];
  const p = planEnsure(rs, parseIptablesSave(save(state)));
  assert.equal(p.check.unexpected.length, 1);
  assert.match(p.check.unexpected[0] ?? '', /^2 copies of/);
  const del = '-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG';
  assert.equal(p.script, `*nat\n${del}\n${del}\n${del.replace('-D', '-A')}\nCOMMIT\n`);
});

test('remove: deletes jumps and any other rule targeting our chains, then flushes and deletes them', () => {
  const state = installed();
  state.nat!.POSTROUTING = [['-j', 'KUBE-POSTROUTING'], masqJump.spec, ['-s', '10.0.0.0/8', '-j', 'FLANNEL-POSTRTG']];
  const script = planRemove(rs, parseIptablesSave(save(state)));
  assert.equal(script, [
    '*nat', '-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG', '-D POSTROUTING -s 10.0.0.0/8 -j FLANNEL-POSTRTG',
    '-F FLANNEL-POSTRTG', '-X FLANNEL-POSTRTG', 'COMMIT',
    '*filter', '-D FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD', '-F FLANNEL-FWD', '-X FLANNEL-FWD', 'COMMIT', '',
  ].join('\n'));
  assert.ok(!script?.includes('KUBE-POSTROUTING'));
});

test('remove with nothing installed: no script (idempotent)', () => {
  assert.equal(planRemove(rs, parseIptablesSave('')), undefined);
  assert.equal(planRemove(rs, parseIptablesSave(save({ nat: { POSTROUTING: [['-j', 'KUBE-POSTROUTING']] } }))), undefined);
});

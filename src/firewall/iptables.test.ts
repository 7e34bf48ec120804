import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IptablesBackend, parseIptablesVersion, versionAtLeast } from './iptables.ts';
import { calcFlannelRules } from './rules.ts';
import { planEnsure } from './iptables-plan.ts';
import { parseIptablesSave, formatSpec } from './iptables-save.ts';
import { fakeRunner } from './testing/fake-runner.ts';
import { isWeftError } from '../errors.ts';
import type { IptablesRuleset } from './model.ts';

const rules = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.0/24' });
const rs = rules.iptables[0] as IptablesRuleset;

/** iptables-save text that holds the ruleset exactly. */
function fullSave(r: IptablesRuleset): string {
  const tables = ['nat', 'filter'];
  return tables.map((t) => [`*${t}`,
    ...r.chains.filter((c) => c.table === t).map((c) => `:${c.name} - [0:0]`),
    ...r.jumps.filter((j) => j.table === t).map((j) => `-A ${j.chain} ${formatSpec(j.spec)}`),
    ...r.chains.filter((c) => c.table === t).flatMap((c) => c.rules.map((s) => `-A ${c.name} ${formatSpec(s)}`)),
    'COMMIT'].join('\n')).join('\n');
}

test('version parsing and the 1.6.2 threshold', () => {
  assert.deepEqual(parseIptablesVersion('iptables v1.8.9 (nf_tables)'), [1, 8, 9]);
  assert.equal(parseIptablesVersion('garbage'), undefined);
  assert.equal(versionAtLeast([1, 6, 2], [1, 6, 2]), true);
  assert.equal(versionAtLeast([1, 6, 1], [1, 6, 2]), false);
  assert.equal(versionAtLeast([1, 10, 0], [1, 6, 2]), true);
});

test('in sync: check and ensure cost one iptables-save each and write nothing', async () => {
  const run = fakeRunner(() => ({ stdout: fullSave(rs) }));
  const b = new IptablesBackend({ runner: run });
  assert.deepEqual(await b.check(rules), { inSync: true, missing: [], unexpected: [] });
  assert.equal((await b.ensure(rules)).changed, false);
  assert.deepEqual(run.calls.map((c) => c.argv), [['iptables-save'], ['iptables-save']]);
});

test('out of sync: one iptables-restore --noflush --wait with the planned script', async () => {
  const run = fakeRunner((argv) => (argv[1] === '--version' ? { stdout: 'iptables v1.8.9 (nf_tables)\n' } : {}));
  const r = await new IptablesBackend({ runner: run }).ensure(rules);
  assert.equal(r.changed, true);
  assert.equal(r.inSync, false);
  const restore = run.calls.filter((c) => c.argv[0] === 'iptables-restore');
  assert.equal(restore.length, 1);
  assert.deepEqual(restore[0]?.argv, ['iptables-restore', '--noflush', '--wait']);
  assert.equal(restore[0]?.input, planEnsure(rs, parseIptablesSave('')).script);
});

test('old iptables: no --random-fully support, and no --wait', async () => {
  const run = fakeRunner((argv) => (argv[1] === '--version' ? { stdout: 'iptables v1.6.1\n' } : {}));
  const b = new IptablesBackend({ runner: run });
  assert.equal(await b.supportsRandomFully(), false);
  await b.ensure(rules);
  assert.deepEqual(run.calls.find((c) => c.argv[0] === 'iptables-restore')?.argv, ['iptables-restore', '--noflush']);
});

test('a failed restore is planned again from a fresh save once; a second failure is a WEFT_FIREWALL error', async () => {
  let restores = 0;
  const run = fakeRunner((argv) => {
    if (argv[0] === 'iptables-restore') return ++restores === 1 ? { code: 1, stderr: 'iptables-restore: line 3 failed' } : {};
    return {};
  });
  await new IptablesBackend({ runner: run }).ensure(rules);
  assert.equal(restores, 2);
  assert.equal(run.calls.filter((c) => c.argv[0] === 'iptables-save').length, 2);

  const failing = fakeRunner((argv) => (argv[0] === 'iptables-restore' ? { code: 2, stderr: 'Permission denied (you must be root)' } : {}));
  await assert.rejects(new IptablesBackend({ runner: failing }).ensure(rules), (e: unknown) =>
    isWeftError(e, 'WEFT_FIREWALL') && e.message.includes('iptables-restore --noflush') && e.message.includes('Permission denied') &&
    e.message.includes('NET_ADMIN') && (e.details ?? '').includes('FLANNEL-POSTRTG'));
});

test('a failing iptables-save is an error naming the command and its stderr', async () => {
  const run = fakeRunner(() => ({ code: 1, stderr: "can't initialize iptables table `nat'" }));
  await assert.rejects(new IptablesBackend({ runner: run }).check(rules),
    (e: unknown) => isWeftError(e, 'WEFT_FIREWALL') && /iptables-save failed \(exit 1\).*can't initialize/.test(e.message));
});

test('remove: nothing installed → no restore; tool missing → success; IPv6 and variants pick their commands', async () => {
  const empty = fakeRunner(() => ({}));
  await new IptablesBackend({ runner: empty }).remove(rules);
  assert.deepEqual(empty.calls.map((c) => c.argv[0]), ['iptables-save']);

  const missing = fakeRunner(() => ({ code: 127, stderr: 'ip6tables-save: command not found' }));
  const v6 = calcFlannelRules({ ipv6Network: 'fd00::/48', ipv6Subnet: 'fd00:0:0:1::/64' });
  await new IptablesBackend({ runner: missing }).remove(v6);
  assert.deepEqual(missing.calls.map((c) => c.argv[0]), ['ip6tables-save']);
  await assert.rejects(new IptablesBackend({ runner: missing }).ensure(v6), (e: unknown) => isWeftError(e, 'WEFT_FIREWALL') && /install ip6tables-save/.test(e.message));

  const legacy = fakeRunner(() => ({ stdout: fullSave(rs) }));
  await new IptablesBackend({ runner: legacy, variant: 'legacy' }).remove(rules);
  assert.deepEqual(legacy.calls.map((c) => c.argv[0]), ['iptables-legacy-save', 'iptables-legacy', 'iptables-legacy-restore']);
});

test('single-table rulesets read only that table', async () => {
  const natOnly = calcFlannelRules({ network: '10.244.0.0/16', subnet: '10.244.1.0/24', forwardRules: false });
  const run = fakeRunner(() => ({}));
  await new IptablesBackend({ runner: run }).check(natOnly);
  assert.deepEqual(run.calls[0]?.argv, ['iptables-save', '-t', 'nat']);
});

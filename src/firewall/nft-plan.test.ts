import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { diffNftTable, parseNftTable, renderTableDelete, renderTableReplace } from './nft-plan.ts';
import { calcFlannelRules } from './rules.ts';
import type { NftTable } from './model.ts';

// Captured from nft 1.0.6 after weft installed these rules in a scratch namespace.
const FIXTURE = readFileSync(new URL('./testdata/flannel-ipv6.nft.json', import.meta.url), 'utf8');
const rules = calcFlannelRules({ network: '10.99.0.0/16', subnet: '10.99.1.0/24', ipv6Network: 'fd00:99::/48', ipv6Subnet: 'fd00:99:0:1::/64' });
const v6 = rules.nftables[1] as NftTable;

test('real nft -j output of an installed table parses back to exactly the desired rules', () => {
  const installed = parseNftTable('ipv6', FIXTURE);
  assert.ok(installed);
  assert.deepEqual(installed.get('forward')?.rules, ['ip6 saddr fd00:99::/48 accept', 'ip6 daddr fd00:99::/48 accept']);
  assert.equal(installed.get('postrtg')?.rules[0], 'meta mark 0x4000 return');
  assert.deepEqual(diffNftTable(v6, installed), { inSync: true, missing: [], unexpected: [] });
});

test('a different lease shows as missing + foreign rules', () => {
  const other = calcFlannelRules({ ipv6Network: 'fd00:99::/48', ipv6Subnet: 'fd00:99:0:2::/64' }).nftables[0] as NftTable;
  const d = diffNftTable(other, parseNftTable('ipv6', FIXTURE));
  assert.equal(d.inSync, false);
  assert.ok(d.missing.includes('ip6 flannel-ipv6 postrtg: ip6 saddr fd00:99:0:2::/64 ip6 daddr fd00:99::/48 return'));
  assert.ok(d.unexpected.includes('foreign rule in ip6 flannel-ipv6 postrtg: ip6 saddr fd00:99:0:1::/64 ip6 daddr fd00:99::/48 return'));
});

test('unknown expressions, wrong hooks, extra chains and wrong order are all drift', () => {
  const doc = JSON.parse(FIXTURE) as { nftables: Record<string, Record<string, unknown>>[] };
  const items = doc.nftables;
  items.push({ rule: { family: 'ip6', table: 'flannel-ipv6', chain: 'forward', expr: [{ counter: { packets: 0, bytes: 0 } }, { accept: null }] } });
  items.push({ chain: { family: 'ip6', table: 'flannel-ipv6', name: 'extra', type: 'filter', hook: 'input', prio: 0, policy: 'accept' } });
  const postrtg = items.find((i) => i.chain?.name === 'postrtg');
  assert.ok(postrtg?.chain);
  postrtg.chain.prio = 0;
  const d = diffNftTable(v6, parseNftTable('ipv6', JSON.stringify(doc)));
  assert.deepEqual(d.missing, []);
  assert.equal(d.unexpected.length, 3);
  assert.match(d.unexpected[0] ?? '', /postrtg is "type nat hook postrouting priority 0/);
  assert.match(d.unexpected[1] ?? '', /^foreign rule in ip6 flannel-ipv6 forward: <unrecognised: \[\{"counter"/);
  assert.equal(d.unexpected[2], 'foreign chain ip6 flannel-ipv6 extra');

  const reordered = { ...v6, chains: v6.chains.map((c) => ({ ...c, rules: [...c.rules].reverse() })) };
  assert.deepEqual(diffNftTable(reordered, parseNftTable('ipv6', FIXTURE)).unexpected,
    ['rules of ip6 flannel-ipv6 postrtg are out of order', 'rules of ip6 flannel-ipv6 forward are out of order']);
});

test('absent table: every rule missing', () => {
  assert.equal(parseNftTable('ipv6', '{"nftables": [{"metainfo": {}}]}'), undefined);
  const d = diffNftTable(v6, undefined);
  assert.equal(d.missing.length, 8);
});

test('replace and delete are single transactions that work whether or not the table exists', () => {
  assert.match(renderTableReplace(v6), /^add table ip6 flannel-ipv6\ndelete table ip6 flannel-ipv6\ntable ip6 flannel-ipv6 \{\n\tcomment "rules for flannel-ipv6"\n/);
  assert.equal(renderTableDelete(v6), 'add table ip6 flannel-ipv6\ndelete table ip6 flannel-ipv6\n');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calcContainerMasqRules, calcContainerMasqTeardown, containerMasqChainName } from './container-masq.ts';
import { formatSpec } from './iptables-save.ts';

test('chain name is CNI- + sha512(network+containerID), 28 characters (the example in docs/cni-spec-notes.md §2.1)', () => {
  assert.equal(containerMasqChainName('probenet', 'probe-ctr-1'), 'CNI-d7d30e1b6e7b059597f03edc');
  assert.equal(containerMasqChainName('cbr0', 'x'.repeat(64)).length, 28);
  // The plugin hashes the plain concatenation, so these collide there too; kept for compatibility.
  assert.equal(containerMasqChainName('a', 'bc'), containerMasqChainName('ab', 'c'));
  assert.notEqual(containerMasqChainName('probenet', 'probe-ctr-2'), 'CNI-d7d30e1b6e7b059597f03edc');
});

test('rules match the bridge plugin, comment on each, one ruleset per family', () => {
  const r = calcContainerMasqRules({ network: 'probenet', containerId: 'probe-ctr-1', ips: ['10.99.1.2/24', 'fd00:99:0:1::2/64'] });
  const chain = 'CNI-d7d30e1b6e7b059597f03edc';
  const c = '-m comment --comment "name: \\"probenet\\" id: \\"probe-ctr-1\\""';
  assert.equal(r.nftables.length, 0);
  assert.deepEqual(r.iptables.map((rs) => [rs.family, rs.chains.map((ch) => [ch.table, ch.name, ch.rules.map(formatSpec)]), rs.jumps.map((j) => `${j.chain} ${formatSpec(j.spec)}`)]), [
    ['ipv4', [['nat', chain, [`-d 10.99.1.0/24 ${c} -j ACCEPT`, `! -d 224.0.0.0/4 ${c} -j MASQUERADE`]]], [`POSTROUTING -s 10.99.1.2/32 ${c} -j ${chain}`]],
    ['ipv6', [['nat', chain, [`-d fd00:99:0:1::/64 ${c} -j ACCEPT`, `! -d ff00::/8 ${c} -j MASQUERADE`]]], [`POSTROUTING -s fd00:99:0:1::2/128 ${c} -j ${chain}`]],
  ]);
});

test('a second address of the same family appends like AppendUnique: ACCEPT, MASQUERADE, ACCEPT', () => {
  const r = calcContainerMasqRules({ network: 'n', containerId: 'c', ips: ['10.1.0.5/24', '10.2.0.5/16'] });
  const rules = r.iptables[0]?.chains[0]?.rules.map((s) => `${s[0]} ${s[1]} ${s.at(-1)}`);
  assert.deepEqual(rules, ['-d 10.1.0.0/24 ACCEPT', '! -d MASQUERADE', '-d 10.2.0.0/16 ACCEPT']);
  assert.equal(r.iptables[0]?.jumps.length, 2);
});

test('teardown needs no addresses: the chain in both families, no jumps (remove finds them)', () => {
  const t = calcContainerMasqTeardown('probenet', 'probe-ctr-1');
  assert.deepEqual(t.iptables.map((rs) => [rs.family, rs.chains.map((c) => c.name), rs.jumps.length]),
    [['ipv4', ['CNI-d7d30e1b6e7b059597f03edc'], 0], ['ipv6', ['CNI-d7d30e1b6e7b059597f03edc'], 0]]);
});

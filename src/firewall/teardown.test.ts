import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flannelChainsIn, flannelNftTables, flannelRulesByName, removeAllFlannelRules } from './teardown.ts';
import { fakeRunner } from './testing/fake-runner.ts';

// What iptables-save prints on a node flanneld (or weft) set up for 10.244.0.0/16, plus an operator's rule.
const NAT_AND_FILTER = `*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FLANNEL-POSTRTG - [0:0]
-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-A POSTROUTING -s 192.168.0.0/24 -j MASQUERADE
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully
COMMIT
*filter
:FORWARD ACCEPT [0:0]
:FLANNEL-FWD - [0:0]
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT
COMMIT
`;

test('the chains are found by name alone, whatever their addresses', () => {
  const [v4] = flannelRulesByName().iptables;
  assert.ok(v4);
  assert.deepEqual(flannelChainsIn(NAT_AND_FILTER, v4), ['nat FLANNEL-POSTRTG', 'filter FLANNEL-FWD']);
  assert.deepEqual(flannelChainsIn('*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -s 192.168.0.0/24 -j MASQUERADE\nCOMMIT\n', v4), []);
});

test('nft tables: only flannel-ipv4 (ip) and flannel-ipv6 (ip6) count', () => {
  assert.deepEqual(flannelNftTables('table ip flannel-ipv4\ntable inet filter\ntable ip6 flannel-ipv6\n').map((t) => t.name), ['flannel-ipv4', 'flannel-ipv6']);
  assert.deepEqual(flannelNftTables('table ip6 flannel-ipv4\ntable inet flannel-ipv6\n'), []);
});

test('removal deletes the jumps and chains (not the operator\'s rule) in each build that has them, and the nft tables', async () => {
  const run = fakeRunner((argv) => {
    const [cmd] = argv;
    if (cmd === 'iptables-nft-save') return { stdout: NAT_AND_FILTER };
    if (cmd === 'iptables-nft' || cmd === 'ip6tables-nft') return { stdout: 'iptables v1.8.9 (nf_tables)' };
    if (cmd === 'ip6tables-nft-save') return { stdout: '' };
    if (cmd?.includes('legacy')) return { code: 127 };
    if (cmd === 'nft' && argv[1] === 'list') return { stdout: 'table ip flannel-ipv4\ntable ip nat\n' };
    return undefined;
  });
  const report = await removeAllFlannelRules({ runner: run });
  assert.deepEqual(report, { removed: ['iptables-nft ipv4: nat FLANNEL-POSTRTG, filter FLANNEL-FWD', 'nft: table ip flannel-ipv4'], errors: [] });
  const restore = run.calls.find((c) => c.argv[0] === 'iptables-nft-restore');
  assert.ok(restore, 'iptables-nft-restore ran');
  assert.match(restore.input ?? '', /-D POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG/);
  assert.match(restore.input ?? '', /-X FLANNEL-POSTRTG/);
  assert.match(restore.input ?? '', /-X FLANNEL-FWD/);
  assert.doesNotMatch(restore.input ?? '', /192\.168\.0\.0/);
  assert.equal(run.calls.some((c) => c.argv[0] === 'iptables-save'), false, 'plain iptables is one of the builds already read');
  const nft = run.calls.find((c) => c.argv[0] === 'nft' && c.argv[1] === '-f');
  assert.equal(nft?.input, 'add table ip flannel-ipv4\ndelete table ip flannel-ipv4\n');
});

test('a failing tool is reported, not thrown; missing tools are skipped', async () => {
  const run = fakeRunner((argv) => (argv[0] === 'iptables-nft-save' ? { code: 4, stderr: 'Permission denied (you must be root)' } : { code: 127 }));
  const report = await removeAllFlannelRules({ runner: run });
  assert.deepEqual(report.removed, []);
  assert.deepEqual(report.errors, ['iptables-nft-save failed (exit 4): Permission denied (you must be root)']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countIptablesRules, detectBackend, nativeNftTables } from './detect.ts';
import { fakeRunner } from './testing/fake-runner.ts';
import { isWeftError } from '../errors.ts';

interface Host { iptables?: boolean; nft?: boolean; save?: string; tables?: string }
const XTABLES_ONLY = '{"nftables": [{"metainfo": {}}, {"table": {"family": "ip", "name": "nat"}}, {"table": {"family": "ip6", "name": "filter"}}, {"table": {"family": "bridge", "name": "filter"}}]}';
const NATIVE = '{"nftables": [{"table": {"family": "ip", "name": "nat"}}, {"table": {"family": "ip", "name": "kube-proxy"}}, {"table": {"family": "inet", "name": "filter"}}]}';
const RULES = '*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j KUBE-FORWARD\nCOMMIT\n';

function host(h: Host) {
  return fakeRunner((argv) => {
    const [cmd, arg] = argv;
    if (arg === '--version') return { code: (cmd === 'nft' ? h.nft : h.iptables) ? 0 : 127 };
    if (cmd === 'iptables-save') return { stdout: h.save ?? '' };
    if (cmd === 'nft') return { stdout: h.tables ?? '{"nftables": []}' };
    return { code: 1, stderr: 'unexpected command' };
  });
}

test('auto: the documented rule, case by case', async () => {
  const cases: [Host, 'iptables' | 'nftables', RegExp][] = [
    [{ iptables: true, nft: false }, 'iptables', /only iptables/],
    [{ iptables: false, nft: true }, 'nftables', /only nft/],
    [{ iptables: true, nft: true, save: RULES, tables: NATIVE }, 'iptables', /1 rule\(s\)/],
    [{ iptables: true, nft: true, save: '*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n', tables: NATIVE }, 'nftables', /ip kube-proxy, inet filter/],
    [{ iptables: true, nft: true, tables: XTABLES_ONLY }, 'iptables', /default/],
    [{ iptables: true, nft: true }, 'iptables', /default/],
  ];
  for (const [h, kind, reason] of cases) {
    const d = await detectBackend({ runner: host(h) });
    assert.equal(d.kind, kind, JSON.stringify(h));
    assert.match(d.reason, reason);
  }
});

test('explicit choices are obeyed, and fail when the tool is missing', async () => {
  assert.equal((await detectBackend({ backend: 'nftables', runner: host({ iptables: true, nft: true, save: RULES }) })).kind, 'nftables');
  assert.equal((await detectBackend({ backend: 'iptables', runner: host({ iptables: true, nft: true, tables: NATIVE }) })).kind, 'iptables');
  await assert.rejects(detectBackend({ backend: 'nftables', runner: host({ iptables: true }) }),
    (e: unknown) => isWeftError(e, 'WEFT_FIREWALL') && /nft --version/.test(e.message) && /apt-get install nftables/.test(e.message));
  await assert.rejects(detectBackend({ runner: host({}) }), (e: unknown) => isWeftError(e, 'WEFT_FIREWALL') && /neither/.test(e.message));
});

test('the iptables variant picks the commands probed', async () => {
  const run = host({ iptables: true, nft: true });
  await detectBackend({ runner: run, iptablesVariant: 'legacy' });
  assert.ok(run.calls.some((c) => c.argv[0] === 'iptables-legacy'));
  assert.ok(run.calls.some((c) => c.argv[0] === 'iptables-legacy-save'));
});

test('helpers: rule counting and the xtables table filter', () => {
  assert.equal(countIptablesRules(RULES + RULES), 2);
  assert.deepEqual(nativeNftTables(XTABLES_ONLY), []);
  assert.deepEqual(nativeNftTables(NATIVE), ['ip kube-proxy', 'inet filter']);
});

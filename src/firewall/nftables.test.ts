import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { NftablesBackend } from './nftables.ts';
import { calcFlannelRules } from './rules.ts';
import { fakeRunner } from './testing/fake-runner.ts';
import { isWeftError } from '../errors.ts';

const FIXTURE = readFileSync(new URL('./testdata/flannel-ipv6.nft.json', import.meta.url), 'utf8');
const rules = calcFlannelRules({ network: '10.99.0.0/16', subnet: '10.99.1.0/24', ipv6Network: 'fd00:99::/48', ipv6Subnet: 'fd00:99:0:1::/64' });
const ABSENT = { code: 1, stderr: 'Error: No such file or directory\nlist table ip flannel-ipv4\n' };

test('check: one nft -j list table per family; a missing table is "not installed", not an error', async () => {
  const run = fakeRunner((argv) => (argv[4] === 'ip6' ? { stdout: FIXTURE } : ABSENT));
  const c = await new NftablesBackend({ runner: run }).check(rules);
  assert.deepEqual(run.calls.map((x) => x.argv.join(' ')), ['nft -j list table ip flannel-ipv4', 'nft -j list table ip6 flannel-ipv6']);
  assert.equal(c.inSync, false);
  assert.equal(c.missing.length, 8);
  assert.ok(c.missing.every((m) => m.startsWith('ip flannel-ipv4 ')));
});

test('ensure replaces only the drifted tables, in one nft -f - transaction', async () => {
  const run = fakeRunner((argv) => (argv[4] === 'ip6' ? { stdout: FIXTURE } : argv[1] === '-f' ? {} : ABSENT));
  const r = await new NftablesBackend({ runner: run }).ensure(rules);
  assert.equal(r.changed, true);
  const applies = run.calls.filter((c) => c.argv[1] === '-f');
  assert.equal(applies.length, 1);
  assert.match(applies[0]?.input ?? '', /^add table ip flannel-ipv4\ndelete table ip flannel-ipv4\n/);
  assert.ok(!applies[0]?.input?.includes('flannel-ipv6'));
});

test('other nft failures are WEFT_FIREWALL errors with stderr; remove is one transaction', async () => {
  const denied = fakeRunner(() => ({ code: 1, stderr: 'Error: Operation not permitted' }));
  await assert.rejects(new NftablesBackend({ runner: denied }).check(rules),
    (e: unknown) => isWeftError(e, 'WEFT_FIREWALL') && /nft -j list table ip flannel-ipv4 failed.*Operation not permitted/.test(e.message));
  const run = fakeRunner(() => ({}));
  await new NftablesBackend({ runner: run }).remove(rules);
  assert.deepEqual(run.calls.map((c) => [c.argv.join(' '), c.input]), [['nft -f -',
    'add table ip flannel-ipv4\ndelete table ip flannel-ipv4\nadd table ip6 flannel-ipv6\ndelete table ip6 flannel-ipv6\n']]);
});

test('fully-random support is probed once with nft --check (never committed) and cached', async () => {
  let ok = false;
  const run = fakeRunner(() => ({ code: ok ? 0 : 1 }));
  const b = new NftablesBackend({ runner: run });
  assert.equal(await b.supportsRandomFully(), false);
  ok = true;
  assert.equal(await b.supportsRandomFully(), false);
  assert.deepEqual(run.calls.map((c) => c.argv), [['nft', '--check', '-f', '-']]);
  assert.match(run.calls[0]?.input ?? '', /masquerade fully-random/);
});

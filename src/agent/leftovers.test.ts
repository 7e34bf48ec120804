import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runner } from '../firewall/exec.ts';
import { createLogger } from '../log/logger.ts';
import {
  chainLeftovers, confLeftovers, findLeftovers, isConfFileName, pluginTypes, readConfDir, shellWord, sortByBytes, watchLeftovers,
  type ConfFile, type LeftoverReport,
} from './leftovers.ts';

const WEFT: ConfFile = { name: '05-weft.conflist', types: ['weft', 'portmap'] };
const AWS: ConfFile = { name: '10-aws.conflist', types: ['aws-cni', 'egress-cni', 'portmap'] };
const FLANNEL: ConfFile = { name: '10-flannel.conflist', types: ['flannel', 'portmap'] };
const PODMAN: ConfFile = { name: '87-podman-bridge.conflist', types: ['bridge', 'portmap', 'firewall', 'tuning'] };

test('config file names and order are containerd\'s: .conf, .conflist, .json, sorted by bytes', () => {
  assert.deepEqual(['a.conf', 'b.conflist', 'c.json', 'd.conflist.bak', 'e.yaml', 'cni.lock'].filter(isConfFileName), ['a.conf', 'b.conflist', 'c.json']);
  assert.deepEqual(sortByBytes(['10-weave.conflist', '10-aws.conflist', '05-weft.conflist', '10-flannel.conflist', '10-Z.conf']),
    ['05-weft.conflist', '10-Z.conf', '10-aws.conflist', '10-flannel.conflist', '10-weave.conflist']);
  // UTF-16 order would put U+FF5E (one code unit) after U+1F600 (a surrogate pair); byte order does not.
  assert.deepEqual(sortByBytes(['\u{1F600}.conf', '\uFF5E.conf']), ['\uFF5E.conf', '\u{1F600}.conf']);
});

test('plugin types of a .conf, a .conflist, and of files that are neither', () => {
  assert.deepEqual(pluginTypes('{"cniVersion":"1.0.0","name":"weft","plugins":[{"type":"weft"},{"type":"portmap"}]}'), ['weft', 'portmap']);
  assert.deepEqual(pluginTypes('{"name":"cbr0","type":"flannel"}'), ['flannel']);
  assert.deepEqual(pluginTypes('{"plugins":[{"type":7},{}]}'), ['?', '?']);
  assert.equal(pluginTypes('not json'), undefined);
  assert.equal(pluginTypes('{"name":"x"}'), undefined);
  assert.equal(pluginTypes('[1,2]'), undefined);
});

test("weft's config first, the VPC CNI's after it: a warning with its rm, not a readiness problem", () => {
  const r = confLeftovers('/etc/cni/net.d', [WEFT, AWS, PODMAN]);
  assert.equal(r.findings.length, 1);
  const [w] = r.findings;
  assert.equal(w?.severity, 'leftover');
  assert.equal(w?.key, 'cni-config 10-aws.conflist');
  assert.match(w?.message ?? '', /\/etc\/cni\/net\.d\/10-aws\.conflist is the AWS VPC CNI's config/);
  assert.match(w?.message ?? '', /weft's 05-weft\.conflist sorts before it/);
  assert.deepEqual(w?.fix, ['rm /etc/cni/net.d/10-aws.conflist']);
  assert.match(r.notes.join('\n'), /05-weft\.conflist is the one the container runtime reads/);
});

test('weft installed as flannel (10-flannel.conflist) behind 10-aws.conflist: the AWS file wins, so pods are blocked', () => {
  const r = confLeftovers('/etc/cni/net.d', [AWS, FLANNEL]);
  assert.equal(r.findings.length, 1, 'one finding, not also a separate AWS warning');
  const [w] = r.findings;
  assert.equal(w?.severity, 'blocks-pods');
  assert.match(w?.message ?? '', /10-aws\.conflist sorts before weft's 10-flannel\.conflist/);
  assert.match(w?.message ?? '', /aws-cni, egress-cni, portmap: the AWS VPC CNI's/);
  assert.deepEqual(w?.fix, ['rm /etc/cni/net.d/10-aws.conflist']);
});

test("any config before weft's blocks pods; another CNI's is renamed (kept), a broken one named with why", () => {
  const other: ConfFile = { name: '00-calico.conflist', types: ['calico'] };
  const broken: ConfFile = { name: '01 odd.conf', types: undefined, error: 'not a CNI config: not JSON with a type or plugins' };
  const r = confLeftovers('/etc/cni/net.d', [other, broken, WEFT, AWS]);
  const blocking = r.findings.filter((f) => f.severity === 'blocks-pods');
  assert.equal(blocking.length, 1);
  assert.match(blocking[0]!.message, /00-calico\.conflist sorts before weft's 05-weft\.conflist/);
  assert.match(blocking[0]!.message, /01 odd\.conf \(not a CNI config/);
  assert.deepEqual(blocking[0]!.fix, [
    'mv /etc/cni/net.d/00-calico.conflist /etc/cni/net.d/00-calico.conflist.disabled',
    "mv '/etc/cni/net.d/01 odd.conf' '/etc/cni/net.d/01 odd.conf.disabled'",
  ]);
  assert.deepEqual(r.findings.filter((f) => f.severity === 'leftover').map((f) => f.key), ['cni-config 10-aws.conflist']);
});

test("no weft config at all: nothing is blocked (weft may not be this node's CNI), but the VPC CNI's file is a leftover", () => {
  const clean = confLeftovers('/etc/cni/net.d', [PODMAN]);
  assert.deepEqual(clean.findings, []);
  assert.match(clean.notes.join('\n'), /no weft \(or flannel\) CNI config in \/etc\/cni\/net\.d/);
  const r = confLeftovers('/etc/cni/net.d', [AWS]);
  assert.equal(r.findings.length, 1);
  assert.equal(r.findings[0]?.severity, 'leftover');
  assert.match(r.findings[0]!.message, /gives new pods its network/);
  // Recognised by its plugin type under another name too.
  assert.equal(confLeftovers('/d', [{ name: '20-vpc.conf', types: ['aws-cni'] }]).findings[0]?.fix[0], 'rm /d/20-vpc.conf');
});

test('shell words: plain ones as is, others single-quoted with quotes escaped', () => {
  assert.equal(shellWord('AWS-SNAT-CHAIN-0'), 'AWS-SNAT-CHAIN-0');
  assert.equal(shellWord('AWS, SNAT'), "'AWS, SNAT'");
  assert.equal(shellWord("it's"), "'it'\\''s'");
  assert.equal(shellWord('!'), "'!'");
});

// The shape of an EKS node's nat and mangle tables with the VPC CNI running, plus kube-proxy and an operator's own rule.
const EKS_SAVE = `# Generated by iptables-nft-save v1.8.8 (nf_tables)
*mangle
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -i eth0 -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL --limit-iface-in -j CONNMARK --set-xmark 0x80/0x80
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:AWS-CONNMARK-CHAIN-0 - [0:0]
:AWS-CONNMARK-CHAIN-1 - [0:0]
:AWS-SNAT-CHAIN-0 - [0:0]
:AWS-SNAT-CHAIN-1 - [0:0]
:KUBE-POSTROUTING - [0:0]
-A PREROUTING -i eni+ -m comment --comment "AWS, outbound connections" -j AWS-CONNMARK-CHAIN-0
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0
-A POSTROUTING -s 192.168.7.0/24 -j MASQUERADE
-A AWS-CONNMARK-CHAIN-0 ! -d 172.31.0.0/16 -m comment --comment "AWS CONNMARK CHAIN, VPC CIDR" -j AWS-CONNMARK-CHAIN-1
-A AWS-CONNMARK-CHAIN-1 -m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark 0x80/0x80
-A AWS-SNAT-CHAIN-0 ! -d 172.31.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-1
-A AWS-SNAT-CHAIN-1 ! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL -j SNAT --to-source 172.31.5.17 --random-fully
COMMIT
`;

test("the VPC CNI's chains: one finding per iptables build, whose fix removes the jumps, then flushes, then deletes the chains", () => {
  const [w, ...more] = chainLeftovers('iptables-nft', EKS_SAVE);
  assert.equal(more.length, 0);
  assert.equal(w?.key, 'iptables iptables-nft');
  assert.equal(w?.severity, 'leftover');
  assert.match(w!.message, /nat AWS-CONNMARK-CHAIN-0 \(1 rule\), nat AWS-CONNMARK-CHAIN-1 \(1 rule\), nat AWS-SNAT-CHAIN-0 \(1 rule\), nat AWS-SNAT-CHAIN-1 \(1 rule\)/);
  assert.deepEqual(w!.fix, [
    "iptables-nft -t nat -D PREROUTING -i eni+ -m comment --comment 'AWS, outbound connections' -j AWS-CONNMARK-CHAIN-0",
    "iptables-nft -t nat -D POSTROUTING -m comment --comment 'AWS SNAT CHAIN' -j AWS-SNAT-CHAIN-0",
    'iptables-nft -t nat -F AWS-CONNMARK-CHAIN-0',
    'iptables-nft -t nat -F AWS-CONNMARK-CHAIN-1',
    'iptables-nft -t nat -F AWS-SNAT-CHAIN-0',
    'iptables-nft -t nat -F AWS-SNAT-CHAIN-1',
    'iptables-nft -t nat -X AWS-CONNMARK-CHAIN-0',
    'iptables-nft -t nat -X AWS-CONNMARK-CHAIN-1',
    'iptables-nft -t nat -X AWS-SNAT-CHAIN-0',
    'iptables-nft -t nat -X AWS-SNAT-CHAIN-1',
  ]);
  assert.ok(!w!.fix.some((c) => /KUBE|MASQUERADE|mangle/.test(c)), 'nothing else is touched');
});

test('flushed (empty) AWS chains are harmless: no finding; no AWS chain at all: none', () => {
  const flushed = EKS_SAVE.split('\n').filter((l) => !l.startsWith('-A AWS-')).join('\n');
  assert.deepEqual(chainLeftovers('iptables', flushed), []);
  assert.deepEqual(chainLeftovers('iptables', '*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j MASQUERADE\nCOMMIT\n'), []);
  assert.deepEqual(chainLeftovers('iptables', '*nat\n:AWS-SNAT-CHAIN-X - [0:0]\n-A AWS-SNAT-CHAIN-X -j RETURN\nCOMMIT\n'), [], 'the name must end in a number');
});

test('the conf dir reader: the runtime\'s files in its order, bounded, unreadable ones named, a missing dir is a note', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-leftovers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '10-aws.conflist'), JSON.stringify({ cniVersion: '0.4.0', name: 'aws-cni', plugins: [{ type: 'aws-cni' }, { type: 'egress-cni' }, { type: 'portmap' }] }));
  writeFileSync(join(dir, '05-weft.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'weft', plugins: [{ type: 'weft' }, { type: 'portmap' }] }));
  writeFileSync(join(dir, '00-huge.conf'), `{"type":"x","pad":"${'x'.repeat(70_000)}"}`);
  writeFileSync(join(dir, 'cni.lock'), '');
  mkdirSync(join(dir, '01-dir.conf'));
  symlinkSync(join(dir, '05-weft.conflist'), join(dir, '06-link.conflist'));
  return readConfDir(dir).then((r) => {
    assert.ok(!('error' in r));
    assert.deepEqual(r.files.map((f) => f.name), ['00-huge.conf', '05-weft.conflist', '06-link.conflist', '10-aws.conflist']);
    assert.equal(r.files[0]?.types, undefined);
    assert.match(r.files[0]?.error ?? '', /over 64 KiB/);
    assert.deepEqual(r.files[3]?.types, ['aws-cni', 'egress-cni', 'portmap']);
    return readConfDir(join(dir, 'nope'));
  }).then((missing) => {
    assert.deepEqual(missing, { files: [], notes: [`${join(dir, 'nope')} does not exist on this node`] });
  });
});

/** A fake iptables: each -save command prints what `outputs` holds; absent ones are "not installed". */
function fakeIptables(outputs: Record<string, { code: number; stdout?: string; stderr?: string }>): Runner & { calls: string[] } {
  const calls: string[] = [];
  const run: Runner = async (argv) => {
    calls.push(argv.join(' '));
    const r = outputs[argv[0] ?? ''];
    return r ? { code: r.code, stdout: r.stdout ?? '', stderr: r.stderr ?? '' } : { code: 127, stdout: '', stderr: 'not found' };
  };
  return Object.assign(run, { calls });
}

test('findLeftovers reads both iptables builds, names the one holding the chains, and says what it could not read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-leftovers-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '10-aws.conflist'), '{"plugins":[{"type":"aws-cni"}]}');
  const run = fakeIptables({
    'iptables-nft-save': { code: 0, stdout: EKS_SAVE },
    'iptables-legacy-save': { code: 1, stderr: 'iptables-legacy-save: Permission denied (you must be root)\nmore' },
  });
  const r = await findLeftovers({ cniConfDir: dir, runner: run });
  assert.deepEqual(run.calls, ['iptables-nft-save', 'iptables-legacy-save'], 'plain iptables-save is one of the two already read');
  assert.deepEqual(r.findings.map((f) => f.key), ['cni-config 10-aws.conflist', 'iptables iptables-nft']);
  assert.deepEqual(r.notChecked, ['iptables-legacy-save failed (exit 1): iptables-legacy-save: Permission denied (you must be root)']);

  // Neither build under its own name: plain iptables-save is read, and its fixes use plain iptables.
  const plain = fakeIptables({ 'iptables-save': { code: 0, stdout: EKS_SAVE } });
  const p = await findLeftovers({ cniConfDir: '', runner: plain });
  assert.deepEqual(plain.calls, ['iptables-nft-save', 'iptables-legacy-save', 'iptables-save']);
  assert.match(p.findings[0]?.fix[0] ?? '', /^iptables -t nat -D PREROUTING /);
  // No iptables at all: nothing to find, nothing unchecked.
  assert.deepEqual(await findLeftovers({ cniConfDir: '', runner: fakeIptables({}) }), { findings: [], notes: [], notChecked: [] });
});

function capture(): { log: ReturnType<typeof createLogger>; lines: { level: number; msg: string; about?: string }[] } {
  const lines: { level: number; msg: string; about?: string }[] = [];
  const log = createLogger({ name: 'test', level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { log, lines };
}

test('the agent\'s watch: each finding logged once, blocking ones fail readiness until fixed, resolved ones said once', async (t) => {
  let report: LeftoverReport = { findings: [], notes: [], notChecked: [] };
  const blocked: (string | undefined)[] = [];
  const { log, lines } = capture();
  const w = watchLeftovers({ check: async () => report, log, everyMs: 3_600_000, onBlocking: (r) => blocked.push(r) });
  t.after(() => w.stop());
  await w.check();
  assert.deepEqual(w.warnings(), []);
  assert.equal(blocked.at(-1), undefined);

  const aws = confLeftovers('/etc/cni/net.d', [AWS, FLANNEL]).findings[0]!;
  const chains = chainLeftovers('iptables-nft', EKS_SAVE)[0]!;
  report = { findings: [aws, chains], notes: [], notChecked: ['iptables-legacy-save failed (exit 4): busy'] };
  await w.check();
  await w.check();
  assert.deepEqual(w.warnings().map((x) => x.key), ['cni-config order', 'iptables iptables-nft']);
  const warned = lines.filter((l) => l.level === 40);
  assert.equal(warned.length, 3, `once each: ${warned.map((l) => l.msg).join('\n')}`);
  assert.match(warned[0]!.msg, /10-aws\.conflist sorts before weft's 10-flannel\.conflist.*; to remove it, run: rm \/etc\/cni\/net\.d\/10-aws\.conflist$/);
  assert.match(warned[1]!.msg, /to remove it, run: iptables-nft -t nat -D PREROUTING .* && iptables-nft -t nat -F AWS-CONNMARK-CHAIN-0/);
  assert.match(warned[2]!.msg, /could not check .*iptables-legacy-save failed \(exit 4\): busy/);
  assert.match(blocked.at(-1) ?? '', /sorts before weft's 10-flannel\.conflist.*; fix: rm \/etc\/cni\/net\.d\/10-aws\.conflist/);

  report = { findings: [chains], notes: [], notChecked: [] };
  await w.check();
  assert.equal(blocked.at(-1), undefined, 'readiness clears once the file is gone');
  assert.deepEqual(w.warnings().map((x) => x.key), ['iptables iptables-nft']);
  assert.equal(lines.filter((l) => /^resolved: .*10-aws\.conflist/.test(l.msg)).length, 1);
  assert.equal(lines.filter((l) => l.level === 40).length, 3, 'nothing new to warn about');
});

test('a failing check is logged, never thrown, and later checks still run', async (t) => {
  let fail = true;
  const { log, lines } = capture();
  const w = watchLeftovers({
    check: async () => {
      if (fail) throw new Error('boom');
      return { findings: chainLeftovers('iptables', EKS_SAVE), notes: [], notChecked: [] };
    },
    log, everyMs: 3_600_000, onBlocking: () => undefined,
  });
  t.after(() => w.stop());
  await w.check();
  assert.ok(lines.some((l) => l.msg === 'checking for leftovers failed'));
  fail = false;
  await w.check();
  assert.equal(w.warnings().length, 1);
});

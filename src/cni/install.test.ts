// weft install-cni in temp dirs: no root, no real node.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configsBefore, installCni, MAX_CONFLIST_BYTES, shadowWarning, writeAtomic, type InstallCniOptions } from './install.ts';
import { isWeftError } from '../errors.ts';

const CONFLIST = {
  cniVersion: '1.0.0', name: 'weft',
  plugins: [{ type: 'weft', subnetFile: '/run/flannel/subnet.env', dataDir: '/var/lib/cni/networks' }, { type: 'portmap', capabilities: { portMappings: true } }],
};

interface Node { root: string; opts: InstallCniOptions }

/** An image (front end, plugins, conflist) and an empty node, as on an EKS AL2023 node. */
function setup(t: TestContext, conflist: unknown = CONFLIST): Node {
  const root = mkdtempSync(join(tmpdir(), 'weft-install-cni-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  for (const d of ['image/lib', 'node/bin', 'node/net.d', 'cfg']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'image/weft-cni'), 'front end v1');
  writeFileSync(join(root, 'image/lib/portmap'), 'image portmap');
  writeFileSync(join(root, 'image/lib/loopback'), 'image loopback');
  writeFileSync(join(root, 'cfg/cni-conf.json'), typeof conflist === 'string' ? conflist : JSON.stringify(conflist, null, 2));
  return {
    root,
    opts: {
      conflist: join(root, 'cfg/cni-conf.json'), confDir: join(root, 'node/net.d'), confName: '05-weft.conflist',
      binDir: join(root, 'node/bin'), frontEnd: join(root, 'image/weft-cni'), pluginsDir: join(root, 'image/lib'), plugins: ['portmap', 'loopback'],
    },
  };
}

const mode = (path: string): number => statSync(path).mode & 0o777;
const read = (path: string): string => readFileSync(path, 'utf8');
/** Every file under the node's dirs: what a refusal must leave untouched, and no temp file left. */
const nodeFiles = (n: Node): string[] => ['bin', 'net.d'].flatMap((d) => readdirSync(join(n.root, 'node', d)).map((f) => `${d}/${f}`)).sort();

test('an empty node gets the front end as weft, portmap and loopback (0755) and the conflist (0644)', (t) => {
  const n = setup(t);
  const r = installCni(n.opts);
  assert.deepEqual(r, {
    frontEnd: { path: join(n.opts.binDir, 'weft'), action: 'installed' },
    plugins: [
      { name: 'portmap', path: join(n.opts.binDir, 'portmap'), action: 'installed' },
      { name: 'loopback', path: join(n.opts.binDir, 'loopback'), action: 'installed' },
    ],
    conflist: { path: join(n.opts.confDir, '05-weft.conflist'), action: 'installed' },
    shadowedBy: [],
  });
  assert.equal(read(join(n.opts.binDir, 'weft')), 'front end v1');
  assert.equal(read(join(n.opts.binDir, 'loopback')), 'image loopback');
  assert.equal(read(join(n.opts.confDir, '05-weft.conflist')), read(n.opts.conflist));
  for (const f of ['weft', 'portmap', 'loopback']) assert.equal(mode(join(n.opts.binDir, f)), 0o755, f);
  assert.equal(mode(join(n.opts.confDir, '05-weft.conflist')), 0o644);
  assert.deepEqual(nodeFiles(n), ['bin/loopback', 'bin/portmap', 'bin/weft', 'net.d/05-weft.conflist']);
});

test("a node's own plugin is never replaced; weft's own files are updated, or left when unchanged", (t) => {
  const n = setup(t);
  writeFileSync(join(n.opts.binDir, 'portmap'), 'the node\'s portmap', { mode: 0o700 });
  let r = installCni(n.opts);
  assert.deepEqual(r.plugins.map((p) => p.action), ['kept', 'installed']);
  assert.equal(read(join(n.opts.binDir, 'portmap')), 'the node\'s portmap');
  assert.equal(mode(join(n.opts.binDir, 'portmap')), 0o700);

  r = installCni(n.opts);
  assert.equal(r.frontEnd.action, 'unchanged');
  assert.equal(r.conflist.action, 'unchanged');
  assert.deepEqual(r.plugins.map((p) => p.action), ['kept', 'kept']);

  writeFileSync(n.opts.frontEnd, 'front end v2');
  writeFileSync(n.opts.conflist, JSON.stringify({ ...CONFLIST, plugins: [{ type: 'weft' }, CONFLIST.plugins[1]] }));
  writeFileSync(join(n.opts.pluginsDir, 'loopback'), 'image loopback v2');
  r = installCni(n.opts);
  assert.equal(r.frontEnd.action, 'updated');
  assert.equal(r.conflist.action, 'updated');
  assert.equal(read(join(n.opts.binDir, 'weft')), 'front end v2');
  // The loopback weft installed earlier is the node's now: never replaced either.
  assert.equal(read(join(n.opts.binDir, 'loopback')), 'image loopback');
  assert.deepEqual(nodeFiles(n), ['bin/loopback', 'bin/portmap', 'bin/weft', 'net.d/05-weft.conflist']);
});

test('a plugin being executed is replaced, not overwritten: its old inode keeps its bytes', (t) => {
  const n = setup(t);
  installCni(n.opts);
  const path = join(n.opts.binDir, 'weft');
  const before = statSync(path).ino;
  const fd = openSync(path, 'r');
  t.after(() => closeSync(fd));
  writeFileSync(n.opts.frontEnd, 'front end v2, longer');
  installCni(n.opts);
  assert.notEqual(statSync(path).ino, before);
  const buf = Buffer.alloc(64);
  assert.equal(buf.subarray(0, readSync(fd, buf, 0, 64, 0)).toString(), 'front end v1');
});

test('writeAtomic with noReplace leaves an existing file alone and leaves no temp file', (t) => {
  const n = setup(t);
  const path = join(n.opts.binDir, 'bridge');
  assert.equal(writeAtomic(path, Buffer.from('first'), 0o755, { noReplace: true }), true);
  assert.equal(writeAtomic(path, Buffer.from('second'), 0o755, { noReplace: true }), false);
  assert.equal(read(path), 'first');
  assert.equal(writeAtomic(path, Buffer.from('third'), 0o755), true);
  assert.equal(read(path), 'third');
  assert.deepEqual(readdirSync(n.opts.binDir), ['bridge']);
});

test('configs that sort before ours are reported (byte order; .conf, .conflist and .json only)', (t) => {
  const n = setup(t);
  for (const f of ['10-aws.conflist', '00-multus.conf', '01-old.json', '04-notes.txt', '.05-weft.conflist.1.tmp', '99-loopback.conf']) writeFileSync(join(n.opts.confDir, f), '{}');
  const r = installCni(n.opts);
  assert.deepEqual(r.shadowedBy, ['00-multus.conf', '01-old.json']);
  const warning = shadowWarning(r, n.opts.confDir, n.opts.confName) ?? '';
  assert.equal(warning.split('\n').length, 1);
  assert.match(warning, /00-multus\.conf, .*01-old\.json sort before 05-weft\.conflist, so the container runtime uses the first, not weft/);
  assert.deepEqual(configsBefore(n.opts.confDir, '00-a.conflist'), []);
  assert.equal(shadowWarning({ ...r, shadowedBy: [] }, n.opts.confDir, n.opts.confName), undefined);
});

test('a bad conflist or a missing binary is refused before anything is written', (t) => {
  const cases: [unknown, Partial<InstallCniOptions>, RegExp][] = [
    ['{"cniVersion": ', {}, /is not valid JSON/],
    [[1, 2], {}, /must be a JSON object/],
    [{ ...CONFLIST, cniVersion: undefined }, {}, /has no "cniVersion"/],
    [{ ...CONFLIST, name: 'has space' }, {}, /needs a "name"/],
    [{ ...CONFLIST, plugins: [] }, {}, /non-empty "plugins"/],
    [{ ...CONFLIST, plugins: [{ type: '../../bin/sh' }] }, {}, /plugins\[0\] without a plugin "type"/],
    [{ ...CONFLIST, plugins: [{ type: 'bridge' }] }, { plugins: ['bridge'] }, /does not use the weft plugin/],
    [{ ...CONFLIST, plugins: [{ type: 'weft', subnetFile: 'relative/subnet.env' }] }, {}, /weft plugin the plugin would refuse: .*subnetFile/],
    [{ ...CONFLIST, plugins: [...CONFLIST.plugins, { type: 'bandwidth' }] }, {}, /chains "bandwidth", but .*bandwidth does not exist and --plugins does not list it/],
    ['x'.repeat(MAX_CONFLIST_BYTES + 1), {}, /over the 65536-byte limit/],
    [CONFLIST, { frontEnd: '/nonexistent/weft-cni' }, /CNI front end \(--front-end\) \/nonexistent\/weft-cni does not exist/],
    [CONFLIST, { plugins: ['portmap', 'loopback', 'tuning'] }, /plugin tuning \(--plugins-dir\) .*tuning does not exist/],
    [CONFLIST, { confName: '05-weft.conf' }, /--conf-name "05-weft\.conf": expected a file name ending in \.conflist/],
    [CONFLIST, { confName: '../05-weft.conflist' }, /--conf-name/],
    [CONFLIST, { plugins: ['weft'] }, /--plugins: "weft" is the front end/],
  ];
  for (const [conflist, over, re] of cases) {
    const n = setup(t, conflist);
    assert.throws(() => installCni({ ...n.opts, ...over }), (e) => isWeftError(e, 'WEFT_INVALID_CONFIG') && re.test(e.message), re.source);
    assert.deepEqual(nodeFiles(n), [], re.source);
  }
});

test('a plugin the node has needs no copy in the image', (t) => {
  const n = setup(t);
  writeFileSync(join(n.opts.binDir, 'tuning'), 'node tuning');
  const r = installCni({ ...n.opts, plugins: ['portmap', 'loopback', 'tuning'] });
  assert.deepEqual(r.plugins.map((p) => `${p.name}:${p.action}`), ['portmap:installed', 'loopback:installed', 'tuning:kept']);
});

test('an unwritable plugin dir is an I/O error naming the path, and leaves no temp file', (t) => {
  const n = setup(t);
  // A file where the directory should be: fails for root too.
  rmSync(n.opts.binDir, { recursive: true });
  writeFileSync(n.opts.binDir, 'not a dir');
  assert.throws(() => installCni(n.opts), (e) => isWeftError(e, 'WEFT_IO') && e.message.includes(n.opts.binDir));
  assert.deepEqual(readdirSync(n.opts.confDir), []);
});

// `weft install-cni` as the DaemonSet's init container runs it: the real bin/weft with the
// manifest's own arguments and conflist, the container's paths mapped into a temp dir.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { manifestObjects, resolveManifestOptions } from '../manifests/index.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const weft = (args: string[]) => spawnSync(`${root}bin/weft`, args, { encoding: 'utf8' });

interface Init { args: string[] }
function initContainer(): { args: string[]; conflist: string } {
  const objects = manifestObjects(resolveManifestOptions({ mode: 'kube' }));
  const ds = objects.find((o) => o.kind === 'DaemonSet') as unknown as { spec: { template: { spec: { initContainers: Init[] } } } };
  const cm = objects.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> };
  return { args: ds.spec.template.spec.initContainers[0]!.args, conflist: cm.data['cni-conf.json']! };
}

test("the init container's command installs the manifest's conflist, the front end and the missing plugins", (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-install-cni-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const init = initContainer();
  // The image's and the mounts' paths, mapped into the temp dir.
  const paths: Record<string, string> = {
    '/etc/weft': join(dir, 'cfg'), '/host/etc/cni/net.d': join(dir, 'net.d'), '/host/opt/cni/bin': join(dir, 'bin'),
    '/opt/weft/build': join(dir, 'image'), '/usr/lib/cni': join(dir, 'image/lib'),
  };
  for (const d of [...Object.values(paths)]) mkdirSync(d, { recursive: true });
  writeFileSync(join(dir, 'cfg/cni-conf.json'), init.conflist);
  writeFileSync(join(dir, 'image/weft-cni'), 'front end');
  for (const p of ['portmap', 'loopback']) writeFileSync(join(dir, 'image/lib', p), p);
  writeFileSync(join(dir, 'bin/portmap'), "the node's portmap");
  writeFileSync(join(dir, 'net.d/00-aws.conflist'), '{}');
  const args = init.args.map((a) => {
    const m = /^(--[a-z-]+=)(.*)$/.exec(a);
    if (!m) return a;
    const from = Object.keys(paths).find((p) => m[2] === p || m[2]!.startsWith(`${p}/`));
    return from ? `${m[1]}${paths[from]}${m[2]!.slice(from.length)}` : a;
  });
  assert.equal(args[0], 'install-cni');

  const r = weft(args);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [
    `installed ${join(dir, 'bin/weft')} (the weft CNI front end)`,
    `kept ${join(dir, 'bin/portmap')} (the node's own)`,
    `installed ${join(dir, 'bin/loopback')}`,
    `installed ${join(dir, 'net.d/05-weft.conflist')}`,
  ]);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, /^weft install-cni: warning: .*00-aws\.conflist sorts before 05-weft\.conflist/);
  assert.equal(readFileSync(join(dir, 'net.d/05-weft.conflist'), 'utf8'), init.conflist);
  assert.equal(readFileSync(join(dir, 'bin/portmap'), 'utf8'), "the node's portmap");

  const again = weft([...args, '--json']);
  assert.equal(again.status, 0, again.stderr);
  const report = JSON.parse(again.stdout) as { frontEnd: { action: string }; conflist: { action: string }; shadowedBy: string[] };
  assert.equal(report.frontEnd.action, 'unchanged');
  assert.equal(report.conflist.action, 'unchanged');
  assert.deepEqual(report.shadowedBy, ['00-aws.conflist']);
});

test('install-cni: a missing required flag is a usage error; a bad conflist is a one-line error, exit 1', () => {
  const usage = weft(['install-cni', '--conf-dir', '/x']);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /^weft install-cni: required option '--conflist <file>' not specified\nsee `weft install-cni --help`\n$/);
  const dir = mkdtempSync(join(tmpdir(), 'weft-install-cni-cli-'));
  try {
    writeFileSync(join(dir, 'c.json'), '{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"}]}');
    const r = weft(['install-cni', `--conflist=${join(dir, 'c.json')}`, `--conf-dir=${dir}`, `--bin-dir=${dir}`, `--front-end=${join(dir, 'c.json')}`]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^weft: the conflist .* does not use the weft plugin/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

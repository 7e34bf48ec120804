// `weft manifests` as a user runs it: the real bin/weft.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';

const root = fileURLToPath(new URL('../../', import.meta.url));
const weft = (...args: string[]) => spawnSync(`${root}bin/weft`, args, { encoding: 'utf8' });

test('weft manifests prints what deploy/ holds; --json prints the same objects as a List', () => {
  const r = weft('manifests', '--mode', 'kube');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(`${root}deploy/weft-kube.yaml`, 'utf8'));
  const j = weft('manifests', '--mode', 'kube', '--json');
  assert.equal(j.status, 0, j.stderr);
  const list = JSON.parse(j.stdout) as { kind: string; items: unknown[] };
  assert.equal(list.kind, 'List');
  assert.deepEqual(list.items, YAML.parseAllDocuments(r.stdout, { version: '1.1' }).map((d) => d.toJS()));
});

test('weft manifests: a bad option is one line and where the help is, exit 2', () => {
  const r = weft('manifests', '--mode', 'etcd');
  assert.equal(r.status, 2);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0]!, /^weft manifests: --mode etcd needs --etcd-endpoints/);
  assert.equal(lines[1], 'see `weft manifests --help`');
  assert.equal(r.stdout, '');
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { subnetFileAt } from './subnet-file.ts';

test('subnet.env: written, noticed when deleted or changed, and read back as the previous run', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-subnet-file-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'subnet.env');
  const file = subnetFileAt(path, true);
  assert.equal(file.previous(), undefined);
  file.write('10.16.0.0/16', '10.16.85.0/24', 1450);
  assert.equal(file.intact(), true);
  assert.deepEqual(file.previous(), { networks: ['10.16.0.0/16'], subnet: '10.16.85.0/24' });
  unlinkSync(path);
  assert.equal(file.intact(), false);
  file.write('10.16.0.0/16', '10.16.85.0/24', 1450);
  writeFileSync(path, 'FLANNEL_MTU=1\n');
  assert.equal(file.intact(), false);
});

test('subnet.env names the pod link when it is routed; a bridge node writes flanneld\'s file byte for byte', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-subnet-file-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'subnet.env');
  subnetFileAt(path, true).write('10.16.0.0/16', '10.16.85.0/24', 1450);
  assert.equal(readFileSync(path, 'utf8'), 'FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.85.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
  const routed = subnetFileAt(path, false, 'routed');
  routed.write('10.16.0.0/16', '10.16.85.0/24', 1450);
  assert.equal(readFileSync(path, 'utf8'), 'FLANNEL_NETWORK=10.16.0.0/16\nFLANNEL_SUBNET=10.16.85.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\nWEFT_POD_LINK=routed\n');
  assert.equal(routed.intact(), true);
});

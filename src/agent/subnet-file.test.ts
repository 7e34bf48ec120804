import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
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

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { derivePsk } from './psk.ts';

test('derivePsk: scrypt N=2^14 r=8 p=1 over "weft-mesh-v1" + the mesh salt, 32 bytes', () => {
  const k = derivePsk('correct horse', 'mesh-1');
  assert.equal(k.length, 32);
  assert.deepEqual(k, scryptSync('correct horse', 'weft-mesh-v1mesh-1', 32, { N: 16384, r: 8, p: 1 }));
  assert.deepEqual(derivePsk(Buffer.from('correct horse'), 'mesh-1'), k);
  assert.notDeepEqual(derivePsk('correct horse', 'mesh-2'), k);
  assert.notDeepEqual(derivePsk('correct horsf', 'mesh-1'), k);
  assert.throws(() => derivePsk('', 'mesh-1'), /password is empty/);
});

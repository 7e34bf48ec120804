import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireRoot } from './root.ts';
import { isWeftError } from '../errors.ts';

test('non-root is refused in one line naming the command and what to do', () => {
  assert.doesNotThrow(() => requireRoot('weft lab up', 'x', 0));
  assert.throws(() => requireRoot('weft lab up', 'it creates network namespaces', 1000), (e) =>
    isWeftError(e, 'WEFT_LAB') && e.message === 'weft lab up must run as root (it creates network namespaces); run it again with sudo');
});

// Writes deploy/: the default manifests of each mode, exactly as `weft manifests` renders them
// (src/manifests/manifests.test.ts fails when deploy/ is not current). Run: npm run manifests.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deployFiles } from '../src/manifests/index.ts';

const dir = fileURLToPath(new URL('../deploy/', import.meta.url));
mkdirSync(dir, { recursive: true });
for (const [name, text] of Object.entries(deployFiles())) {
  writeFileSync(join(dir, name), text);
  console.log(`wrote deploy/${name}`);
}

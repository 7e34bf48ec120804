// Write-then-rename, so a reader (or a crash) never sees half a file, as flanneld writes
// subnet.env (docs/flannel-compat.md §2): for the node conflists and the lab's own state file. subnet.env
// itself has one writer, writeSubnetEnv in src/subnet/subnet-env.ts.
import { randomBytes } from 'node:crypto';
import { chmod, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, basename } from 'node:path';

export async function writeFileAtomic(path: string, data: string, mode = 0o644): Promise<void> {
  const tmp = `${dirname(path)}/.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode });
    await chmod(tmp, mode); // writeFile's mode is filtered by the umask; flannel's file is 0644 regardless
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

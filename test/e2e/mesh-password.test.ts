// Mesh passwords (root only): a lab whose agents share a password (a 0600 file each gets as
// --password-file); a node started with the wrong password, and then with none, is refused by
// the mesh, and both sides say why in words (status or log), never joining it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { labNodeStart, labNodeStop } from '../../src/lab/index.ts';
import { cmdline } from '../../src/lab/processes.ts';
import { labPasswordFile } from '../../src/lab/paths.ts';
import { connectedTo, meshPrerequisiteProblem, mesh, startMeshLab, status, waitMesh, waitSaid } from './support/mesh-lab.ts';

const skip = await meshPrerequisiteProblem();
const N3 = /172\.31\.1\.13/;

test('password: n1 and n2 mesh encrypted; n3 with a wrong password, then with none, is refused and both sides say so', { skip, timeout: 240_000 }, async (t) => {
  const lab = await startMeshLab(t, { nodes: 3, podsPerNode: 1, password: 'correct horse', start: 2 });
  const file = labPasswordFile(lab.dir);
  assert.equal((await stat(file)).mode & 0o777, 0o600, 'the password file is root-only');
  const n1 = await waitMesh(lab, 'n1', 'encrypted and connected to n2', (m) => m.encryption === true && connectedTo(m, 'n2'));
  assert.equal(n1.encryption, true);
  assert.ok((await cmdline((await lab.state()).daemonPids.n1?.pid ?? 0))?.includes(`--password-file ${file}`));

  // Wrong password: the handshake fails authentication; n3 says so, and so does the side it reached.
  const wrongAt = Date.now();
  await labNodeStart(lab.name, ['n3'], { wait: false, password: 'wrong horse' });
  const n3Says = await waitSaid(lab, 'n3', wrongAt, [/password|authenticat|auth\b/i], 'that the mesh refused its password');
  t.diagnostic(`n3 (wrong password): ${n3Says.slice(0, 300)}`);
  const n1Says = await waitSaid(lab, 'n1', wrongAt, [N3, /password|authenticat|auth\b/i], 'that it refused 172.31.1.13');
  t.diagnostic(`n1 about n3 (wrong password): ${n1Says.slice(0, 300)}`);
  await assertOutside(lab);
  await labNodeStop(lab.name, ['n3']);

  // No password at all: refused for asking an unencrypted connection of a passworded mesh.
  const plainAt = Date.now();
  await labNodeStart(lab.name, ['n3'], { wait: false, password: null });
  assert.ok(!(await cmdline((await lab.state()).daemonPids.n3?.pid ?? 0))?.includes('--password-file'));
  // (n1's problem log still holds the wrong-password refusal: only the new words count.)
  const n1Plain = await waitSaid(lab, 'n1', plainAt, [N3, /unencrypted|plaintext/i], 'that 172.31.1.13 asked for an unencrypted connection');
  t.diagnostic(`n1 about n3 (no password): ${n1Plain.slice(0, 300)}`);
  const n3Plain = await waitSaid(lab, 'n3', plainAt, [/encrypted|password/i], 'that the mesh wants a password');
  t.diagnostic(`n3 (no password): ${n3Plain.slice(0, 300)}`);
  await assertOutside(lab);
});

/** n3 is not in the mesh: nobody has a connection to it, it has no ring and no blocks, and it is not ready. */
async function assertOutside(lab: Awaited<ReturnType<typeof startMeshLab>>): Promise<void> {
  for (const node of ['n1', 'n2']) {
    const m = await mesh(lab, node);
    assert.ok(m, `${node} answers`);
    assert.ok(!connectedTo(m, 'n3'), `${node} has no connection to n3: ${JSON.stringify(m.connections)}`);
    assert.ok(!m.owners.some((o) => o.nickname === 'n3'), `${node} lists no blocks of n3`);
  }
  const s = await status(lab, 'n3');
  assert.ok(s, 'n3 answers on its status socket');
  assert.equal(s.ready, false, `n3 is not ready: ${s.phase}`);
  const m3 = await mesh(lab, 'n3');
  assert.ok(!m3 || (!connectedTo(m3, 'n1') && !connectedTo(m3, 'n2')), 'n3 is connected to nobody');
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { localRunner, netnsRunner, runChecked } from './exec.ts';
import { fakeRunner } from './testing/fake-runner.ts';
import { isWeftError } from '../errors.ts';

test('localRunner: stdin in, stdout/stderr/status out; a missing program is 127', async () => {
  const r = await localRunner(['sh', '-c', 'cat; echo oops >&2; exit 3'], 'hello');
  assert.deepEqual(r, { code: 3, stdout: 'hello', stderr: 'oops\n' });
  assert.equal((await localRunner(['weft-no-such-tool-xyz'])).code, 127);
});

test('netnsRunner prefixes ip netns exec and maps its "exec failed" to 127', async () => {
  const base = fakeRunner((argv) => (argv[4] === 'nosuch' ? { code: 1, stderr: 'exec of "nosuch" failed: No such file or directory\n' } : { stdout: 'ok' }));
  const run = netnsRunner('weft-fw-x', base);
  assert.equal((await run(['nft', '--version'], 'in')).stdout, 'ok');
  assert.deepEqual(base.calls[0], { argv: ['ip', 'netns', 'exec', 'weft-fw-x', 'nft', '--version'], input: 'in' });
  assert.equal((await run(['nosuch'])).code, 127);
});

test('runChecked: WEFT_FIREWALL naming command, purpose, stderr and a next step', async () => {
  const run = fakeRunner(() => ({ code: 4, stderr: 'Error: Could not process rule: No such file or directory\n' }));
  await assert.rejects(runChecked(run, ['nft', '-f', '-'], 'replace table flannel-ipv4', 'table ip x {}'), (e: unknown) =>
    isWeftError(e, 'WEFT_FIREWALL') && e.message.startsWith('nft -f - failed (exit 4) while trying to replace table flannel-ipv4: Error: Could not process rule') &&
    /NET_ADMIN/.test(e.message) && e.details === 'table ip x {}');
  assert.equal(await runChecked(fakeRunner(() => ({ stdout: 'fine' })), ['true'], 'x'), 'fine');
});

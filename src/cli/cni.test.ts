// `weft cni-server` refuses sockets it cannot serve with a WeftError that says what to do
// (main.ts prints a WeftError as "weft: <message>" and exits 1, without a stack trace).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:net';
import { Command } from 'commander';
import { isWeftError } from '../errors.ts';
import { silentLogger } from '../log/logger.ts';
import { startCniServer } from '../cni/server.ts';
import type { CniOperations } from '../cni/plugin.ts';
import { registerCni } from './cni.ts';

const skip = process.getuid?.() === 0 ? false : 'the CNI server opens netlink sockets of the node';

async function cniServer(args: string[]): Promise<unknown> {
  const program = new Command('weft').exitOverride();
  registerCni(program);
  try {
    await program.parseAsync(['cni-server', ...args], { from: 'user' });
    return undefined;
  } catch (e) {
    return e;
  }
}

function assertWeftError(e: unknown, message: RegExp): void {
  assert.ok(isWeftError(e), `expected a WeftError, got ${String(e)}`);
  assert.match(e.message, message);
}

describe('weft cni-server: sockets it cannot listen on', { skip }, () => {
  let other: Server | undefined;
  after(() => other?.close());

  it('an empty --socket', async () => {
    assertWeftError(await cniServer(['--socket', '']), /^--socket must not be empty/);
  });

  it('a --socket in a directory that does not exist', async () => {
    assertWeftError(await cniServer(['--socket', '/nonexistent/dir/sock']),
      /^cannot listen on \/nonexistent\/dir\/sock: directory \/nonexistent\/dir does not exist; create it or choose another --socket$/);
  });

  it('an abstract socket another server already serves', async () => {
    const socket = `@weft-cli-test-${randomBytes(4).toString('hex')}`;
    other = await startCniServer({ socket, ops: {} as CniOperations, log: silentLogger });
    assertWeftError(await cniServer(['--socket', socket]), /another weft agent or cni-server is already serving it in this network namespace/);
  });
});

describe('weft cni: logging settings never stop the plugin from answering', () => {
  it('an empty or unknown WEFT_LOG_LEVEL/WEFT_LOG_FORMAT still answers VERSION with the CNI result', async () => {
    const { spawnSync } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const weft = fileURLToPath(new URL('../../bin/weft', import.meta.url));
    for (const env of [{ WEFT_LOG_LEVEL: '' }, { WEFT_LOG_LEVEL: 'loud' }, { WEFT_LOG_FORMAT: 'xml' }]) {
      const r = spawnSync(weft, ['cni'], { env: { ...process.env, ...env, CNI_COMMAND: 'VERSION' }, input: '{"cniVersion":"1.0.0"}', encoding: 'utf8' });
      assert.equal(r.status, 0, `${JSON.stringify(env)}: ${r.stderr}`);
      assert.ok(Array.isArray((JSON.parse(r.stdout) as { supportedVersions?: unknown }).supportedVersions), r.stdout);
    }
  });
});

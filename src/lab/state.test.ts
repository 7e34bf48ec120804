import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isWeftError } from '../errors.ts';
import { readState, StateWriter, type LabState } from './state.ts';
import { calcTopology } from './topology.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(`${tmpdir()}/weft-lab-state-`);
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const state = (): LabState => ({
  version: 1, name: 'x', createdAt: 'now', phase: 'creating', upPid: 1, cni: 'bridge', plugin: '/p', daemons: false,
  topology: calcTopology({ name: 'x', nodes: 1, podsPerNode: 1, labDir: '/l' }), namespaces: [], daemonPids: {}, pods: {},
});

test('the last of many quick saves wins, each save is a snapshot, and no temp files remain', async () => {
  await withDir(async (dir) => {
    const s = state();
    const w = new StateWriter(dir);
    const saves: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      s.namespaces.push(`ns${i}`);
      saves.push(w.save(s));
    }
    s.namespaces.push('after the last save');
    await Promise.all(saves);
    const read = await readState(dir);
    assert.equal(read?.namespaces.length, 20);
    assert.deepEqual(await readdir(dir), ['state.json']);
    assert.match(await readFile(`${dir}/state.json`, 'utf8'), /\n$/);
  });
});

test('a missing state is undefined; a damaged one is a WeftError that points at down', async () => {
  await withDir(async (dir) => {
    assert.equal(await readState(dir), undefined);
    await writeFile(`${dir}/state.json`, '{"version":1,');
    await assert.rejects(readState(dir), (e) => isWeftError(e, 'WEFT_LAB') && /lab down/.test(e.message));
    await writeFile(`${dir}/state.json`, '{"version":99}');
    await assert.rejects(readState(dir), (e) => isWeftError(e, 'WEFT_LAB'));
  });
});

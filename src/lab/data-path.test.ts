import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { dataPathArgs, resolveDataPath } from './data-path.ts';

test('the lab data path: options win over the environment, which wins over bridge without a fast path', () => {
  assert.deepEqual(resolveDataPath({}, '/l', true, {}), { podLink: 'bridge', fastPath: 'none', bpfDir: null });
  const env = { WEFT_POD_LINK: 'routed', WEFT_FAST_PATH: 'ebpf' };
  assert.deepEqual(resolveDataPath({}, '/l', true, env), { podLink: 'routed', fastPath: 'ebpf', bpfDir: '/l/bpf' });
  assert.deepEqual(resolveDataPath({ podLink: 'bridge', fastPath: 'none' }, '/l', true, env), { podLink: 'bridge', fastPath: 'none', bpfDir: null });
});

test('the fast path from the environment leaves labs without agents alone; asked for by option, it is refused there', () => {
  assert.deepEqual(resolveDataPath({}, '/l', false, { WEFT_POD_LINK: 'routed', WEFT_FAST_PATH: 'ebpf' }), { podLink: 'routed', fastPath: 'none', bpfDir: null });
  assert.throws(() => resolveDataPath({ podLink: 'routed', fastPath: 'ebpf' }, '/l', false, {}), (e) => isWeftError(e, 'WEFT_LAB') && /agents/.test(e.message));
  assert.throws(() => resolveDataPath({ fastPath: 'ebpf' }, '/l', true, {}), (e) => isWeftError(e, 'WEFT_LAB') && /needs --pod-link routed/.test(e.message));
  assert.throws(() => resolveDataPath({ podLink: 'ptp' }, '/l', true, {}), (e) => isWeftError(e, 'WEFT_LAB') && /--pod-link must be one of bridge, routed/.test(e.message));
});

test('routed links are the weft plugin\'s: the environment leaves a --cni bridge lab bridged; asked for, refused', () => {
  assert.deepEqual(resolveDataPath({}, '/l', false, { WEFT_POD_LINK: 'routed' }, false), { podLink: 'bridge', fastPath: 'none', bpfDir: null });
  assert.throws(() => resolveDataPath({ podLink: 'routed' }, '/l', false, {}, false), (e) => isWeftError(e, 'WEFT_LAB') && /needs --cni weft/.test(e.message));
});

test('agent flags only for what differs from the defaults', () => {
  assert.deepEqual(dataPathArgs(undefined), []);
  assert.deepEqual(dataPathArgs({ podLink: 'bridge', fastPath: 'none', bpfDir: null }), []);
  assert.deepEqual(dataPathArgs({ podLink: 'routed', fastPath: 'ebpf', bpfDir: '/l/bpf' }), ['--pod-link', 'routed', '--fast-path', 'ebpf', '--bpf-dir', '/l/bpf']);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handleCni, type CniOperations } from './plugin.ts';
import { silentLogger } from '../log/logger.ts';
import { WeftError } from '../errors.ts';
import type { AddResult } from './result.ts';

const result: AddResult = {
  interfaces: [{ name: 'cni0', mac: '0a:00:00:00:00:01' }, { name: 'veth1', mac: '0a:00:00:00:00:02' }, { name: 'eth0', mac: '0a:00:00:00:00:03', sandbox: '/run/netns/p', mtu: 1450 }],
  ips: [{ address: '10.1.2.2/24', gateway: '10.1.2.1', interface: 2 }, { address: 'fd00::2/64', gateway: 'fd00::1', interface: 2 }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.1.2.1' }],
  dns: {},
};

function recordingOps(fail?: Error): CniOperations & { calls: string[] } {
  const calls: string[] = [];
  const step = async (name: string): Promise<void> => {
    calls.push(name);
    if (fail) throw fail;
  };
  return {
    calls,
    add: async () => (await step('add'), result),
    del: () => step('del'),
    check: () => step('check'),
    status: () => step('status'),
    gc: () => step('gc'),
  };
}

const env = (command: string) => ({ CNI_COMMAND: command, CNI_CONTAINERID: 'c1', CNI_NETNS: '/run/netns/p', CNI_IFNAME: 'eth0', CNI_ARGS: '', CNI_PATH: '/opt/cni/bin' });
const config = (v: string) => JSON.stringify({ cniVersion: v, name: 'weft', type: 'weft' });

test('ADD renders the result in the requested version', async () => {
  const r04 = JSON.parse((await handleCni({ env: env('ADD'), stdin: config('0.4.0') }, recordingOps(), silentLogger)).stdout);
  assert.equal(r04.cniVersion, '0.4.0');
  assert.deepEqual(r04.ips.map((i: { version: string }) => i.version), ['4', '6']);
  assert.equal(r04.interfaces[2].mtu, undefined);
  const r10 = JSON.parse((await handleCni({ env: env('ADD'), stdin: config('1.0.0') }, recordingOps(), silentLogger)).stdout);
  assert.equal(r10.ips[0].version, undefined);
  assert.equal(r10.interfaces[2].mtu, undefined);
  const r11 = JSON.parse((await handleCni({ env: env('ADD'), stdin: config('1.1.0') }, recordingOps(), silentLogger)).stdout);
  assert.equal(r11.interfaces[2].mtu, 1450);
  assert.deepEqual(r11.dns, {});
});

test('DEL, CHECK, STATUS and GC print nothing on success', async () => {
  for (const cmd of ['DEL', 'CHECK', 'STATUS', 'GC']) {
    const ops = recordingOps();
    const res = await handleCni({ env: env(cmd), stdin: config('1.1.0') }, ops, silentLogger);
    assert.deepEqual(res, { exitCode: 0, stdout: '', stderr: '' }, cmd);
    assert.deepEqual(ops.calls, [cmd.toLowerCase()]);
  }
});

test('VERSION answers with every supported version and tolerates a bare stdin', async () => {
  const res = await handleCni({ env: { CNI_COMMAND: 'VERSION', CNI_CONTAINERID: '', CNI_NETNS: 'dummy' }, stdin: '{"cniVersion":"1.0.0"}' }, recordingOps(), silentLogger);
  assert.deepEqual(JSON.parse(res.stdout), { cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  const bare = await handleCni({ env: { CNI_COMMAND: 'VERSION' }, stdin: '' }, recordingOps(), silentLogger);
  assert.equal(JSON.parse(bare.stdout).cniVersion, '1.1.0');
});

test('errors are JSON on stdout with the spec codes, and exit 1', async () => {
  const cases: [Record<string, string>, string, number, RegExp][] = [
    [{ ...env('ADD'), CNI_NETNS: '' }, config('1.0.0'), 4, /CNI_NETNS/],
    [env('ADD'), '{', 6, /decoding/],
    [env('ADD'), config('0.2.0'), 1, /incompatible CNI versions/],
    [env('ADD'), JSON.stringify({ cniVersion: '1.0.0', name: 'weft', type: 'weft', mtu: 'x' }), 7, /"mtu"/],
    [env('CHECK'), config('0.3.1'), 1, /CHECK needs cniVersion 0.4.0/],
  ];
  for (const [e, stdin, code, msg] of cases) {
    const ops = recordingOps();
    const res = await handleCni({ env: e, stdin }, ops, silentLogger);
    assert.equal(res.exitCode, 1);
    const err = JSON.parse(res.stdout);
    assert.equal(err.code, code, res.stdout);
    assert.match(err.msg, msg);
    assert.deepEqual(ops.calls, []);
  }
});

test('operation failures map onto CNI codes and keep the cniVersion', async () => {
  const res = await handleCni({ env: env('ADD'), stdin: config('1.0.0') },
    recordingOps(new WeftError('WEFT_IPAM_EXHAUSTED', 'no IP addresses available in range set 10.1.2.0/29')), silentLogger);
  assert.deepEqual(JSON.parse(res.stdout), { cniVersion: '1.0.0', code: 100, msg: 'no IP addresses available in range set 10.1.2.0/29' });
  const internal = await handleCni({ env: env('DEL'), stdin: config('1.0.0') }, recordingOps(new Error('boom')), silentLogger);
  assert.equal(JSON.parse(internal.stdout).code, 999);
});

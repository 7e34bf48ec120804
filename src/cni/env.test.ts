import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCniArgs, parseCniEnv } from './env.ts';
import { isWeftError } from '../errors.ts';

const add = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'abc-1', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: '', CNI_PATH: '/opt/cni/bin' };

test('parses a complete ADD environment', () => {
  const env = parseCniEnv(add);
  assert.equal(env.command, 'ADD');
  assert.equal(env.containerId, 'abc-1');
  assert.equal(env.netns, '/run/netns/x');
});

test('empty variables count as missing, and all missing ones are named', () => {
  assert.throws(() => parseCniEnv({ ...add, CNI_NETNS: '', CNI_IFNAME: '' }),
    (e) => isWeftError(e, 'WEFT_INVALID_ENV') && e.message === 'required env variables [CNI_NETNS,CNI_IFNAME] missing');
  assert.throws(() => parseCniEnv({}), /required env variables \[CNI_COMMAND\] missing/);
});

test('DEL does not need a netns; VERSION needs nothing else', () => {
  assert.equal(parseCniEnv({ ...add, CNI_COMMAND: 'DEL', CNI_NETNS: '' }).netns, '');
  assert.equal(parseCniEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
});

test('unknown commands, bad container IDs and bad interface names are refused', () => {
  assert.throws(() => parseCniEnv({ ...add, CNI_COMMAND: 'FROB' }), /unknown CNI_COMMAND: FROB/);
  assert.throws(() => parseCniEnv({ ...add, CNI_CONTAINERID: 'bad id' }), /invalid characters in CNI_CONTAINERID "bad id"/);
  assert.throws(() => parseCniEnv({ ...add, CNI_IFNAME: 'a-very-long-interface' }), /longer than 15 bytes/);
  assert.throws(() => parseCniEnv({ ...add, CNI_IFNAME: 'eth/0' }), /contains/);
});

test('CNI_ARGS: unknown keys fail unless IgnoreUnknown is set', () => {
  const k8s = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;IP=10.1.2.3';
  const args = parseCniArgs(k8s, ['IP', 'MAC']);
  assert.equal(args.get('IP'), '10.1.2.3');
  assert.equal(args.get('K8S_POD_NAME'), 'web-0');
  assert.throws(() => parseCniArgs('K8S_POD_NAME=x', ['IP']), /unknown keys \[K8S_POD_NAME\]/);
  assert.throws(() => parseCniArgs('novalue', ['IP']), /"novalue" is not a KEY=VALUE pair/);
  assert.equal(parseCniArgs('', []).size, 0);
});

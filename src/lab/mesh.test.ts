import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentStatus } from '../agent/status.ts';
import { meshAgentArgv, meshAgentEnv, meshView, validateMeshOptions, writePasswordFile } from './mesh.ts';
import { meshNodeArgv, meshPeers } from './nodes.ts';
import { partitionRules } from './partition.ts';
import { nodeFiles } from './paths.ts';
import { probeView, planProbes, defaultKinds } from './probes.ts';
import { PROBE_KINDS } from './probe-kinds.ts';
import { updateState, type LabState } from './state.ts';
import { calcTopology } from './topology.ts';

const topology = calcTopology({ name: 'x', nodes: 3, podsPerNode: 1, labDir: '/run/weft/lab/x', store: 'mesh', clusterNetwork: '10.32.0.0/12' });

function meshState(over: Partial<LabState> = {}): LabState {
  return {
    version: 1, name: 'x', createdAt: '', phase: 'ready', upPid: 1, cni: 'weft', plugin: '', daemons: true, store: 'mesh', topology,
    mesh: { range: '10.32.0.0/12', blockPrefix: 26, init: null, port: 6783, passwordFile: '/run/weft/lab/x/mesh-password' },
    namespaces: [], daemonPids: {}, pods: {}, ...over,
  };
}

test('a mesh lab has no etcd member, no planned subnets, and the range as its cluster network', () => {
  assert.equal(topology.etcd, null);
  assert.equal(topology.clusterNetwork, '10.32.0.0/12');
  assert.ok(topology.nodes.every((n) => n.podSubnet === null && n.podGateway === null));
});

test('each mesh agent gets the other nodes as --peers and its own mesh dir, socket, lock and subnet.env', () => {
  const n2 = topology.nodes[1];
  assert.ok(n2);
  assert.deepEqual(meshNodeArgv(meshState(), n2, ['/w/bin/weft'], 'lab'), [
    '/w/bin/weft', 'agent',
    '--store', 'mesh',
    '--peers', '172.31.1.11,172.31.1.13',
    '--nickname', 'n2',
    '--ipalloc-range', '10.32.0.0/12',
    '--ipalloc-block', '26',
    '--password-file', '/run/weft/lab/x/mesh-password',
    '--mesh-dir', '/run/weft/lab/x/n2/mesh',
    '--mesh-port', '6783',
    '--mesh-dead-after', '20s',
    '--subnet-file', '/run/weft/lab/x/n2/subnet.env',
    '--status-socket', '/run/weft/lab/x/n2/agent.sock',
    '--lock-file', '/run/weft/lab/x/n2/agent.lock',
    '--ip-masq',
  ]);
  const none = meshNodeArgv(meshState(), n2, ['w'], 'none');
  assert.ok(!none.includes('--password-file'), 'no password');
  const own = meshNodeArgv(meshState(), n2, ['w'], { own: 'x' });
  assert.equal(own[own.indexOf('--password-file') + 1], '/run/weft/lab/x/n2/mesh-password', 'a password of its own, in its own dir');
  const withInit = meshAgentArgv({ weft: ['w'], files: nodeFiles('/d'), nickname: 'n1', peers: ['a'], range: '10.32.0.0/24', blockPrefix: 28, init: 'consensus=2', port: 6783, passwordFile: null });
  assert.deepEqual(withInit.slice(withInit.indexOf('--ipalloc-init'), withInit.indexOf('--ipalloc-init') + 2), ['--ipalloc-init', 'consensus=2']);
});

test('a removed node is no one\'s peer any more', () => {
  const n1 = topology.nodes[0];
  assert.ok(n1);
  assert.deepEqual(meshPeers(meshState({ removedNodes: ['n3'] }), n1), ['172.31.2.12']);
});

test('the mesh agent never inherits a password, peers or other mesh settings from the caller\'s environment', () => {
  const env = meshAgentEnv('n1', { PATH: '/bin', WEAVE_PASSWORD: 's', KUBE_PEERS: 'a', IPALLOC_RANGE: 'r', IPALLOC_INIT: 'i', CONN_LIMIT: '1', WEFT_STORE: 'etcd', WEFT_PASSWORD_FILE: 'f', WEFT_LOG_LEVEL: 'debug', NODE_NAME: 'host' });
  assert.deepEqual(env, { PATH: '/bin', WEFT_LOG_LEVEL: 'debug', NODE_NAME: 'n1' });
});

test('mesh options: clear errors for a bad range, block size, init mode or password', () => {
  assert.deepEqual(validateMeshOptions({}), { range: '10.32.0.0/12', blockPrefix: 26, init: null });
  assert.deepEqual(validateMeshOptions({ range: '10.32.0.0/24', blockPrefix: 28, init: 'seed=aa:bb:cc:dd:ee:ff,11:22:33:44:55:66' }).init, 'seed=aa:bb:cc:dd:ee:ff,11:22:33:44:55:66');
  assert.throws(() => validateMeshOptions({ range: '10.32.0.1/12' }), /--ipalloc-range must be an IPv4 network .*host bits/);
  assert.throws(() => validateMeshOptions({ range: 'fd00::/64' }), /--ipalloc-range must be an IPv4 network/);
  assert.throws(() => validateMeshOptions({ range: '10.32.0.0/24', blockPrefix: 20 }), /--ipalloc-block must be a prefix length from the range's \/24 to \/30/);
  assert.throws(() => validateMeshOptions({ blockPrefix: 31 }), /--ipalloc-block/);
  assert.throws(() => validateMeshOptions({ init: 'consensus=0' }), /--ipalloc-init must be/);
  assert.throws(() => validateMeshOptions({ init: 'paxos' }), /--ipalloc-init must be/);
  for (const ok of ['consensus', 'consensus=3', 'observer']) assert.equal(validateMeshOptions({ init: ok }).init, ok);
  assert.throws(() => validateMeshOptions({ password: '' }), /--password must be a non-empty line/);
});

test('the password file is root-only, also when it existed with a wider mode', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-mesh-'));
  try {
    const path = join(dir, 'pw');
    writeFileSync(path, 'old', { mode: 0o644 });
    await writePasswordFile(path, 's3cret');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(readFileSync(path, 'utf8'), 's3cret');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the mesh view reads store.details.mesh defensively: wrong types become nulls and zeros, not crashes', () => {
  assert.equal(meshView(undefined), undefined);
  assert.equal(meshView({ store: { kind: 'etcd' } } as unknown as AgentStatus), undefined);
  const status = {
    store: {
      kind: 'mesh',
      details: {
        mesh: {
          name: 'aa:bb:cc:dd:ee:01', nickname: 'n1', encryption: true,
          connections: [{ address: '172.31.2.12:6783', state: 'established', peer: { name: 'aa:bb:cc:dd:ee:02', nickname: 'n2' } }, { address: '172.31.1.13:6783', state: 'failed', info: 'auth failed' }, 7],
          peers: [{}, {}, {}],
          ipam: { status: 'ready', ringId: 'abc', owners: [{ name: 'aa:bb:cc:dd:ee:01', nickname: 'n1', addresses: 64, self: true, reachable: true }, { addresses: 'many' }] },
        },
      },
    },
  } as unknown as AgentStatus;
  const v = meshView(status);
  assert.ok(v);
  assert.equal(v.name, 'aa:bb:cc:dd:ee:01');
  assert.equal(v.ipamStatus, 'ready');
  assert.equal(v.ringId, 'abc');
  assert.equal(v.peers, 3);
  assert.equal(v.established, 1);
  assert.deepEqual(v.connections[1], { address: '172.31.1.13:6783', state: 'failed', peer: null, info: 'auth failed' });
  assert.deepEqual(v.connections[2], { address: '?', state: '?', peer: null, info: null });
  assert.deepEqual(v.owners[1], { name: '?', nickname: '?', addresses: 0, self: false, reachable: false });
});

test('a partition drops the mesh port both ways and VXLAN, for each address on the other side, and nothing else', () => {
  const rules = partitionRules(['172.31.1.11'], 6783, 6784);
  assert.equal(rules, [
    '*filter',
    ':WEFT-LAB-PARTITION - [0:0]',
    '-F WEFT-LAB-PARTITION',
    '-A WEFT-LAB-PARTITION -s 172.31.1.11/32 -p tcp -m tcp --dport 6783 -j DROP',
    '-A WEFT-LAB-PARTITION -s 172.31.1.11/32 -p tcp -m tcp --sport 6783 -j DROP',
    '-A WEFT-LAB-PARTITION -s 172.31.1.11/32 -p udp -m udp --dport 6784 -j DROP',
    '-A WEFT-LAB-PARTITION -d 172.31.1.11/32 -p tcp -m tcp --dport 6783 -j DROP',
    '-A WEFT-LAB-PARTITION -d 172.31.1.11/32 -p tcp -m tcp --sport 6783 -j DROP',
    '-A WEFT-LAB-PARTITION -d 172.31.1.11/32 -p udp -m udp --dport 6784 -j DROP',
    'COMMIT',
    '',
  ].join('\n'));
});

test('mesh labs probe every kind; nodes never started or removed are left out, pods keep the gateway of their own block', () => {
  assert.deepEqual(defaultKinds({ store: 'mesh' }), PROBE_KINDS);
  const s = meshState({
    daemonPids: { n1: { pid: 1, ready: true, kind: 'agent' }, n2: { pid: 2, ready: true, kind: 'agent' } },
    pods: {
      // n1's pod landed in its second block: its gateway is that block's, not the first one's.
      'n1-p1': { containerId: 'a', addresses: ['10.32.0.66/26'], result: { ips: [{ address: '10.32.0.66/26', gateway: '10.32.0.65' }] } },
      'n2-p1': { containerId: 'b', addresses: ['10.40.0.2/26'], result: { ips: [{ address: '10.40.0.2/26', gateway: '10.40.0.1' }] } },
    },
    leases: { n1: { subnet: '10.32.0.0/26', gateway: '10.32.0.1', backend: null, publicIp: null } },
  });
  const view = probeView(s);
  assert.deepEqual(view.nodes.map((n) => n.name), ['n1', 'n2'], 'n3 has no agent yet');
  assert.deepEqual(planProbes(view, ['pod-gateway']).map((p) => p.address), ['10.32.0.65', '10.40.0.1']);
  const removed = probeView({ ...s, removedNodes: ['n2'] });
  assert.deepEqual(removed.nodes.map((n) => n.name), ['n1']);
});

test('updateState serialises concurrent read-modify-writes: none is lost', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  try {
    writeFileSync(join(dir, 'state.json'), JSON.stringify(meshState()));
    await Promise.all(Array.from({ length: 20 }, (_, i) => updateState(dir, async (s) => {
      await new Promise((r) => setTimeout(r, 1));
      s.namespaces.push(`ns${i}`);
    })));
    const s = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LabState;
    assert.equal(s.namespaces.length, 20);
    // A lock left by a process that is gone is taken over.
    writeFileSync(join(dir, 'state.lock'), '999999999');
    await updateState(dir, (st) => void st.namespaces.push('after-stale'));
    assert.ok((JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as LabState).namespaces.includes('after-stale'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import { test } from 'node:test';
import type { AgentStatus } from '../agent/status.ts';
import assert from 'node:assert/strict';
import { agentArgv, agentEnv, leaseOf, subnetGateway } from './agent.ts';
import { etcdArgv, networkConfig } from './etcd.ts';
import { nodeExecEnv, nodeFiles } from './paths.ts';
import { weftLauncher } from './launcher.ts';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calcTopology } from './topology.ts';

const t = calcTopology({ name: 'x', nodes: 2, podsPerNode: 1, labDir: '/run/weft/lab/x', store: 'etcd' });
const etcd = t.etcd;
assert.ok(etcd);

test('the agent gets flanneld flags pointing at the lab etcd and at its own node directory', () => {
  const argv = agentArgv({ weftBin: '/w/bin/weft', etcd, api: 'v2', prefix: '/coreos.com/network', leaseTtl: '30s', files: nodeFiles('/run/weft/lab/x/n2') });
  assert.deepEqual(argv, [
    '/w/bin/weft', 'agent',
    '--etcd-endpoints', 'http://172.31.1.5:2379',
    '--etcd-api', 'v2',
    '--etcd-prefix', '/coreos.com/network',
    '--subnet-file', '/run/weft/lab/x/n2/subnet.env',
    '--status-socket', '/run/weft/lab/x/n2/agent.sock',
    '--lock-file', '/run/weft/lab/x/n2/agent.lock',
    '--subnet-lease-ttl', '30s',
    '--subnet-lease-renew-margin', '10s',
    '--ip-masq',
  ]);
});

test('the agent runs from the bundle when it is built and fresh, else from the sources with a warning', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-launch-'));
  try {
    const sources = join(dir, 'src');
    mkdirSync(sources);
    writeFileSync(join(sources, 'a.ts'), '');
    utimesSync(join(sources, 'a.ts'), 1000, 1000);
    const paths = { bundle: join(dir, 'weft.mjs'), bin: '/w/bin/weft', sources, lockfile: join(dir, 'package-lock.json') };
    const fallback = weftLauncher(paths);
    assert.deepEqual(fallback.argv, ['/w/bin/weft']);
    assert.equal(fallback.agentScript, join(sources, 'cli', 'main.ts'));
    assert.match(fallback.warning ?? '', /weft\.mjs is not built \(npm run build:native\)/);
    writeFileSync(paths.bundle, '');
    assert.deepEqual(weftLauncher(paths), { argv: ['/w/bin/weft'], agentScript: paths.bundle });
    writeFileSync(join(sources, 'b.ts'), '');
    utimesSync(paths.bundle, 2000, 2000);
    utimesSync(join(sources, 'b.ts'), 3000, 3000);
    assert.match(weftLauncher(paths).warning ?? '', /weft\.mjs is older than the sources/, 'a stale bundle is not run');
    utimesSync(join(sources, 'b.ts'), 1500, 1500);
    writeFileSync(paths.lockfile, '');
    assert.match(weftLauncher(paths).warning ?? '', /older than the sources/, 'nor one older than the lockfile');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lab exec points weft at the node\'s own agent socket, lock and subnet.env', () => {
  assert.deepEqual(nodeExecEnv(nodeFiles('/run/weft/lab/x/n2')), {
    WEFT_STATUS_SOCKET: '/run/weft/lab/x/n2/agent.sock', WEFT_LOCK_FILE: '/run/weft/lab/x/n2/agent.lock', WEFT_SUBNET_FILE: '/run/weft/lab/x/n2/subnet.env',
  });
});

test("the agent's environment names its node", () => {
  assert.equal(agentEnv('n2', { PATH: '/bin' }).NODE_NAME, 'n2');
  assert.equal(agentEnv('n2', { PATH: '/bin' }).PATH, '/bin');
});

test('a lease subnet’s gateway is its first address', () => {
  assert.equal(subnetGateway('10.16.85.0/24'), '10.16.85.1');
  assert.equal(subnetGateway('10.16.85.7/24'), '10.16.85.1');
  assert.equal(subnetGateway('10.16.0.0/16'), '10.16.0.1');
  for (const bad of ['10.16.85.0', '10.16.85.0/31', '10.16.300.0/24', 'x/24']) assert.throws(() => subnetGateway(bad), RangeError, bad);
});

test('leaseOf reads the agent status fields the lab records', () => {
  const status: AgentStatus = {
    node: 'h', mode: 'etcd', phase: 'ready', ready: true, reasons: [], publicIp: '172.31.1.11', interface: 'eth0', backend: 'vxlan',
    store: { kind: 'etcd-v3', endpoints: [], prefix: '/p' },
    lease: { subnet: '10.16.9.0/24', subnets: ['10.16.9.0/24'], expiresAt: null, reservation: false, held: true },
    network: '10.16.0.0/16', mtu: 1450, peers: [], rejected: [], rejectedCount: 0, lastSync: null, errors: [],
  };
  assert.deepEqual(leaseOf(status), { subnet: '10.16.9.0/24', gateway: '10.16.9.1', backend: 'vxlan', publicIp: '172.31.1.11' });
  assert.equal(leaseOf({ ...status, lease: null }), undefined);
});

test('etcd listens on its underlay address (and loopback), serves v2, and keeps its data in the lab directory', () => {
  const argv = etcdArgv('x', etcd);
  const flag = (f: string): string | undefined => argv[argv.indexOf(f) + 1];
  assert.equal(argv[0], '/usr/bin/etcd');
  assert.equal(flag('--listen-client-urls'), 'http://172.31.1.5:2379,http://127.0.0.1:2379');
  assert.equal(flag('--advertise-client-urls'), 'http://172.31.1.5:2379');
  assert.equal(flag('--data-dir'), '/run/weft/lab/x/etcd/data');
  assert.ok(argv.includes('--enable-v2=true'));
});

test('the network config is flannel’s JSON', () => {
  assert.equal(networkConfig('10.16.0.0/16', 'host-gw'), '{"Network":"10.16.0.0/16","Backend":{"Type":"host-gw"}}');
});

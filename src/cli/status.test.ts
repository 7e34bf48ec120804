// `weft status` and `weft rmpeer` as a user runs them: the real bin/weft against a status
// socket served by this test (no root needed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandTable, startStatusServer, type AgentStatus, type CommandHandler } from '../agent/status.ts';
import { renderStatus as renderEtcdStatus } from '../agent/render-status.ts';
import { renderConnections, renderIpam, renderPeers, renderStatus, renderTargets } from '../mesh/status/render.ts';
import type { MeshStatus } from '../mesh/status/types.ts';
import { WeftError } from '../errors.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));

function weft(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(`${root}bin/weft`, args, { env: { ...process.env, WEFT_STATUS_SOCKET: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const etcdStatus: AgentStatus = {
  node: 'n1', mode: 'etcd', phase: 'ready', ready: true, reasons: [], publicIp: '172.31.1.11', interface: 'eth0', backend: 'vxlan',
  store: { kind: 'etcd-v3', endpoints: ['http://172.31.1.5:2379'], prefix: '/coreos.com/network' },
  lease: { subnet: '10.16.85.0/24', subnets: ['10.16.85.0/24'], expiresAt: '2026-11-28T12:00:00.000Z', reservation: false, held: true },
  network: '10.16.0.0/16', mtu: 1450, peers: [], rejected: [], rejectedCount: 0, lastSync: '2026-11-27T12:00:00.000Z', errors: [],
};

const self = { name: 'aa:bb:cc:dd:ee:01', nickname: 'n1' };
const other = { name: 'aa:bb:cc:dd:ee:02', nickname: 'n2' };
const mesh: MeshStatus = {
  version: '0.1.0', protocol: { min: 1, max: 1 }, ...self, encryption: false, peerDiscovery: true,
  targets: ['172.31.1.12', '172.31.1.13:6783'],
  connections: [
    { direction: 'outbound', address: '172.31.1.12:6783', state: 'established', peer: other, encrypted: false, attrs: { mtu: '1410' } },
    { direction: 'outbound', address: '172.31.1.13:6783', state: 'retrying', info: 'connect ECONNREFUSED 172.31.1.13:6783' },
  ],
  peers: [
    { ...self, self: true, reachable: true, connections: [{ direction: 'outbound', address: '172.31.1.12:6783', peer: other, state: 'established' }] },
    { ...other, self: false, reachable: true, connections: [{ direction: 'inbound', address: '172.31.1.11:40000', peer: self, state: 'established' }] },
  ],
  trustedSubnets: [],
  ipam: {
    status: 'ready', range: '10.32.0.0/12', defaultSubnet: '10.32.0.0/12', blockPrefix: 26, ringId: '00112233445566778899aabbccddeeff',
    owners: [{ ...self, addresses: 524288, self: true, reachable: true, active: 3 }, { ...other, addresses: 524288, self: false, reachable: true }],
    blocksOwned: 8192, blocksFree: 0,
  },
  dataPlaneEncrypted: false,
};
const meshAgent = (details: unknown): AgentStatus => ({ ...etcdStatus, mode: 'mesh', store: { kind: 'mesh', endpoints: [], prefix: '', details } });

async function agent(t: { after(fn: () => void): void }, status: AgentStatus, commands?: CommandHandler): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cli-status-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'agent.sock');
  const server = await startStatusServer(path, () => status, commands);
  t.after(() => server.close());
  return path;
}

test('etcd mode: `weft status` is as it was', async (t) => {
  const socket = await agent(t, etcdStatus);
  const r = await weft('status', '--socket', socket);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, renderEtcdStatus(etcdStatus));
  const json = await weft('status', '--socket', socket, '--json');
  assert.deepEqual(JSON.parse(json.stdout), etcdStatus);
  const view = await weft('status', 'peers', '--socket', socket);
  assert.equal(view.code, 1);
  assert.equal(view.stderr, `weft: \`weft status peers\` is for mesh mode; the agent at ${socket} uses the etcd-v3 store (see \`weft status\`)\n`);
});

test('mesh mode with the fast path: its line and the notes follow Weave\'s layout; etcd mode shows them too', async (t) => {
  const fastPath = { active: false, reason: 'the eBPF fast path could not be loaded, so pods use the normal path: no BTF', uplinks: ['eth0'], pods: 0, peers: 0 };
  const notes = [fastPath.reason];
  const socket = await agent(t, { ...meshAgent({ mesh }), fastPath, notes });
  const main = await weft('status', '--socket', socket);
  assert.equal(main.code, 0, main.stderr);
  assert.ok(main.stdout.startsWith(renderStatus(mesh)), 'Weave\'s layout first');
  assert.match(main.stdout, /^fast path {2}off \(normal path\): the eBPF fast path could not be loaded.*no BTF$/m);
  assert.match(main.stdout, /^note {7}the eBPF fast path could not be loaded/m);
  const active = { active: true, uplinks: ['eth0', 'flannel.1'], pods: 3, peers: 2, stats: { rx_redirect: 5, tx_local: 1, tx_remote: 2, tx_remote_neigh: 0, pass_nat: 4, pass_not_pod: 0, pass_other: 9 } };
  const etcd = await weft('status', '--socket', await agent(t, { ...etcdStatus, fastPath: active }));
  assert.match(etcd.stdout, /^fast path {2}tc-eBPF on eth0, flannel\.1 and 3 pod\(s\), 2 peer subnet\(s\), redirected 5 in, 3 out, 4 NAT replies to the stack$/m);
});

test("mesh mode: Weave's layout, and every view as text or JSON", async (t) => {
  const socket = await agent(t, meshAgent({ mesh }));
  const main = await weft('status', '--socket', socket);
  assert.equal(main.code, 0, main.stderr);
  assert.equal(main.stdout, renderStatus(mesh));
  assert.match(main.stdout, /^ {4}Connections: 2 \(1 established, 1 retrying\)$/m);
  const views = { peers: renderPeers, connections: renderConnections, ipam: renderIpam, targets: renderTargets } as const;
  for (const [view, render] of Object.entries(views)) {
    const r = await weft('status', view, '--socket', socket);
    assert.equal(r.code, 0, `${view}: ${r.stderr}`);
    assert.equal(r.stdout, render(mesh), view);
    const j = await weft('status', view, '--socket', socket, '--json');
    assert.deepEqual(JSON.parse(j.stdout), mesh[view as keyof typeof views], view);
  }
  // The status's own --socket and --json count for the view too.
  const before = await weft('status', '--socket', socket, '--json', 'targets');
  assert.deepEqual(JSON.parse(before.stdout), mesh.targets);
});

test('mesh mode: a malformed mesh report is one clear line, exit 1', async (t) => {
  const socket = await agent(t, meshAgent({ mesh: { ...mesh, peers: [{ name: 'x' }] } }));
  for (const args of [['status'], ['status', 'peers']]) {
    const r = await weft(...args, '--socket', socket);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^weft: the agent's mesh status is malformed \(peers\.0\.nickname: .*\); is this weft the same version as the agent\?\n$/);
  }
  const missing = await agent(t, meshAgent(undefined));
  const r = await weft('status', 'ipam', '--socket', missing);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /runs mesh mode but reports no mesh status yet/);
});

test("rmpeer: the agent's answer in Weave's words, its refusal as one line, --json raw", async (t) => {
  const seen: unknown[] = [];
  const socket = await agent(t, meshAgent({ mesh }), commandTable({
    rmpeer: async (body) => {
      seen.push(body);
      if ((body as { peer: string }).peer === 'n2') throw new WeftError('WEFT_INVALID_CONFIG', 'n2 is reachable: rmpeer is only for peers that are gone');
      return { addresses: 1024, peer: 'aa:bb:cc:dd:ee:03(n3)' };
    },
  }));
  const ok = await weft('rmpeer', 'n3', '--socket', socket);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, '1024 IPs taken over from aa:bb:cc:dd:ee:03(n3)\n');
  assert.deepEqual(seen, [{ peer: 'n3' }]);
  const refused = await weft('rmpeer', 'n2', '--socket', socket);
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr, 'weft: rmpeer n2: n2 is reachable: rmpeer is only for peers that are gone\n');
  const json = await weft('rmpeer', 'n3', '--socket', socket, '--json');
  assert.deepEqual(JSON.parse(json.stdout), { addresses: 1024, peer: 'aa:bb:cc:dd:ee:03(n3)' });
  const jsonRefused = await weft('rmpeer', 'n2', '--socket', socket, '--json');
  assert.equal(jsonRefused.code, 1);
  assert.deepEqual(JSON.parse(jsonRefused.stdout), { error: 'n2 is reachable: rmpeer is only for peers that are gone' });
});

test('rmpeer against an agent without commands says it is for mesh mode', async (t) => {
  const socket = await agent(t, etcdStatus);
  const r = await weft('rmpeer', 'n3', '--socket', socket);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, `weft: the agent at ${socket} does not take rmpeer (this agent takes no commands); rmpeer is for mesh mode (\`weft agent --store mesh\`)\n`);
  const usage = await weft('rmpeer');
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^weft rmpeer: missing required argument 'peer'\nsee `weft rmpeer --help`\n$/);
});

test('every status view and rmpeer has --help with --json', async () => {
  for (const c of ['status', 'status peers', 'status connections', 'status ipam', 'status targets', 'rmpeer']) {
    const r = await weft(...c.split(' '), '--help');
    assert.equal(r.code, 0, `${c}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: weft ${c}`), c);
    assert.match(r.stdout, /--json/, c);
    assert.match(r.stdout, /--socket <path>/, c);
  }
});

// End-to-end: the bridge plugin's per-range gateways on real kernel networking. The agent's
// CNI server (support/block-cni-server.ts) runs in a scratch node namespace, the weft-cni front
// end is exec'd there as a runtime does it, and pods live in their own namespaces.
//   - block IPAM (mesh mode) over a fake BlockSource: pods fill the first block, the next pod
//     lands in the second with that block's gateway on the bridge, and opening a third block
//     leaves the other blocks' gateways in place;
//   - etcd mode (host-local over subnet.env): a changed node subnet still replaces the old bridge
//     address, and a bridge address outside the cluster network still fails the ADD cleanly.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HostLocalIpam } from '../../src/ipam/allocator.ts';
import { parseRangeSets } from '../../src/ipam/ranges.ts';
import { cidrContains, parseCidr, parseIp } from '../../src/net/cidr.ts';
import { ROOT, isRoot, sh, TestNode, type CniCall } from './support/cni-node.ts';

const skip = isRoot() ? false : 'needs root (network namespaces)';
const SERVER = join(ROOT, 'test', 'e2e', 'support', 'block-cni-server.ts');

interface ServerEvent { event: string; block?: string; filesInBlock?: number; verb?: string; result?: string }

/** The agent's CNI server in the node's namespace, over the given blocks or host-local. */
class BlockServer {
  readonly #events: string;
  readonly #child: ChildProcess;

  private constructor(events: string, child: ChildProcess) {
    this.#events = events;
    this.#child = child;
  }

  static async start(node: TestNode, blocks: string[] | 'host-local'): Promise<BlockServer> {
    const ready = join(node.dir, 'block-server.ready');
    const events = join(node.dir, 'block-server.events');
    writeFileSync(events, '');
    const child = spawn('nsenter', [`--net=${node.netnsPath}`, process.execPath, '--disable-warning=ExperimentalWarning', SERVER,
      ready, events, node.ipamDir, blocks === 'host-local' ? blocks : blocks.join(',')], { stdio: ['ignore', 'ignore', 'inherit'] });
    for (let i = 0; i < 1200 && !existsSync(ready); i++) {
      if (child.exitCode !== null) throw new Error('the block CNI server exited during start-up');
      await sleep(50);
    }
    if (!existsSync(ready)) throw new Error('the block CNI server did not become ready');
    return new BlockServer(events, child);
  }

  events(kind?: string): ServerEvent[] {
    const all = readFileSync(this.#events, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as ServerEvent);
    return kind ? all.filter((e) => e.event === kind) : all;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.kill('SIGTERM');
    await exited;
  }
}

function ipOf(r: CniCall): { address: string; gateway: string } {
  const { address, gateway } = (r.json!.ips as { address: string; gateway: string }[])[0]!;
  return { address, gateway };
}
const bare = (address: string): string => address.split('/')[0]!;
const inBlock = (block: string, address: string): boolean => cidrContains(parseCidr(block), parseIp(bare(address)));

function bridgeAddresses(node: TestNode): string[] {
  const [cni0] = JSON.parse(sh('ip', ['-j', '-n', node.name, 'addr', 'show', 'cni0'])) as { addr_info: { family: string; local: string; prefixlen: number }[] }[];
  return cni0!.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`).sort();
}

function podRoutes(node: TestNode, netns: string): { dst: string; gateway?: string }[] {
  return JSON.parse(sh('ip', ['-j', '-n', netns.replace('/run/netns/', ''), 'route', 'show'])) as { dst: string; gateway?: string }[];
}

const ping = (node: TestNode, netns: string, to: string): number => node.inPod(netns, ['ping', '-c', '1', '-W', '2', to]).code;

/** Another writer of the same store: takes every free address of one block, and gives them back. */
class Filler {
  readonly #ipam: HostLocalIpam;
  readonly #held: string[] = [];

  constructor(node: TestNode, block: string) {
    this.#ipam = new HostLocalIpam({ dataDir: node.ipamDir, network: 'weftnet', rangeSets: parseRangeSets([[{ subnet: block }]]) });
  }

  static async fill(node: TestNode, block: string, prefix: string): Promise<Filler> {
    const filler = new Filler(node, block);
    for (let i = 0; ; i++) {
      const containerId = `${prefix}-${i}`;
      try {
        await filler.#ipam.allocate({ containerId, ifname: 'eth0' });
      } catch (e) {
        if ((e as { code?: string }).code === 'WEFT_IPAM_EXHAUSTED') return filler;
        throw e;
      }
      filler.#held.push(containerId);
    }
  }

  async release(): Promise<void> {
    for (const containerId of this.#held.splice(0)) await this.#ipam.release({ containerId, ifname: 'eth0' });
  }
}

const MESH_ENV = (subnet: string): string => `FLANNEL_NETWORK=10.32.0.0/12\nFLANNEL_SUBNET=${subnet}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`;

describe('bridge plugin over block IPAM (two /26 blocks)', { skip }, () => {
  const A = '10.32.4.0/26';
  const B = '10.32.9.64/26';
  let node: TestNode;
  let server: BlockServer;
  before(async () => {
    // subnet.env in mesh mode: the whole range, and the node's first block.
    node = await TestNode.create({ subnetEnv: MESH_ENV('10.32.4.1/26') });
    server = await BlockServer.start(node, [A, B]);
  });
  after(async () => {
    await server?.stop();
    await node?.destroy();
  });

  test('pods fill the first block, the next lands in the second behind its own gateway; all reach each other; DEL cleans up', async () => {
    const p1 = node.addPodNetns();
    const r1 = await node.add('blk-1', p1);
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.deepEqual(ipOf(r1), { address: '10.32.4.2/26', gateway: '10.32.4.1' });
    assert.deepEqual(bridgeAddresses(node), ['10.32.4.1/26']);

    // The other 60 addresses of the first block go to another writer of the same store.
    const fillers = await Filler.fill(node, A, 'filler');
    assert.equal(node.ipamFiles().filter((f) => inBlock(A, f)).length, 61, 'the first block is full');

    const p2 = node.addPodNetns();
    const r2 = await node.add('blk-2', p2);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    assert.deepEqual(ipOf(r2), { address: '10.32.9.66/26', gateway: '10.32.9.65' });
    assert.deepEqual(r2.json!.routes, [{ dst: '0.0.0.0/0', gw: '10.32.9.65' }, { dst: '10.32.0.0/12', gw: '10.32.9.65' }]);
    const routes = podRoutes(node, p2);
    assert.ok(routes.some((r) => r.dst === 'default' && r.gateway === '10.32.9.65'), JSON.stringify(routes));
    assert.ok(routes.some((r) => r.dst === '10.32.0.0/12' && r.gateway === '10.32.9.65'), JSON.stringify(routes));
    assert.deepEqual(bridgeAddresses(node), ['10.32.4.1/26', '10.32.9.65/26'], "both blocks' gateways are on the bridge");

    // Each block was activated before anything was reserved in it; nothing asked for more space.
    assert.deepEqual(server.events('activate'), [
      { event: 'activate', block: A, filesInBlock: 0 },
      { event: 'activate', block: B, filesInBlock: 0 },
    ]);
    assert.deepEqual(server.events('grow'), []);

    assert.equal(ping(node, p1, '10.32.4.1'), 0, 'pod 1 reaches its gateway');
    assert.equal(ping(node, p2, '10.32.9.65'), 0, 'pod 2 reaches its gateway');
    assert.equal(ping(node, p1, '10.32.9.66'), 0, 'pod 1 reaches pod 2 across blocks');
    assert.equal(ping(node, p2, '10.32.4.2'), 0, 'pod 2 reaches pod 1 across blocks');
    assert.equal(node.inNode(['ping', '-c', '1', '-W', '2', '10.32.9.66']).code, 0, 'the node reaches pod 2');

    for (const [id, netns, result] of [['blk-1', p1, r1], ['blk-2', p2, r2]] as const) {
      const check = await node.cni({ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: id, CNI_NETNS: netns, CNI_IFNAME: 'eth0' }, { ...node.config(), prevResult: result.json });
      assert.equal(check.code, 0, `CHECK ${id}: ${check.stdout}`);
    }

    // A third pod goes into an active block (round-robin from the last address, as host-local): no block opened, no gateway added.
    const p3 = node.addPodNetns();
    const r3 = await node.add('blk-3', p3);
    assert.equal(r3.code, 0, r3.stdout + r3.stderr);
    assert.deepEqual(ipOf(r3), { address: '10.32.9.67/26', gateway: '10.32.9.65' });
    assert.equal(server.events('activate').length, 2);
    assert.deepEqual(bridgeAddresses(node), ['10.32.4.1/26', '10.32.9.65/26']);
    assert.equal(ping(node, p3, '10.32.4.2'), 0);

    for (const [id, netns] of [['blk-1', p1], ['blk-2', p2], ['blk-3', p3]] as const) {
      const del = await node.del(id, netns);
      assert.equal(del.code, 0, del.stdout);
      assert.equal(sh('ip', ['-n', netns.replace('/run/netns/', ''), 'link', 'show']).includes('eth0'), false);
    }
    await fillers.release();
    assert.deepEqual(node.ipamFiles(), []);
    assert.deepEqual(node.veths(), []);
    const requests = server.events('request').map((e) => `${e.verb} ${e.result}`);
    assert.deepEqual(requests.filter((r) => r.startsWith('ADD')), ['ADD ok', 'ADD ok', 'ADD ok'], 'onRequest is called through the options form');
  });
});

describe('bridge plugin over block IPAM: opening a third block keeps the others', { skip }, () => {
  const blocks = ['10.32.16.0/29', '10.32.16.8/29', '10.32.20.0/29'];
  let node: TestNode;
  let server: BlockServer;
  before(async () => {
    // subnet.env's block is the source's last: until a pod lands there, the bridge lacks its gateway.
    node = await TestNode.create({ subnetEnv: MESH_ENV('10.32.20.1/29') });
    server = await BlockServer.start(node, blocks);
  });
  after(async () => {
    await server?.stop();
    await node?.destroy();
  });

  test("a new block's gateway is added beside every other owned block's, none is taken for stale", async () => {
    const pods: { id: string; netns: string; address: string }[] = [];
    const fillers: Filler[] = [];
    for (const [i, block] of blocks.entries()) {
      const netns = node.addPodNetns();
      const r = await node.add(`third-${i}`, netns);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.ok(inBlock(block, ipOf(r).address), `pod ${i} in ${block}: ${ipOf(r).address}`);
      pods.push({ id: `third-${i}`, netns, address: bare(ipOf(r).address) });
      const check = await node.cni({ CNI_COMMAND: 'CHECK', CNI_CONTAINERID: `third-${i}`, CNI_NETNS: netns, CNI_IFNAME: 'eth0' }, { ...node.config(), prevResult: r.json });
      assert.equal(check.code, 0, `CHECK looks for the gateway of the pod's own block: ${check.stdout}`);
      fillers.push(await Filler.fill(node, block, `fill${i}`));
    }
    assert.deepEqual(bridgeAddresses(node), ['10.32.16.1/29', '10.32.16.9/29', '10.32.20.1/29']);
    assert.equal(ping(node, pods[1]!.netns, '10.32.16.9'), 0, 'the second block still works after the third opened');
    assert.equal(ping(node, pods[2]!.netns, pods[1]!.address), 0);
    assert.equal(ping(node, pods[0]!.netns, pods[2]!.address), 0);

    // Every block is full and grow() refuses: the ADD fails with both reasons and leaves nothing.
    const extra = node.addPodNetns();
    const full = await node.add('third-full', extra);
    assert.equal(full.code, 1);
    assert.match(String(full.json?.msg), /no IP addresses available in range set .* of network weftnet, and no more address space can be had now: the test block source has no more blocks/);
    assert.equal(server.events('grow').length >= 1, true);
    assert.equal(node.veths().length, 3);

    for (const p of pods) assert.equal((await node.del(p.id, p.netns)).code, 0);
    for (const f of fillers) await f.release();
    assert.deepEqual(node.ipamFiles(), []);
  });
});

describe('bridge plugin in etcd mode: the node subnet changes', { skip }, () => {
  let node: TestNode;
  let server: BlockServer;
  const env = (subnet: string): string => `FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=${subnet}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n`;
  before(async () => {
    node = await TestNode.create({ subnetEnv: env('10.77.5.1/24') });
    server = await BlockServer.start(node, 'host-local');
  });
  after(async () => {
    await server?.stop();
    await node?.destroy();
  });

  test('a new subnet replaces the old bridge address; a foreign address fails the ADD and leaves nothing', async () => {
    const p1 = node.addPodNetns();
    const r1 = await node.add('etcd-1', p1);
    assert.equal(r1.code, 0, r1.stdout + r1.stderr);
    assert.deepEqual(bridgeAddresses(node), ['10.77.5.1/24']);
    assert.equal((await node.del('etcd-1', p1)).code, 0);

    writeFileSync(node.subnetFile, env('10.77.6.1/24'));
    const p2 = node.addPodNetns();
    const r2 = await node.add('etcd-2', p2);
    assert.equal(r2.code, 0, r2.stdout + r2.stderr);
    assert.match(ipOf(r2).address, /^10\.77\.6\.\d+\/24$/);
    assert.equal(ipOf(r2).gateway, '10.77.6.1');
    assert.deepEqual(bridgeAddresses(node), ['10.77.6.1/24'], 'the old subnet\'s address is gone');
    assert.equal(ping(node, p2, '10.77.6.1'), 0);
    assert.equal((await node.del('etcd-2', p2)).code, 0);

    sh('ip', ['-n', node.name, 'addr', 'add', '192.0.2.1/24', 'dev', 'cni0']);
    writeFileSync(node.subnetFile, env('10.77.7.1/24'));
    const p3 = node.addPodNetns();
    const r3 = await node.add('etcd-3', p3);
    assert.equal(r3.code, 1);
    assert.match(String(r3.json?.msg), /bridge cni0 already has the address 192\.0\.2\.1\/24, which is outside the cluster network/);
    assert.deepEqual(node.ipamFiles(), [], 'the address taken before the bridge was refused is given back');
    assert.deepEqual(node.veths(), []);
    assert.deepEqual(bridgeAddresses(node), ['10.77.6.1/24', '192.0.2.1/24'], 'the refused ADD changed no bridge address');

    sh('ip', ['-n', node.name, 'addr', 'del', '192.0.2.1/24', 'dev', 'cni0']);
    const r4 = await node.add('etcd-4', p3);
    assert.equal(r4.code, 0, r4.stdout + r4.stderr);
    assert.deepEqual(bridgeAddresses(node), ['10.77.7.1/24']);
    assert.equal((await node.del('etcd-4', p3)).code, 0);
    const requests = server.events('request').map((e) => `${e.verb} ${e.result}`);
    assert.deepEqual(requests.filter((r) => r.startsWith('ADD')), ['ADD ok', 'ADD ok', 'ADD error', 'ADD ok'], 'onRequest as the third argument still works');
  });
});

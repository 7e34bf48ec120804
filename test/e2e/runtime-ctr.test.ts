// containerd's `ctr run --cni` (docs/cni-spec-notes.md §3.2) gets its containers' network from the weft plugin,
// with weft's own config (cniVersion 1.0.0) and as `flannel` with kube-flannel's plugin object
// (0.3.1); each through a `weft cni-server` and through the standalone fallback. ctr differs
// from podman in ways a plugin must survive: CNI_NETNS is /proc/<pid>/ns/net, CNI_ARGS is empty,
// there is no VERSION probe, and DEL comes after the task is gone, with CNI_NETNS empty.
//
// Safety. ctr has no flags for its CNI dirs: it reads only /etc/cni/net.d (first file wins) and
// execs plugins from /opt/cni/bin:/usr/lib/cni. So each `ctr run --cni` runs in a private mount
// namespace (`unshare --mount --propagation private`) in which scratch dirs are bind-mounted
// over /etc/cni/net.d and /usr/lib/cni (and /opt/cni/bin if it exists); the real directories are
// never written, and the mounts vanish with that ctr process. Like podman, ctr and containerd
// run under `nsenter --net=<scratch namespace>`, so cni0, the veths and ip_forward stay there.
// containerd's root, state, sockets, ctr's FIFOs and the runc root are scratch dirs; only its shims'
// sockets go to /run/containerd/s (a fixed path in containerd 1.6), and they go away with the shims.
// Needs root, containerd (ctr, containerd-shim-runc-v2), runc, and an existing /etc/cni/net.d
// and /usr/lib/cni to mount over; skipped with a message otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUSYBOX, busyboxOciArchive } from './support/image.ts';
import {
  abstractSocketBound, addresses, Cleanup, CNI_CACHE_DIR, describeRun, inNetns, ipamAddressFiles, links, mountsAt,
  mustRun, prerequisiteProblem, rand, rootNetSnapshot, run, scratchDir, scratchNetns, startCniServer,
  tidyCniCacheDirs, tidyCreatedDirs, veths, waitFor, WEFT_BIN, WEFT_CNI, type CniServer, type LinkInfo,
  type RootNetSnapshot, type RunResult,
} from './support/sandbox.ts';

/** What ctr reads and where it looks for plugins; hidden by bind mounts, never written. */
const CNI_CONF_DIR = '/etc/cni/net.d';
const CNI_BIN_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];

function mountTargetProblem(): string | false {
  if (!existsSync(CNI_CONF_DIR)) {
    return `ctr reads only ${CNI_CONF_DIR}, which does not exist here; the test hides it behind a private bind mount but will not create it in /etc`;
  }
  if (!existsSync('/usr/lib/cni')) return 'needs /usr/lib/cni (containernetworking-plugins) to mount the plugin dir over';
  return false;
}

const skip = prerequisiteProblem(['containerd', 'ctr', 'containerd-shim-runc-v2', 'runc', 'nsenter', 'unshare', 'mount', 'ip', 'tar'],
  [WEFT_CNI, WEFT_BIN, BUSYBOX]) || mountTargetProblem();
const IMAGE = 'localhost/weft-busybox:e2e';
const SUBNET_ENV = 'FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=10.77.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';
const GATEWAY = '10.77.3.1';
const IN_SUBNET = /^10\.77\.3\.(\d{1,3})$/;

interface Case { label: string; network: string; cniVersion: string; form: 'weft' | 'flannel' }
const CASES: Case[] = [
  { label: 'weft config, cniVersion 1.0.0', network: 'weftnet', cniVersion: '1.0.0', form: 'weft' },
  { label: 'as `flannel` with kube-flannel\'s config, cniVersion 0.3.1', network: 'cbr0', cniVersion: '0.3.1', form: 'flannel' },
];
const MODES = ['cni-server', 'standalone'] as const;

let base = '';
let socket = '';
const fileCleanup = new Cleanup();
let rootBefore: { net: RootNetSnapshot; confDir: string[]; mounts: string[] } | undefined;

interface Scenario { ns: string; dir: string; netd: string; bin: string; ipamDir: string; flannelDir: string; network: string }

const ctrArgv = (ns: string, args: readonly string[]): string[] => inNetns(ns, ['ctr', '-a', socket, ...args]);

async function ctr(ns: string, args: readonly string[]): Promise<string> {
  return mustRun(ctrArgv(ns, args));
}

/** Mount our dirs over ctr's fixed CNI dirs, privately, then exec the rest of argv. */
const PRIVATE_CNI_DIRS = [
  'set -e',
  'conf=$1; bin=$2; shift 2',
  `mount --bind "$conf" ${CNI_CONF_DIR}`,
  ...CNI_BIN_DIRS.map((d) => `if [ -d ${d} ]; then mount --bind "$bin" ${d}; fi`),
  'exec "$@"',
].join('\n');

/** `ctr run --cni …` with the scenario's network config and plugin dir. */
function ctrRunArgv(s: Scenario, id: string, cmd: readonly string[]): string[] {
  return inNetns(s.ns, [
    'unshare', '--mount', '--propagation', 'private', 'sh', '-c', PRIVATE_CNI_DIRS, 'sh', s.netd, s.bin,
    'ctr', '-a', socket, 'run', '--cni', '--rm', '--snapshotter', 'native',
    '--fifo-dir', join(base, 'fifo'), '--runc-root', join(base, 'runc'), IMAGE, id, ...cmd,
  ]);
}

async function newScenario(c: Case, cleanup: Cleanup): Promise<Scenario> {
  const dir = scratchDir(cleanup, 'weft-rt-ctr-case');
  const ns = await scratchNetns(cleanup);
  const [netd, bin, ipamDir, flannelDir] = ['net.d', 'bin', 'ipam', 'flannel'].map((d) => join(dir, d)) as [string, string, string, string];
  for (const d of [netd, bin, ipamDir]) mkdirSync(d);
  symlinkSync(WEFT_CNI, join(bin, 'weft'));
  symlinkSync(WEFT_CNI, join(bin, 'flannel'));
  const subnetFile = join(dir, 'subnet.env');
  writeFileSync(subnetFile, SUBNET_ENV);
  const plugin = c.form === 'weft'
    ? { type: 'weft', subnetFile, dataDir: ipamDir }
    : { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true }, subnetFile, dataDir: flannelDir, ipam: { dataDir: ipamDir } };
  // Only weft's plugin in the chain: the mounted plugin dir holds nothing else.
  writeFileSync(join(netd, `10-${c.network}.conflist`), JSON.stringify({ cniVersion: c.cniVersion, name: c.network, plugins: [plugin] }, null, 2));
  return { ns, dir, netd, bin, ipamDir, flannelDir, network: c.network };
}

const inetOf = (out: string): { address: string; prefix: number } | undefined => {
  const m = /\binet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(out);
  return m ? { address: m[1] as string, prefix: Number(m[2]) } : undefined;
};

function assertPodAddress(address: string): void {
  const m = IN_SUBNET.exec(address);
  assert.ok(m, `pod address ${address} is not in 10.77.3.0/24`);
  const host = Number(m[1]);
  assert.ok(host >= 2 && host <= 254, `pod address ${address} is the network, gateway or broadcast address`);
}

const bridgePorts = (all: LinkInfo[]): LinkInfo[] => veths(all).filter((l) => l.master === 'cni0');

function cacheFiles(network: string, cniId: string): string[] {
  if (!existsSync(CNI_CACHE_DIR)) return [];
  return readdirSync(CNI_CACHE_DIR).filter((f) => f === `${network}-${cniId}-eth0`);
}

function serverEvents(server: CniServer, msg: string): string[] {
  return server.log().split('\n').flatMap((l) => {
    try {
      const e = JSON.parse(l) as { msg?: string; containerId?: string };
      return e.msg === msg && e.containerId ? [e.containerId] : [];
    } catch {
      return [];
    }
  });
}

/** A container whose `ctr run` stays in the foreground (so ctr will DEL it when it ends). */
interface Foreground { id: string; result: Promise<RunResult>; done(): RunResult | undefined }

function startForeground(s: Scenario, id: string, cmd: readonly string[]): Foreground {
  const argv = ctrRunArgv(s, id, cmd);
  const [bin, ...args] = argv as [string, ...string[]];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let finished: RunResult | undefined;
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const result = new Promise<RunResult>((resolve) => child.on('close', (code, signal) => {
    finished = { code: code ?? (signal ? 128 : 1), stdout, stderr };
    resolve(finished);
  }));
  return { id, result, done: () => finished };
}

async function taskStatus(ns: string, id: string): Promise<string | undefined> {
  const out = await run(ctrArgv(ns, ['task', 'ls']));
  const line = out.stdout.split('\n').find((l) => l.split(/\s+/)[0] === id);
  return line?.split(/\s+/)[2];
}

async function removeAllContainers(ns: string): Promise<void> {
  for (const id of (await ctr(ns, ['task', 'ls', '-q'])).split('\n').filter((l) => l !== '')) {
    await run(ctrArgv(ns, ['task', 'kill', '-s', 'SIGKILL', id]));
    await waitFor(`task ${id} to stop`, async () => ((await taskStatus(ns, id)) === 'RUNNING' ? undefined : true));
    await run(ctrArgv(ns, ['task', 'delete', id]));
  }
  for (const id of (await ctr(ns, ['container', 'ls', '-q'])).split('\n').filter((l) => l !== '')) {
    await run(ctrArgv(ns, ['container', 'delete', id]));
  }
}

describe('containerd `ctr run --cni` runs containers on a weft network', { skip }, () => {
  before(async () => {
    rootBefore = { net: await rootNetSnapshot(), confDir: readdirSync(CNI_CONF_DIR).sort(), mounts: mountsAt([CNI_CONF_DIR, ...CNI_BIN_DIRS]) };
    fileCleanup.push('tidy /var/lib/cni', tidyCniCacheDirs());
    fileCleanup.push('tidy /run/containerd', tidyCreatedDirs(['/run/containerd', '/run/containerd/s', '/run/containerd/fifo']));
    base = scratchDir(fileCleanup, 'weft-rt-ctr');
    socket = join(base, 'containerd.sock');
    for (const d of ['fifo', 'runc']) mkdirSync(join(base, d));
    const config = join(base, 'containerd.toml');
    writeFileSync(config, [
      'version = 2',
      `root = "${join(base, 'root')}"`,
      `state = "${join(base, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${socket}"`,
      '[ttrpc]',
      `  address = "${socket}.ttrpc"`,
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(base, 'opt')}"`,
      '',
    ].join('\n'));
    // containerd itself in a scratch namespace too; the containers get namespaces of their own.
    const ns = await scratchNetns(fileCleanup);
    const daemon = spawn('nsenter', [`--net=/run/netns/${ns}`, 'containerd', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    let exited: string | undefined;
    daemon.stderr.on('data', (c: Buffer) => { log += c.toString(); });
    const exit = new Promise<void>((resolve) => daemon.on('exit', (code, signal) => {
      exited = String(code ?? signal);
      resolve();
    }));
    const pid = daemon.pid;
    fileCleanup.push(`stop containerd ${pid}`, async () => {
      if (exited !== undefined || pid === undefined) return;
      process.kill(pid, 'SIGTERM');
      await exit;
    });
    // Before containerd stops: kill and delete whatever a failed scenario left running.
    fileCleanup.push('remove leftover containers', () => removeAllContainers(ns));
    await waitFor('containerd to answer', async () => ((await run(ctrArgv(ns, ['version']))).code === 0 ? true : undefined),
      { abort: () => (exited === undefined ? undefined : `containerd exited (${exited}):\n${log}`) });
    const archive = await busyboxOciArchive(scratchDir(fileCleanup, 'weft-rt-image'), IMAGE);
    await ctr(ns, ['images', 'import', '--snapshotter', 'native', archive]);
  });

  after(async () => {
    await fileCleanup.run();
  });

  for (const mode of MODES) {
    for (const c of CASES) {
      test(`${c.label}, ${mode === 'cni-server' ? 'served by weft cni-server' : 'standalone fallback (no server)'}`, async () => {
        const cleanup = new Cleanup();
        try {
          const s = await newScenario(c, cleanup);
          const server = mode === 'cni-server' ? await startCniServer(s.ns, s.dir, cleanup) : undefined;
          assert.equal(await abstractSocketBound(s.ns, 'weft-cni'), mode === 'cni-server', 'whether @weft-cni is served in the node namespace');

          // 1. Container A, running until we kill it.
          const idA = `weft-rt-${rand()}-a`;
          const idB = `weft-rt-${rand()}-b`;
          const a = startForeground(s, idA, ['sleep', '300']);
          cleanup.push(`stop ${idA}`, async () => {
            if (a.done()) return;
            await run(ctrArgv(s.ns, ['task', 'kill', '-s', 'SIGKILL', idA]));
            await a.result;
          });
          const died = (): string | undefined => {
            const r = a.done();
            return r ? `ctr run ${idA} ended:\n${r.stdout}${r.stderr}` : undefined;
          };
          // ADD happens between task create and start, so RUNNING means the network is set up.
          await waitFor(`${idA} to run`, async () => ((await taskStatus(s.ns, idA)) === 'RUNNING' ? true : undefined), { abort: died });
          const inside = await ctr(s.ns, ['task', 'exec', '--fifo-dir', join(base, 'fifo'), '--exec-id', `x-${rand()}`, idA,
            'sh', '-c', 'ip -o addr show eth0; echo ---; ip route; echo ---; ip -o link show eth0']);
          const [addrOut = '', routeOut = '', linkOut = ''] = inside.split('---\n');
          const inetA = inetOf(addrOut);
          assert.ok(inetA, `no IPv4 address on ${idA}'s eth0:\n${inside}`);
          assertPodAddress(inetA.address);
          assert.equal(inetA.prefix, 24);
          assert.match(routeOut, /^default via 10\.77\.3\.1 dev eth0/m, 'no default route via the bridge gateway');
          assert.match(linkOut, /\bmtu 1450\b/, 'eth0 does not have FLANNEL_MTU');

          // Host side and IPAM. ctr's container ID for CNI is <namespace>-<id>.
          const cniIdA = `default-${idA}`;
          const cni0 = await addresses(s.ns, 'cni0');
          assert.ok(cni0, 'no cni0 bridge in the node namespace');
          assert.ok(cni0.addr_info.some((x) => x.family === 'inet' && x.local === GATEWAY && x.prefixlen === 24), `cni0 lacks ${GATEWAY}/24`);
          const ports = bridgePorts(await links(s.ns));
          assert.equal(ports.length, 1, `expected 1 veth on cni0, got ${ports.map((p) => p.ifname).join(', ')}`);
          assert.deepEqual(ipamAddressFiles(s.ipamDir, s.network), [inetA.address]);
          assert.equal(readFileSync(join(s.ipamDir, s.network, inetA.address), 'utf8'), `${cniIdA}\r\neth0`);
          if (c.form === 'flannel') assert.ok(existsSync(join(s.flannelDir, cniIdA)), 'no flannel delegate record for A');

          // 2. Container B in the foreground: its own address, and it reaches A across the bridge.
          const b = await run(ctrRunArgv(s, idB, ['sh', '-c', `ip -o addr show eth0; echo ---; ping -c 3 -W 10 ${inetA.address}`]));
          assert.equal(b.code, 0, `container B failed (ping ${inetA.address}?):\n${describeRun([idB], b)}`);
          const inetB = inetOf(b.stdout);
          assert.ok(inetB, `no IPv4 address in ${idB}:\n${b.stdout}`);
          assertPodAddress(inetB.address);
          assert.notEqual(inetB.address, inetA.address, 'two containers got the same address');
          // B ended: ctr's DEL (with CNI_NETNS empty) released its address; its veth goes with its netns.
          assert.deepEqual(ipamAddressFiles(s.ipamDir, s.network), [inetA.address], 'B\'s address not released');
          await waitFor('B\'s veth to go', async () => (bridgePorts(await links(s.ns)).length === 1 ? true : undefined), { limitMs: 60_000 });

          // 3. Kill A: its ctr process DELs and removes it.
          await ctr(s.ns, ['task', 'kill', '-s', 'SIGKILL', idA]);
          await a.result;
          assert.deepEqual(ipamAddressFiles(s.ipamDir, s.network), [], 'addresses left in the IPAM store');
          await waitFor('no veth left', async () => (veths(await links(s.ns)).length === 0 ? true : undefined), { limitMs: 60_000 });
          for (const id of [idA, idB]) assert.deepEqual(cacheFiles(s.network, `default-${id}`), [], 'libcni result cache not cleared: DEL failed');
          if (c.form === 'flannel') assert.equal(existsSync(join(s.flannelDir, cniIdA)), false, 'flannel delegate record left');
          assert.equal((await ctr(s.ns, ['container', 'ls', '-q'])).includes(idA), false, `${idA} not removed by ctr --rm`);

          if (server) {
            const attached = serverEvents(server, 'pod attached');
            const detached = serverEvents(server, 'pod detached');
            for (const id of [cniIdA, `default-${idB}`]) {
              assert.ok(attached.includes(id), `the CNI server did not ADD ${id}:\n${server.log()}`);
              assert.ok(detached.includes(id), `the CNI server did not DEL ${id}:\n${server.log()}`);
            }
          }
        } finally {
          await cleanup.run();
        }
      });
    }
  }

  test('the root network namespace and the real CNI dirs are untouched', async () => {
    assert.ok(rootBefore);
    assert.deepEqual(await rootNetSnapshot(), rootBefore.net);
    assert.deepEqual(readdirSync(CNI_CONF_DIR).sort(), rootBefore.confDir, `${CNI_CONF_DIR} changed`);
    assert.deepEqual(mountsAt([CNI_CONF_DIR, ...CNI_BIN_DIRS]), rootBefore.mounts, 'a bind mount leaked into the root mount namespace');
  });
});

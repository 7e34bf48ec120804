// A real container runtime gets its network from the weft plugin: Debian's podman 4.3.1 with
// the CNI backend (docs/cni-spec-notes.md §3.1) runs busybox containers on a weft network, with weft's own
// config form at cniVersion 1.0.0 and 0.4.0 and with kube-flannel's plugin object (weft
// installed under the name `flannel`) at 0.3.1; each both through a `weft cni-server` and
// through the front end's standalone fallback.
//
// Safety: podman runs under `nsenter --net=<scratch namespace>`, so cni0, the veths and
// ip_forward land in a namespace this file creates and deletes. Its storage, config,
// network configs and plugin dir are scratch dirs (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
// --root/--runroot); nothing is written to /etc. libcni's result cache in /var/lib/cni/results
// is podman's own and is emptied by DEL (checked below).
// Needs root, podman, runc, nsenter and busybox-static; skipped with a message otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUSYBOX, busyboxRootfsTar } from './support/image.ts';
import {
  abstractSocketBound, addresses, Cleanup, CNI_CACHE_DIR, describeRun, inNetns, ipamAddressFiles, links,
  prerequisiteProblem, rand, REPO, rootNetSnapshot, run, scratchDir, scratchNetns, startCniServer, tidyCniCacheDirs,
  veths, WEFT_BIN, WEFT_CNI, type CniServer, type LinkInfo, type RootNetSnapshot, type RunResult,
} from './support/sandbox.ts';

const skip = prerequisiteProblem(['podman', 'runc', 'conmon', 'nsenter', 'ip', 'tar', 'iptables'], [WEFT_CNI, WEFT_BIN, BUSYBOX]);
const IMAGE = 'localhost/weft-busybox:e2e';
const SUBNET_ENV = 'FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=10.77.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n';
const GATEWAY = '10.77.3.1';
const IN_SUBNET = /^10\.77\.3\.(\d{1,3})$/;

interface Case { label: string; network: string; cniVersion: string; form: 'weft' | 'flannel' }
const CASES: Case[] = [
  { label: 'weft config, cniVersion 1.0.0', network: 'weftnet', cniVersion: '1.0.0', form: 'weft' },
  { label: 'weft config, cniVersion 0.4.0', network: 'weftnet', cniVersion: '0.4.0', form: 'weft' },
  // kube-flannel's cni-conf.json: flannel plugin + portmap, so Debian's portmap also parses weft's result.
  { label: 'as `flannel` with kube-flannel\'s config, cniVersion 0.3.1', network: 'cbr0', cniVersion: '0.3.1', form: 'flannel' },
];
const MODES = ['cni-server', 'standalone'] as const;

/** Per-file state: podman's storage (shared by all scenarios, so the image is imported once). */
let base = '';
const fileCleanup = new Cleanup();
let rootBefore: RootNetSnapshot | undefined;

interface Scenario { ns: string; dir: string; conf: string; ipamDir: string; flannelDir: string; network: string }

function podmanArgv(s: Pick<Scenario, 'ns'>, args: string[]): string[] {
  return inNetns(s.ns, ['podman', '--root', join(base, 'root'), '--runroot', join(base, 'runroot'), '--storage-driver', 'vfs', ...args]);
}

function podmanEnv(conf: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: join(base, 'storage.conf') };
  delete env.WEFT_CNI_SOCKET;
  delete env.WEFT_CNI_FALLBACK;
  return env;
}

function podman(s: Pick<Scenario, 'ns' | 'conf'>, args: string[]): Promise<RunResult> {
  return run(podmanArgv(s, args), { env: podmanEnv(s.conf) });
}

async function mustPodman(s: Pick<Scenario, 'ns' | 'conf'>, args: string[]): Promise<string> {
  const r = await podman(s, args);
  if (r.code !== 0) throw new Error(describeRun(podmanArgv(s, args), r));
  return r.stdout;
}

function containersConf(path: string, networkConfigDir: string, pluginDir: string): void {
  writeFileSync(path, [
    '[containers]',
    // The sandbox's hard nofile limit is below podman's default (docs/cni-spec-notes.md §3.1).
    'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
    '[network]',
    'network_backend = "cni"',
    `network_config_dir = "${networkConfigDir}"`,
    `cni_plugin_dirs = ["${pluginDir}", "${join(REPO, 'build')}", "/usr/lib/cni"]`,
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = "${join(base, 'events.log')}"`,
    `tmp_dir = "${join(base, 'libpod-tmp')}"`,
    // File locks live in tmp_dir; shm locks would leave /dev/shm/libpod_lock behind.
    'lock_type = "file"',
    '',
  ].join('\n'));
}

async function newScenario(c: Case, cleanup: Cleanup): Promise<Scenario> {
  const dir = scratchDir(cleanup, 'weft-rt-podman-case');
  const ns = await scratchNetns(cleanup);
  const [netd, bin, ipamDir, flannelDir] = ['net.d', 'bin', 'ipam', 'flannel'].map((d) => join(dir, d)) as [string, string, string, string];
  for (const d of [netd, bin, ipamDir]) mkdirSync(d);
  // The runtime execs the plugin named by "type": install the front end as `weft` and as `flannel`.
  symlinkSync(WEFT_CNI, join(bin, 'weft'));
  symlinkSync(WEFT_CNI, join(bin, 'flannel'));
  const subnetFile = join(dir, 'subnet.env');
  writeFileSync(subnetFile, SUBNET_ENV);
  const plugins = c.form === 'weft'
    ? [{ type: 'weft', subnetFile, dataDir: ipamDir }]
    : [
        { type: 'flannel', delegate: { hairpinMode: true, isDefaultGateway: true }, subnetFile, dataDir: flannelDir, ipam: { dataDir: ipamDir } },
        { type: 'portmap', capabilities: { portMappings: true } },
      ];
  writeFileSync(join(netd, `10-${c.network}.conflist`), JSON.stringify({ cniVersion: c.cniVersion, name: c.network, plugins }, null, 2));
  const conf = join(dir, 'containers.conf');
  containersConf(conf, netd, bin);
  return { ns, dir, conf, ipamDir, flannelDir, network: c.network };
}

const inetOf = (ipAddrOutput: string): { address: string; prefix: number } | undefined => {
  const m = /\binet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(ipAddrOutput);
  return m ? { address: m[1] as string, prefix: Number(m[2]) } : undefined;
};

function assertPodAddress(address: string): void {
  const m = IN_SUBNET.exec(address);
  assert.ok(m, `pod address ${address} is not in 10.77.3.0/24`);
  const host = Number(m[1]);
  assert.ok(host >= 2 && host <= 254, `pod address ${address} is the network, gateway or broadcast address`);
}

interface Inspected { Id: string; NetworkSettings: { SandboxKey: string; Networks: Record<string, { IPAddress: string; IPPrefixLen: number; Gateway: string; MacAddress: string }> } }

async function inspect(s: Scenario, name: string): Promise<Inspected> {
  const [c] = JSON.parse(await mustPodman(s, ['container', 'inspect', name])) as Inspected[];
  assert.ok(c, `podman inspect ${name} returned nothing`);
  return c;
}

/** ping from a container; a few attempts so a slow first ARP does not fail the test. */
async function ping(s: Scenario, from: string, to: string): Promise<RunResult> {
  let r: RunResult = { code: 1, stdout: '', stderr: '' };
  for (let attempt = 0; attempt < 3 && r.code !== 0; attempt++) {
    r = await podman(s, ['exec', from, 'ping', '-c', '1', '-W', '10', to]);
  }
  return r;
}

const bridgePorts = (all: LinkInfo[]): LinkInfo[] => veths(all).filter((l) => l.master === 'cni0');

function cacheFiles(network: string, id: string): string[] {
  if (!existsSync(CNI_CACHE_DIR)) return [];
  return readdirSync(CNI_CACHE_DIR).filter((f) => f.startsWith(`${network}-${id}`));
}

function removeCacheFiles(ids: string[]): void {
  if (!existsSync(CNI_CACHE_DIR)) return;
  for (const f of readdirSync(CNI_CACHE_DIR)) if (ids.some((id) => f.includes(`-${id}-`))) rmSync(join(CNI_CACHE_DIR, f), { force: true });
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

describe('podman runs containers on a weft network', { skip }, () => {
  before(async () => {
    rootBefore = await rootNetSnapshot();
    fileCleanup.push('tidy /var/lib/cni', tidyCniCacheDirs());
    base = scratchDir(fileCleanup, 'weft-rt-podman');
    writeFileSync(join(base, 'storage.conf'),
      `[storage]\ndriver = "vfs"\ngraphroot = "${join(base, 'root')}"\nrunroot = "${join(base, 'runroot')}"\n`);
    // Last resort for containers a failed scenario left: removed by podman (which stops their
    // conmon and runs DEL) inside a scratch namespace, before the storage goes.
    const ns = await scratchNetns(fileCleanup);
    const conf = join(base, 'cleanup-containers.conf');
    containersConf(conf, join(base, 'no-networks'), join(base, 'no-plugins'));
    fileCleanup.push('podman rm -a', async () => {
      const ids = (await mustPodman({ ns, conf }, ['ps', '-a', '-q', '--no-trunc'])).split('\n').filter((l) => l !== '');
      if (ids.length === 0) return;
      await mustPodman({ ns, conf }, ['rm', '-a', '-f', '-t', '0']);
      // Their networks' configs are gone by now, so podman could not DEL: drop libcni's cache entries.
      removeCacheFiles(ids);
    });
    const tar = await busyboxRootfsTar(scratchDir(fileCleanup, 'weft-rt-image'));
    // The first command on a fresh root sets up the storage; however long it takes is fine.
    await mustPodman({ ns, conf }, ['import', '--change', 'CMD=/bin/sh', tar, IMAGE]);
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
          assert.equal(await abstractSocketBound(s.ns, 'weft-cni'), mode === 'cni-server',
            mode === 'cni-server' ? 'the CNI server does not listen on @weft-cni in the node namespace' : 'something listens on @weft-cni, so the fallback would not be exercised');

          // 1. A one-shot container: address, routes and MTU come from subnet.env via weft.
          const cidFile = join(s.dir, 'oneshot.cid');
          const oneshot = await mustPodman(s, ['run', '--rm', '--pull', 'never', '--cidfile', cidFile, '--network', s.network, IMAGE,
            'sh', '-c', 'ip -o addr show eth0; echo ---; ip route; echo ---; ip -o link show eth0']);
          const [addrOut = '', routeOut = '', linkOut = ''] = oneshot.split('---\n');
          const inet = inetOf(addrOut);
          assert.ok(inet, `no IPv4 address on the container's eth0:\n${oneshot}`);
          assertPodAddress(inet.address);
          assert.equal(inet.prefix, 24, `prefix of ${inet.address}`);
          assert.match(routeOut, /^default via 10\.77\.3\.1 dev eth0/m, 'no default route via the bridge gateway');
          assert.match(linkOut, /\bmtu 1450\b/, 'eth0 does not have FLANNEL_MTU');
          const oneshotId = readFileSync(cidFile, 'utf8').trim();
          // --rm removed it, and DEL released everything.
          assert.deepEqual(ipamAddressFiles(s.ipamDir, s.network), [], 'address of the --rm container not released');
          assert.deepEqual(veths(await links(s.ns)).map((l) => l.ifname), [], 'veth of the --rm container left behind');

          // 2. Two running containers.
          const names = [`weft-rt-${rand()}-a`, `weft-rt-${rand()}-b`];
          cleanup.push('podman rm containers', () => podman(s, ['rm', '-f', '-t', '0', ...names]));
          for (const name of names) {
            await mustPodman(s, ['run', '-d', '--pull', 'never', '--name', name, '--cap-add', 'NET_RAW', '--network', s.network, IMAGE, 'sleep', '300']);
          }
          const pods = [];
          for (const name of names) {
            const info = await inspect(s, name);
            const net = info.NetworkSettings.Networks[s.network];
            assert.ok(net, `podman inspect shows no ${s.network} network: ${JSON.stringify(info.NetworkSettings)}`);
            const inside = inetOf(await mustPodman(s, ['exec', name, 'ip', '-o', 'addr', 'show', 'eth0']));
            assert.ok(inside, `no IPv4 address in ${name}`);
            assertPodAddress(inside.address);
            // What podman recorded from weft's ADD result matches the container's real interface.
            assert.equal(net.IPAddress, inside.address, 'podman inspect IPAddress');
            assert.equal(net.IPPrefixLen, 24, 'podman inspect IPPrefixLen');
            assert.equal(net.Gateway, GATEWAY, 'podman inspect Gateway');
            const mac = (await mustPodman(s, ['exec', name, 'cat', '/sys/class/net/eth0/address'])).trim();
            assert.equal(net.MacAddress, mac, 'podman inspect MacAddress');
            pods.push({ name, id: info.Id, ip: inside.address, sandbox: info.NetworkSettings.SandboxKey });
          }
          const [a, b] = pods as [typeof pods[0], typeof pods[0]];
          assert.notEqual(a.ip, b.ip, 'two containers got the same address');

          // Host side, in the node namespace: the bridge with the gateway, one hairpin port per pod.
          const cni0 = await addresses(s.ns, 'cni0');
          assert.ok(cni0, 'no cni0 bridge in the node namespace');
          assert.ok(cni0.addr_info.some((x) => x.family === 'inet' && x.local === GATEWAY && x.prefixlen === 24), `cni0 lacks ${GATEWAY}/24: ${JSON.stringify(cni0.addr_info)}`);
          assert.equal(cni0.mtu, 1450, 'cni0 MTU');
          const ports = bridgePorts(await links(s.ns));
          assert.equal(ports.length, 2, `expected 2 veths on cni0, got ${ports.map((p) => p.ifname).join(', ')}`);
          for (const p of ports) {
            const slave = (p.linkinfo as { info_slave_data?: { hairpin?: boolean } } | undefined)?.info_slave_data;
            assert.equal(slave?.hairpin, true, `hairpin mode on ${p.ifname}`);
          }

          // IPAM: one host-local style file per pod, naming its owner.
          assert.deepEqual(ipamAddressFiles(s.ipamDir, s.network), [a.ip, b.ip].sort());
          for (const p of pods) {
            assert.equal(readFileSync(join(s.ipamDir, s.network, p.ip), 'utf8'), `${p.id}\r\neth0`, `owner of ${p.ip}`);
            if (c.form === 'flannel') {
              const record = JSON.parse(readFileSync(join(s.flannelDir, p.id), 'utf8')) as { type?: string; ipam?: { dataDir?: string } };
              assert.equal(record.type, 'bridge', 'flannel delegate record type');
              assert.equal(record.ipam?.dataDir, s.ipamDir, 'flannel delegate record ipam.dataDir');
            }
          }

          // The pods reach each other across the bridge.
          for (const [from, to] of [[a, b], [b, a]] as const) {
            const r = await ping(s, from.name, to.ip);
            assert.equal(r.code, 0, `ping ${from.name} -> ${to.ip} failed:\n${r.stdout}${r.stderr}`);
          }

          // 3. Removal: DEL frees the addresses and the veths, and libcni's cache entry goes.
          await mustPodman(s, ['rm', '-f', '-t', '0', ...names]);
          assert.deepEqual(ipamAddressFiles(s.ipamDir, s.network), [], 'addresses left in the IPAM store after podman rm');
          assert.deepEqual(veths(await links(s.ns)).map((l) => l.ifname), [], 'veths left after podman rm');
          for (const p of pods) {
            assert.equal(existsSync(p.sandbox), false, `podman's netns ${p.sandbox} still exists`);
            assert.deepEqual(cacheFiles(s.network, p.id), [], 'libcni result cache not cleared: DEL did not succeed');
            if (c.form === 'flannel') assert.equal(existsSync(join(s.flannelDir, p.id)), false, 'flannel delegate record left');
          }
          assert.deepEqual(cacheFiles(s.network, oneshotId), []);

          // Which path served the requests.
          if (server) {
            const attached = serverEvents(server, 'pod attached');
            const detached = serverEvents(server, 'pod detached');
            for (const id of [oneshotId, a.id, b.id]) {
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

  test('the root network namespace is untouched', async () => {
    assert.ok(rootBefore);
    assert.deepEqual(await rootNetSnapshot(), rootBefore);
  });
});

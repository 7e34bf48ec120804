// The container image (Dockerfile, built by scripts/build-image.sh) runs a lab node's agent.
//
// The image is built from the same Dockerfile as anywhere else (here with a debootstrap'd base
// under the official name, docs/image.md). A two-node `lab up --store etcd` comes up; n1's own
// agent is stopped, and n1 is left as a node whose agent pod was replaced would not be trusted
// to be: its subnet.env, its flannel.1 and its firewall rules are removed. Then the agent runs
// from the image with podman in n1's network namespace (the host network of that node, as a
// DaemonSet pod with hostNetwork: true runs), with only NET_ADMIN, NET_RAW and SYS_ADMIN and
// the node's files bind-mounted. It must put all of that back, serve a new pod's CNI ADD, and
// the lab's full check must pass, cross-node and to the outside (masqueraded by its rules).
//
// Needs root and podman (skipped, saying so, only when podman is missing: CI installs it).
// Cleanup, also on failure: the container is removed by name, then `lab down`.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HOST_PROC_SYS_NET } from '../../src/cni/pod-link.ts';
import { agentArgv, agentEnv, agentReady, agentStatus } from '../../src/lab/agent.ts';
import { ETCD_PREFIX } from '../../src/lab/etcd.ts';
import { dataPathArgs } from '../../src/lab/data-path.ts';
import { execInNetnsOk, labAddPods, labCheck, labNodeStop, netnsPath, netnsPids } from '../../src/lab/index.ts';
import type { NodeFiles } from '../../src/lab/paths.ts';
import { startTestLab, waitFor } from './support/lab-harness.ts';
import { describeRun, rand, REPO, run, type RunResult } from './support/sandbox.ts';

const IMAGE = 'localhost/weft:e2e';
const NODE = 'n1';
const podmanMissing = spawnSync('podman', ['--version']).error !== undefined;

async function podman(args: readonly string[]): Promise<RunResult> {
  return run(['podman', ...args]);
}

async function mustPodman(args: readonly string[]): Promise<string> {
  const r = await podman(args);
  if (r.code !== 0) throw new Error(describeRun(['podman', ...args], r));
  return r.stdout;
}

// podman's default limits exceed this sandbox's hard ones, and runc then cannot start the
// container (as in runtime-podman.test.ts; docs/cni-spec-notes.md §3.1). A lab node's agent
// holds a few dozen descriptors; root is not held to nproc.
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

/**
 * `podman run` of the agent as a hostNetwork DaemonSet pod runs: the node's network namespace,
 * no capabilities but the three the agent uses, a read-only root filesystem, and the node's own
 * files at the paths its flags name. Pod namespaces are created after it starts, hence rslave
 * on /run/netns; /proc/sys is read-only in the container, hence the node's /proc/sys/net.
 */
function agentContainerArgv(o: { name: string; image: string; ns: string; files: NodeFiles; args: readonly string[]; env: NodeJS.ProcessEnv; bpfDir?: string | null }): string[] {
  const nodeDirs = [...new Set([o.files.subnetEnv, o.files.agentSocket, o.files.agentLock, o.files.cniDataDir].map((f) => dirname(f)))];
  // With the fast path, the node's bpffs (the lab's, as a DaemonSet mounts the host's /sys/fs/bpf).
  if (o.bpfDir) nodeDirs.push(o.bpfDir);
  return [
    'run', '--detach', '--name', o.name,
    '--network', `ns:${netnsPath(o.ns)}`,
    '--cap-drop', 'ALL', '--cap-add', 'NET_ADMIN,NET_RAW,SYS_ADMIN',
    // As readOnlyRootFilesystem: podman would otherwise mount tmpfs on /run and /tmp.
    '--read-only', '--read-only-tmpfs=false',
    ...ULIMITS,
    ...nodeDirs.flatMap((d) => ['--volume', `${d}:${d}`]),
    '--volume', '/run/netns:/run/netns:rslave',
    '--volume', `/proc/sys/net:${HOST_PROC_SYS_NET}`,
    '--volume', '/run/xtables.lock:/run/xtables.lock',
    ...Object.entries(o.env).flatMap(([k, v]) => (v === undefined ? [] : ['--env', `${k}=${v}`])),
    o.image, ...o.args,
  ];
}

async function buildImage(t: TestContext): Promise<void> {
  const started = Date.now();
  const r = await run([join(REPO, 'scripts', 'build-image.sh'), '--tag', IMAGE]);
  if (r.code !== 0) throw new Error(`scripts/build-image.sh failed:\n${(r.stdout + r.stderr).split('\n').slice(-40).join('\n')}`);
  const size = /^image .*$/m.exec(r.stdout.trim().split('\n').at(-1) ?? '');
  t.diagnostic(`${size?.[0] ?? 'image built'} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

/** What the image holds, and what it must not (no toolchain, no sources, no node_modules). */
async function checkContents(): Promise<void> {
  const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
  const base = ['run', '--rm', '--network', 'none', ...ULIMITS];
  assert.equal((await mustPodman([...base, IMAGE, '--version'])).trim(), version);

  const present = ['/usr/local/bin/weft', '/usr/local/bin/node', '/opt/weft/build/weft.mjs', '/opt/weft/build/weft_native.node', '/opt/weft/build/weft-cni',
    '/opt/weft/build/weft_bpf.node', '/opt/weft/build/fastpath.bpf.o', '/usr/lib/x86_64-linux-gnu/libbpf.so.1', '/usr/lib/x86_64-linux-gnu/libelf.so.1',
    '/usr/lib/cni/portmap', '/usr/lib/cni/loopback', '/usr/sbin/iptables', '/usr/sbin/iptables-legacy', '/usr/sbin/iptables-nft-restore', '/usr/sbin/nft', '/usr/bin/ping'];
  const absent = ['/usr/bin/gcc', '/usr/bin/cc', '/usr/bin/npm', '/usr/bin/apt-get', '/usr/bin/dpkg', '/opt/weft/src', '/opt/weft/node_modules', '/usr/lib/node_modules'];
  const script = [...present.map((p) => `[ -e ${p} ] || echo missing ${p}`), ...absent.map((p) => `[ ! -e ${p} ] || echo unwanted ${p}`)].join('; ');
  assert.equal((await mustPodman([...base, '--entrypoint', '/bin/sh', IMAGE, '-c', script])).trim(), '');

  // The front end installed on hosts has no checkout to fall back to: with no agent, a CNI error.
  const cni = await podman([...base, '--interactive', '--env', 'CNI_COMMAND=ADD', '--entrypoint', '/opt/weft/build/weft-cni', IMAGE]);
  assert.equal(cni.code, 1, describeRun(['weft-cni'], cni));
  const error = JSON.parse(cni.stdout) as { code: number; msg: string };
  assert.equal(error.code, 11, cni.stdout);
  assert.match(error.msg, /weft CNI server is not running.*weft agent pod on this node/, cni.stdout);
}

test('the image runs a lab node\'s agent: that node is programmed again, serves CNI and passes lab check', { skip: podmanMissing && 'podman is not installed (apt-get install podman)' }, async (t) => {
  await buildImage(t);
  await checkContents();

  // Registered before the lab's down, so it runs first: the container goes, then the lab.
  const container = `weft-e2e-image-${rand()}`;
  t.after(async () => {
    const r = await podman(['rm', '--force', '--ignore', '--time', '5', container]);
    if (r.code !== 0) t.diagnostic(`podman rm ${container} failed: ${r.stderr.trim()}`);
  });
  const lab = await startTestLab(t, { nodes: 2, prefix: 'img' });
  const node = lab.node(NODE);
  const files = lab.files(NODE);
  const etcd = lab.state.etcd;
  assert.ok(etcd, 'the lab has no etcd store state');

  await labNodeStop(lab.name, [NODE]);
  // Left as the container must not find it: nothing of the old agent's work is kept.
  await execInNetnsOk(node.ns, ['ip', 'link', 'del', 'flannel.1']);
  await execInNetnsOk(node.ns, ['iptables', '-t', 'nat', '-F']);
  await execInNetnsOk(node.ns, ['iptables', '-t', 'filter', '-F']);
  rmSync(files.subnetEnv, { force: true });
  if (!existsSync('/run/xtables.lock')) closeSync(openSync('/run/xtables.lock', 'a')); // as kubelet's FileOrCreate

  // The lab's data path (the second e2e pass runs it with the fast path): the image's agent gets the same flags.
  const dataPath = lab.state.dataPath;
  const args = [...agentArgv({ weft: [], etcd: lab.etcd, api: etcd.api, prefix: etcd.prefix || ETCD_PREFIX, leaseTtl: etcd.leaseTtl, files }), ...dataPathArgs(dataPath)];
  await mustPodman(agentContainerArgv({ name: container, image: IMAGE, ns: node.ns, files, args, env: agentEnv(NODE, {}), bpfDir: dataPath?.bpfDir ?? null }));
  const logs = async (): Promise<string> => {
    const r = await podman(['logs', '--tail', '40', container]);
    return `${r.stdout}${r.stderr}`;
  };

  try {
    await waitFor(`the agent from the image to make ${NODE} ready`, () => agentReady(files), 90_000);
    const pid = Number((await mustPodman(['inspect', '--format', '{{.State.Pid}}', container])).trim());
    assert.ok((await netnsPids(node.ns)).includes(pid), `the container's process ${pid} is not in ${node.ns}`);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(cmdline.includes('/opt/weft/build/weft.mjs') && cmdline.includes('--max-semi-space-size=1'), `not the bundle: ${cmdline.join(' ')}`);
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    const status = await agentStatus(files);
    assert.equal(status?.node, NODE);
    assert.equal(status?.lease?.subnet, lab.state.leases?.[NODE]?.subnet, 'the agent from the image leased another subnet than the node had');
    t.diagnostic(`agent from the image: pid ${pid}, ${status?.phase}, ${status?.lease?.subnet}, RSS ${rss ?? '?'} kB`);
    // The image loads the fast path with the DaemonSet's capabilities (its libbpf, its object).
    if (dataPath?.fastPath === 'ebpf') assert.equal(status?.fastPath?.active, true, `the image's fast path did not load: ${status?.fastPath?.reason ?? 'no fastPath in the status'}`);

    // Its CNI server (@weft-cni in the node's namespace) serves a new pod.
    const [added] = await labAddPods(lab.name, NODE, 1);
    assert.ok(added && !('error' in added), `CNI ADD through the image's agent failed: ${JSON.stringify(added)}`);

    const report = await labCheck(lab.name);
    const failed = report.probes.filter((p) => !p.ok).map((p) => `${p.kind} ${p.from}→${p.to}`);
    assert.deepEqual(failed, [], `lab check failed probes: ${failed.join(', ')}`);
    const crossFromNew = report.probes.filter((p) => p.from === added.name && p.to.startsWith('n2-'));
    assert.ok(crossFromNew.length > 0, 'no cross-node probe from the pod the image\'s agent attached');
    assert.ok(report.probes.some((p) => p.kind === 'pod-outside' && p.from.startsWith(`${NODE}-`)), `no pod-outside probe from ${NODE}`);
    t.diagnostic(`lab check: ${report.passed} passed, ${report.failed} failed`);
    assert.equal((await mustPodman(['inspect', '--format', '{{.State.Running}}', container])).trim(), 'true', 'the container stopped');
  } catch (e) {
    t.diagnostic(`container log (last 40 lines):\n${await logs()}`);
    throw e;
  }
});

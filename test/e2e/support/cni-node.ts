// A scratch "node" for CNI end-to-end tests: its own network namespace, a subnet.env, an
// IPAM dir, pod namespaces, and the weft-cni front end exec'd inside the node's namespace
// exactly as a container runtime would (env CNI_* + config on stdin). Optionally a
// `weft cni-server` runs in the namespace, making the front end take the fast path.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = new URL('../../../', import.meta.url).pathname;
export const FRONT_END = join(ROOT, 'build', 'weft-cni');

export const isRoot = (): boolean => process.getuid?.() === 0;

export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

export interface CniCall {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON, when it is JSON. */
  json: Record<string, unknown> | undefined;
}

export interface NodeOptions {
  subnetEnv?: string;
  server?: boolean;
}

export class TestNode {
  readonly name: string;
  readonly dir: string;
  readonly subnetFile: string;
  readonly ipamDir: string;
  readonly pods: string[] = [];
  #server: ChildProcess | undefined;

  private constructor(name: string, dir: string) {
    this.name = name;
    this.dir = dir;
    this.subnetFile = join(dir, 'subnet.env');
    this.ipamDir = join(dir, 'ipam');
  }

  static async create(options: NodeOptions = {}): Promise<TestNode> {
    const node = new TestNode(`weft-cnit-${randomBytes(3).toString('hex')}`, mkdtempSync(join(tmpdir(), 'weft-cnit-')));
    sh('ip', ['netns', 'add', node.name]);
    sh('ip', ['-n', node.name, 'link', 'set', 'lo', 'up']);
    writeFileSync(node.subnetFile, options.subnetEnv ?? 'FLANNEL_NETWORK=10.77.0.0/16\nFLANNEL_SUBNET=10.77.5.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n');
    if (options.server) await node.startServer();
    return node;
  }

  get netnsPath(): string {
    return `/run/netns/${this.name}`;
  }

  async startServer(): Promise<void> {
    const ready = join(this.dir, 'server.ready');
    this.#server = spawn('nsenter', [`--net=${this.netnsPath}`, join(ROOT, 'bin', 'weft'), 'cni-server', '--ready-file', ready], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, WEFT_LOG_LEVEL: 'warn' },
    });
    for (let i = 0; i < 600 && !existsSync(ready); i++) {
      if (this.#server.exitCode !== null) throw new Error('weft cni-server exited during start-up');
      await sleep(50);
    }
    if (!existsSync(ready)) throw new Error('weft cni-server did not become ready');
  }

  async stopServer(): Promise<void> {
    const server = this.#server;
    if (!server || server.exitCode !== null) return;
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
    this.#server = undefined;
  }

  addPodNetns(): string {
    const pod = `${this.name}-p${this.pods.length}`;
    sh('ip', ['netns', 'add', pod]);
    this.pods.push(pod);
    return `/run/netns/${pod}`;
  }

  config(extra: Record<string, unknown> = {}, cniVersion = '1.0.0'): Record<string, unknown> {
    return { cniVersion, name: 'weftnet', type: 'weft', subnetFile: this.subnetFile, dataDir: this.ipamDir, ...extra };
  }

  /** Execs the front end in the node's namespace, like a runtime; env values may be ''. */
  cni(env: Record<string, string>, stdin: string | Record<string, unknown>): Promise<CniCall> {
    const input = typeof stdin === 'string' ? stdin : JSON.stringify(stdin);
    const child = spawn('nsenter', [`--net=${this.netnsPath}`, FRONT_END], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CNI_PATH: '/opt/cni/bin', CNI_ARGS: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // The front end may answer without reading all of stdin (a request over its bound); writing
    // the rest then fails with EPIPE, which Go's os/exec (what runtimes use) ignores too. The
    // answer on stdout is what the test checks.
    child.stdin.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') stderr += `stdin: ${e.message}\n`;
    });
    child.stdin.end(input);
    return new Promise((resolve) => {
      child.on('close', (code) => {
        let json: Record<string, unknown> | undefined;
        try {
          json = stdout.trim() === '' ? undefined : (JSON.parse(stdout) as Record<string, unknown>);
        } catch {
          json = undefined;
        }
        resolve({ code: code ?? -1, stdout, stderr, json });
      });
    });
  }

  add(containerId: string, netns: string, config = this.config(), ifname = 'eth0'): Promise<CniCall> {
    return this.cni({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: ifname }, config);
  }

  del(containerId: string, netns: string, config = this.config(), ifname = 'eth0'): Promise<CniCall> {
    return this.cni({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: containerId, CNI_NETNS: netns, CNI_IFNAME: ifname }, config);
  }

  /** Address files in the IPAM store (not lock or last_reserved_ip.*). */
  ipamFiles(network = 'weftnet'): string[] {
    const dir = join(this.ipamDir, network);
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((f) => f !== 'lock' && !f.startsWith('last_reserved_ip'));
  }

  /** veth links on the node. */
  veths(): string[] {
    const links = JSON.parse(sh('ip', ['-j', '-n', this.name, 'link', 'show', 'type', 'veth'])) as { ifname: string }[];
    return links.map((l) => l.ifname);
  }

  inPod(pod: string, cmd: string[]): { code: number; stdout: string } {
    const r = spawnSync('ip', ['netns', 'exec', pod.replace('/run/netns/', ''), ...cmd], { encoding: 'utf8' });
    return { code: r.status ?? -1, stdout: r.stdout };
  }

  inNode(cmd: string[]): { code: number; stdout: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.name, ...cmd], { encoding: 'utf8' });
    return { code: r.status ?? -1, stdout: r.stdout };
  }

  async destroy(): Promise<void> {
    await this.stopServer();
    for (const pod of this.pods) spawnSync('ip', ['netns', 'del', pod]);
    spawnSync('ip', ['netns', 'del', this.name]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

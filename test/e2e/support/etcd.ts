// A real etcd server (Debian's etcd-server 3.4, /usr/bin/etcd) for end-to-end tests.
//
// Where it listens: never on the host's own network. A test file that needs etcd starts with
//
//     const skip = etcdPrerequisiteProblem();
//     if (!skip) await enterScratchNetns();
//
// enterScratchNetns() creates a network namespace weft-etcd-<random> (lo up) and re-runs the
// same test file inside it (`nsenter --net=… node <same flags> <same file>`, same stdio and
// environment, so node's test runner sees the re-run's results as the file's own), then kills
// whatever is still running in the namespace, deletes it and the scratch directory, and exits
// with the re-run's status. In the re-run the test process and every etcd it starts share that
// namespace: etcd listens on 127.0.0.1 with ports picked free there, and the clients under test
// reach it directly. startEtcd() refuses to run in the host's namespace unless told which
// namespace to use (`netns`, e.g. a lab namespace another test created; etcd is then started
// with nsenter and listens on `host`).
//
// Every server has its own data dir under the scratch directory (on /dev/shm when there is one); stop() stops it by PID
// (SIGTERM, SIGKILL after 10 s), start() brings it back on the same data dir and ports, close()
// stops it and removes its files. A running etcd does not keep the test process alive; an exit
// hook kills servers a test left running, and enterScratchNetns kills anything left in the
// namespace (by PID, from `ip netns pids`) before deleting it, also when the re-run crashed.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { mustRun, prerequisiteProblem, rand, run } from './sandbox.ts';

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCDCTL_BIN = '/usr/bin/etcdctl';

const NETNS_ENV = 'WEFT_TEST_NETNS';
const SCRATCH_ENV = 'WEFT_TEST_SCRATCH';

/** Why etcd tests cannot run here (not root, a tool missing), or false. */
export function etcdPrerequisiteProblem(): string | false {
  return prerequisiteProblem(['ip', 'nsenter', 'openssl'], [ETCD_BIN, ETCDCTL_BIN]);
}

/**
 * Runs the calling test file inside a fresh network namespace (see the top of this file).
 * Returns the namespace's name in the re-run; the first process never returns (it exits with
 * the re-run's status). Call it before any test() so the first process registers none.
 */
export async function enterScratchNetns(prefix = 'weft-etcd'): Promise<string> {
  const inside = process.env[NETNS_ENV];
  if (inside) {
    if (!inNamedNetns(inside)) throw new Error(`${NETNS_ENV}=${inside} is set but this process does not run in that network namespace`);
    return inside;
  }
  const ns = `${prefix}-${rand()}`;
  const scratch = mkdtempSync(join(scratchBase(), `${prefix}-`));
  let status: number;
  await mustRun(['ip', 'netns', 'add', ns]);
  try {
    await mustRun(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, process.execPath, ...process.execArgv, ...process.argv.slice(1)],
      { stdio: 'inherit', env: { ...process.env, [NETNS_ENV]: ns, [SCRATCH_ENV]: scratch } });
    const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, forward);
    status = await new Promise<number>((resolve) => {
      child.on('error', () => resolve(1));
      child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    });
  } finally {
    // Only our own descendants can be in a namespace we just made: end what is left, by PID.
    const left = (await run(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (left.length > 0) await sleep(200);
    await run(['ip', 'netns', 'delete', ns]);
    rmSync(scratch, { recursive: true, force: true });
  }
  process.exit(status);
}

/** tmpfs when there is one: etcd fsyncs every write, and a disk makes the tests slow and noisy. */
function scratchBase(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
}

/** Whether this process's network namespace is /run/netns/<name>. */
function inNamedNetns(name: string): boolean {
  try {
    const mine = statSync('/proc/self/ns/net');
    const named = statSync(`/run/netns/${name}`);
    return mine.ino === named.ino && mine.dev === named.dev;
  } catch {
    return false;
  }
}

/** A directory for this test run's files: inside enterScratchNetns' scratch dir when there is one. */
export function scratchDirFor(name: string): string {
  const base = process.env[SCRATCH_ENV] ?? scratchBase();
  return mkdtempSync(join(base, `${name}-`));
}

/** A CA, a server certificate for the given IPs, and a client certificate, made with openssl. */
export interface TestPki {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

export async function makeTestPki(dir: string, serverIps: readonly string[] = ['127.0.0.1']): Promise<TestPki> {
  mkdirSync(dir, { recursive: true });
  const f = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await mustRun(['openssl', 'req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=weft-test-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const issue = async (name: string, cn: string, ext: string): Promise<void> => {
    writeFileSync(f(`${name}.ext`), ext);
    await mustRun(['openssl', 'req', ...ec, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`]);
    await mustRun(['openssl', 'x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`)]);
  };
  const common = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n';
  await issue('server', serverIps[0] ?? '127.0.0.1',
    `${common}extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=${serverIps.map((ip) => `IP:${ip}`).join(',')}\n`);
  await issue('client', 'weft-test-client', `${common}extendedKeyUsage=clientAuth\n`);
  return {
    dir, caFile: f('ca.crt'), serverCertFile: f('server.crt'), serverKeyFile: f('server.key'),
    clientCertFile: f('client.crt'), clientKeyFile: f('client.key'),
  };
}

export interface EtcdOptions {
  /** Also serve the v2 keys API (--enable-v2=true). Default true. */
  v2?: boolean;
  /** Serve clients over TLS with pki's server certificate. */
  tls?: TestPki;
  /** With tls: require a client certificate signed by pki's CA (--client-cert-auth). */
  clientCertAuth?: boolean;
  /** Run etcd inside this namespace (nsenter) rather than the calling process's own. */
  netns?: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Extra etcd flags. */
  args?: readonly string[];
}

export interface EtcdServer {
  /** The client URL, e.g. http://127.0.0.1:41234 (https:// with tls). */
  readonly endpoint: string;
  readonly dataDir: string;
  /** The running etcd's PID; undefined while stopped. */
  readonly pid: number | undefined;
  /** Everything etcd printed so far (last 256 KiB). */
  log(): string;
  /** Stops etcd by PID: SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
  /** Starts it again on the same data dir and ports; resolves when it serves requests. */
  start(): Promise<void>;
  /** etcdctl against this server with the right endpoint and TLS flags; resolves with stdout. */
  etcdctl(api: 2 | 3, args: readonly string[]): Promise<string>;
  /** Stops etcd and removes its files. */
  close(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts a single-member etcd with a fresh data dir; resolves once it is healthy. */
export async function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer> {
  const own = process.env[NETNS_ENV];
  if (options.netns === undefined && (own === undefined || !inNamedNetns(own))) {
    throw new Error('startEtcd: this process does not run in a scratch network namespace; call enterScratchNetns() first or pass `netns`');
  }
  const host = options.host ?? '127.0.0.1';
  const dir = scratchDirFor('etcd');
  const dataDir = join(dir, 'data');
  const scheme = options.tls ? 'https' : 'http';
  let [clientPort, peerPort] = await ports(options.netns);
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = '';
  const endpoint = (): string => `${scheme}://${host}:${clientPort}`;

  const argv = (): string[] => {
    const peer = `http://${host}:${peerPort}`;
    const args = [
      '--name', 'weft-test', '--data-dir', dataDir,
      '--listen-client-urls', endpoint(), '--advertise-client-urls', endpoint(),
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `weft-test=${peer}`,
      '--initial-cluster-state', 'new', '--initial-cluster-token', `weft-${rand()}`,
      '--heartbeat-interval', '50', '--election-timeout', '500',
      '--logger', 'zap', '--log-level', 'warn',
      `--enable-v2=${options.v2 === false ? 'false' : 'true'}`,
    ];
    if (options.tls) {
      args.push('--cert-file', options.tls.serverCertFile, '--key-file', options.tls.serverKeyFile);
      if (options.clientCertAuth) args.push('--client-cert-auth', '--trusted-ca-file', options.tls.caFile);
    }
    args.push(...(options.args ?? []));
    return options.netns === undefined ? [ETCD_BIN, ...args] : ['nsenter', `--net=/run/netns/${options.netns}`, ETCD_BIN, ...args];
  };

  const etcdctl = async (api: 2 | 3, args: readonly string[]): Promise<string> => {
    const flags = [`--endpoints=${endpoint()}`];
    if (options.tls) {
      if (api === 3) flags.push(`--cacert=${options.tls.caFile}`, `--cert=${options.tls.clientCertFile}`, `--key=${options.tls.clientKeyFile}`);
      else flags.push(`--ca-file=${options.tls.caFile}`, `--cert-file=${options.tls.clientCertFile}`, `--key-file=${options.tls.clientKeyFile}`);
    }
    const cmd = [ETCDCTL_BIN, ...flags, ...args];
    const env = { ...process.env, ETCDCTL_API: String(api) };
    return mustRun(options.netns === undefined ? cmd : ['nsenter', `--net=/run/netns/${options.netns}`, ...cmd], { env });
  };

  const start = async (): Promise<void> => {
    if (child) return;
    const [cmd, ...args] = argv();
    const c = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    running.add(c);
    let dead: string | undefined;
    const collect = (b: Buffer): void => {
      output = (output + b.toString()).slice(-256 * 1024);
    };
    c.stdout?.on('data', collect);
    c.stderr?.on('data', collect);
    // A test that forgets close() must not hang: etcd does not keep this process alive, and the
    // exit hook below (or enterScratchNetns' clean-up) ends it.
    c.unref();
    (c.stdout as Socket | null)?.unref();
    (c.stderr as Socket | null)?.unref();
    exited = new Promise((resolve) => c.on('exit', (code, signal) => {
      dead = `etcd exited (${code ?? signal})`;
      running.delete(c);
      if (child === c) child = undefined;
      resolve();
    }));
    c.on('error', (e) => {
      dead = `etcd could not start: ${e.message}`;
    });
    const limit = Date.now() + 30_000;
    for (;;) {
      if (dead !== undefined) throw new Error(`${dead}:\n${output}`);
      const health = await run([...(options.netns === undefined ? [] : ['nsenter', `--net=/run/netns/${options.netns}`]),
        ETCDCTL_BIN, `--endpoints=${endpoint()}`, '--command-timeout=1s', 'endpoint', 'health',
        ...(options.tls ? [`--cacert=${options.tls.caFile}`, `--cert=${options.tls.clientCertFile}`, `--key=${options.tls.clientKeyFile}`] : [])],
      { env: { ...process.env, ETCDCTL_API: '3' } });
      if (health.code === 0) return;
      if (Date.now() > limit) throw new Error(`etcd at ${endpoint()} not healthy after 30 s:\n${health.stderr}\n${output}`);
      await sleep(100);
    }
  };

  const stop = async (): Promise<void> => {
    const c = child;
    if (!c) return;
    c.kill('SIGTERM');
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };

  // A port taken between picking and binding (only possible outside our own namespace): retry.
  for (let attempt = 1; ; attempt++) {
    try {
      await start();
      break;
    } catch (e) {
      if (attempt >= 3 || !/address already in use/.test((e as Error).message)) {
        rmSync(dir, { recursive: true, force: true });
        throw e;
      }
      rmSync(dataDir, { recursive: true, force: true });
      [clientPort, peerPort] = await ports(options.netns);
    }
  }

  return {
    get endpoint() { return endpoint(); },
    dataDir,
    get pid() { return child?.pid; },
    log: () => output,
    stop,
    start,
    etcdctl,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Two free TCP ports: asked of the kernel in our own namespace, random in someone else's. */
async function ports(netns: string | undefined): Promise<[number, number]> {
  if (netns !== undefined) {
    const a = 20_000 + Math.floor(Math.random() * 40_000);
    return [a, a + 1];
  }
  const one = (): Promise<number> => new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
  const a = await one();
  let b = await one();
  while (b === a) b = await one();
  return [a, b];
}

// `weft lab …`: a Kubernetes-like cluster on one machine, built from network namespaces.
// This file only parses flags and prints; the work is in src/lab.
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger, type Logger } from '../log/logger.ts';
import { CNI_KINDS, type CniKind } from '../lab/cni-config.ts';
import { DEFAULT_LAB_NAME } from '../lab/names.ts';
import { LAB_FAST_PATHS, LAB_POD_LINKS, type LabFastPath, type LabPodLink } from '../lab/data-path.ts';
import { DEFAULT_KINDS, PROBE_KINDS, isProbeKind, type ProbeKind } from '../lab/probe-kinds.ts';
import {
  DEFAULT_IPALLOC_BLOCK, DEFAULT_IPALLOC_RANGE, ETCD_APIS, LAB_BACKENDS, MESH_PORT, MESH_VXLAN_PORT, STORE_KINDS, type EtcdApi, type LabBackend, type StoreKind,
} from '../lab/store-kinds.ts';

// The lab's modules load only when a lab command runs, so other commands (notably the CNI
// plugin's calls into `weft`) do not pay for parsing them at startup.
const loadLab = (): Promise<typeof import('../lab/index.ts')> => import('../lab/index.ts');

function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number.');
  return Number(value);
}

function probeKinds(value: string): ProbeKind[] {
  if (value === 'all') return [...PROBE_KINDS];
  return value.split(',').map((k) => {
    if (!isProbeKind(k)) throw new InvalidArgumentError(`expected "all" or a comma-separated list of: ${PROBE_KINDS.join(', ')}.`);
    return k;
  });
}

const nameOption = (): Option => new Option('--name <name>', 'lab name (lower-case letters and digits)').default(DEFAULT_LAB_NAME);

function logger(verbose: boolean | undefined): Logger {
  return createLogger({ name: 'weft-lab', fd: 2, level: verbose === true ? 'debug' : 'warn' });
}

const printJson = (value: unknown): void => void process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('a cluster on one machine: zones, a router, nodes and pods as network namespaces weft-<name>-*');

  lab
    .command('up')
    .description('create a lab: underlay, nodes (each with its own subnet.env and CNI config) and pods attached by CNI ADD')
    .addOption(nameOption())
    .option('--nodes <n>', 'number of nodes (alternating zones a and b)', wholeNumber, 2)
    .option('--pods-per-node <k>', 'pods to attach on each node', wholeNumber, 2)
    .addOption(new Option('--cni <plugin>', 'CNI plugin: weft (build/weft-cni) or bridge (/usr/lib/cni/bridge + host-local)').choices(CNI_KINDS).default('weft'))
    .addOption(new Option('--store <store>', 'none: the lab plans each node\'s subnet.env; etcd: an etcd member (weft-<name>-etcd) and a `weft agent` per node, which lease subnets, route between nodes and masquerade; kube: weft\'s stand-in API server (not Kubernetes) with a Node per lab node and a `weft agent --store kube` per node, which claim subnets through it; mesh: a `weft agent --store mesh` per node and no etcd, the agents sharing the range over their mesh').choices(STORE_KINDS).default('none'))
    .addOption(new Option('--etcd-api <api>', 'store etcd: the API the network config is written with and the agents use (default v3)').choices(ETCD_APIS))
    .addOption(new Option('--backend <type>', 'store etcd or kube: Backend.Type of the network config (default vxlan)').choices(LAB_BACKENDS))
    .option('--lease-ttl <duration>', 'store etcd: the agents\' --subnet-lease-ttl, e.g. 30s (default), 5m')
    .option('--ipalloc-range <cidr>', `store mesh: the range the agents share, the cluster network (default ${DEFAULT_IPALLOC_RANGE})`)
    .option('--ipalloc-block <prefix>', `store mesh: the prefix length of the blocks it is shared in (default ${DEFAULT_IPALLOC_BLOCK})`, wholeNumber)
    .option('--ipalloc-init <mode>', 'store mesh: consensus[=<peer count>], observer or seed=<peer name>,… (default: the agents\' own, consensus over their --peers)')
    .option('--password <secret>', 'store mesh: the mesh password, given to every agent in a 0600 file in the lab directory (--password-file)')
    .option('--start <k>', 'store mesh: start the agents (and pods) of the first k nodes only; `lab node start` starts the others later', wholeNumber)
    .addOption(new Option('--zones <n>', 'zones the nodes alternate over: 2, or 1 for all in zone a (default 2; 1 with --backend host-gw, which needs one L2 segment)').choices(['1', '2']))
    .addOption(new Option('--pod-link <link>', 'how pods meet their nodes: bridge (cni0, as flannel) or routed (a /32 route per pod); default $WEFT_POD_LINK or bridge').choices(LAB_POD_LINKS))
    .addOption(new Option('--fast-path <kind>', 'the agents\' tc-eBPF fast path: none or ebpf (needs --pod-link routed and an agent store); default $WEFT_FAST_PATH or none').choices(LAB_FAST_PATHS))
    .option('--no-daemon', 'store none, weft only: do not start a `weft cni-server` per node (the plugin then works standalone)')
    .option('--json', 'print the resulting status as JSON')
    .option('--verbose', 'structured debug logs on stderr')
    .action(async (o: {
      name: string; nodes: number; podsPerNode: number; cni: CniKind; store: StoreKind; etcdApi?: EtcdApi; backend?: LabBackend; leaseTtl?: string; zones?: string;
      ipallocRange?: string; ipallocBlock?: number; ipallocInit?: string; password?: string; start?: number;
      podLink?: LabPodLink; fastPath?: LabFastPath; daemon: boolean; json?: boolean; verbose?: boolean;
    }) => {
      const { labUp, labStatus, renderStatus } = await loadLab();
      await labUp({
        name: o.name,
        nodes: o.nodes,
        podsPerNode: o.podsPerNode,
        cni: o.cni,
        store: o.store,
        ...(o.etcdApi === undefined ? {} : { etcdApi: o.etcdApi }),
        ...(o.backend === undefined ? {} : { backend: o.backend }),
        ...(o.leaseTtl === undefined ? {} : { leaseTtl: o.leaseTtl }),
        ...(o.zones === undefined ? {} : { zones: Number(o.zones) }),
        ...(o.ipallocRange === undefined ? {} : { ipallocRange: o.ipallocRange }),
        ...(o.ipallocBlock === undefined ? {} : { ipallocBlock: o.ipallocBlock }),
        ...(o.ipallocInit === undefined ? {} : { ipallocInit: o.ipallocInit }),
        ...(o.password === undefined ? {} : { password: o.password }),
        ...(o.start === undefined ? {} : { start: o.start }),
        ...(o.daemon ? {} : { daemons: false }),
        ...(o.podLink === undefined ? {} : { podLink: o.podLink }),
        ...(o.fastPath === undefined ? {} : { fastPath: o.fastPath }),
        logger: logger(o.verbose),
        onProgress: (line) => process.stderr.write(`${line}\n`),
      });
      const status = await labStatus(o.name);
      if (o.json === true) printJson(status);
      else process.stdout.write(renderStatus(status));
    });

  lab
    .command('check')
    .description('ping between pods, nodes and gateways inside the lab (pod-outside: UDP, checking the source outside sees); exits 1 when any probe fails')
    .addOption(nameOption())
    .option('--kinds <kinds>', `probe kinds, comma-separated, or "all" (default: all with --store etcd, kube or mesh, else ${DEFAULT_KINDS.join(',')}); all kinds: ${PROBE_KINDS.join(', ')}`, probeKinds)
    .option('--json', 'print {"probes":[{from,to,kind,ok,rtt_ms}],"passed":N,"failed":M,"skipped":[{kind,reason}]}; pod-outside probes add source_seen and expected_source')
    .action(async (o: { name: string; kinds?: ProbeKind[]; json?: boolean }) => {
      const { labCheck, renderCheckMatrix } = await loadLab();
      const report = await labCheck(o.name, o.kinds === undefined ? {} : { kinds: o.kinds });
      if (o.json === true) printJson(report);
      else process.stdout.write(renderCheckMatrix(report));
      if (report.failed > 0) process.exitCode = 1;
    });

  lab
    .command('exec')
    .description('run a command inside a lab member: n1, n1-p2, router, outside, az-a, az-b, etcd; in a node, WEFT_STATUS_SOCKET, WEFT_LOCK_FILE and WEFT_SUBNET_FILE point at that node\'s agent, so `weft status` and `weft uninstall` need no flags')
    .usage('[--name <name>] <member> -- <command...>')
    .addOption(nameOption())
    .argument('<member>', 'n<i>, n<i>-p<k>, router, outside, az-<zone> or etcd')
    .argument('<command...>', 'the command and its arguments (after --)')
    .action(async (member: string, command: string[], o: { name: string }) => {
      const { labExec } = await loadLab();
      process.exit(await labExec(o.name, member, command));
    });

  lab
    .command('down')
    .description("remove a lab: CNI DEL for its pods, stop its processes, delete its namespaces and state; works after a crashed `up`")
    .addOption(nameOption())
    .option('--json', 'print what was removed as JSON')
    .option('--verbose', 'structured debug logs on stderr')
    .action(async (o: { name: string; json?: boolean; verbose?: boolean }) => {
      const { labDown } = await loadLab();
      const report = await labDown(o.name, { logger: logger(o.verbose), onProgress: (line) => process.stderr.write(`${line}\n`) });
      if (o.json === true) return printJson(report);
      if (!report.existed) return void process.stdout.write(`no lab named ${o.name}; nothing to remove\n`);
      const delNote = report.delFailures.length === 0 ? '' : ` (CNI DEL failed for ${report.delFailures.map((f) => f.pod).join(', ')}; removed anyway)`;
      process.stdout.write(`lab ${o.name} removed: ${report.removedNamespaces.length} namespaces, ${report.stoppedPids.length} processes, ${report.deleted.length} pods deleted via CNI${delNote}\n`);
    });

  lab
    .command('status')
    .description('list the lab\'s zones, router, etcd, nodes (with their agents\' leases, backends and peers) and pods with their addresses')
    .addOption(nameOption())
    .option('--json', 'print as JSON')
    .action(async (o: { name: string; json?: boolean }) => {
      const { labStatus, renderStatus } = await loadLab();
      const status = await labStatus(o.name);
      if (o.json === true) printJson(status);
      else process.stdout.write(renderStatus(status));
    });

  registerNodeCommands(lab);
}

const nodeList = (value: string, previous: string[] = []): string[] => [...previous, ...value.split(',').filter(Boolean)];

/** `lab node …`, `lab pod add`, `lab partition`, `lab heal`, `lab rmpeer`: changing a running lab (agent stores; partition: mesh). */
function registerNodeCommands(lab: Command): void {
  const node = lab.command('node').description('start, stop, restart or remove nodes\' agents in a lab with --store etcd, kube or mesh');
  const progress = (line: string): void => void process.stderr.write(`${line}\n`);

  node
    .command('start')
    .description('start the agents of the named nodes, all at once (those left out by `lab up --start`, or stopped), then attach their pods that have none yet')
    .addOption(nameOption())
    .argument('<nodes...>', 'n<i> (several: n3 n4, or n3,n4)')
    .option('--no-wait', 'return once the agent answers on its status socket, not when it is ready (a node that waits for unreachable peers); attaches no pods')
    .option('--no-pods', 'attach none of the node\'s pods')
    .option('--password <secret>', 'mesh: give the agent this password instead of the lab\'s')
    .option('--no-password', 'mesh: start the agent without a password')
    .option('--json', 'print what was started as JSON')
    .action(async (nodes: string[], o: { name: string; wait: boolean; pods: boolean; password?: string | boolean; json?: boolean }) => {
      const { labNodeStart } = await loadLab();
      const password = o.password === false ? null : typeof o.password === 'string' ? o.password : undefined;
      const report = await labNodeStart(o.name, nodes.flatMap((n) => nodeList(n)), { wait: o.wait, pods: o.pods, ...(password === undefined ? {} : { password }), onProgress: progress });
      if (o.json === true) return printJson(report);
      for (const r of report) process.stdout.write(`${r.node}: agent pid ${r.pid}${r.started ? ' started' : ' already running'}${r.ready ? ', ready' : ''}${r.pods.length === 0 ? '' : `, pods ${r.pods.map((p) => `${p.name} ${p.addresses.join(' ')}`).join(', ')}`}\n`);
    });

  node
    .command('stop')
    .description('stop the named nodes\' agents (SIGTERM, or SIGKILL with --kill); their pods and data plane stay')
    .addOption(nameOption())
    .argument('<nodes...>', 'n<i>')
    .option('--kill', 'SIGKILL: a crash, nothing cleaned up')
    .action(async (nodes: string[], o: { name: string; kill?: boolean }) => {
      const { labNodeStop } = await loadLab();
      const pids = await labNodeStop(o.name, nodes.flatMap((n) => nodeList(n)), { kill: o.kill === true });
      process.stdout.write(`stopped ${pids.join(' ')}\n`);
    });

  node
    .command('restart')
    .description('stop the named nodes\' agents (SIGTERM, or SIGKILL with --kill) and start them again with the same command; returns once they are ready')
    .addOption(nameOption())
    .argument('<nodes...>', 'n<i>')
    .option('--kill', 'SIGKILL: a crash, then the restart')
    .action(async (nodes: string[], o: { name: string; kill?: boolean }) => {
      const { labNodeRestart } = await loadLab();
      const report = await labNodeRestart(o.name, nodes.flatMap((n) => nodeList(n)), { kill: o.kill === true, onProgress: progress });
      for (const r of report) process.stdout.write(`${r.node}: agent pid ${r.pid}, ready\n`);
    });

  node
    .command('remove')
    .description('take nodes out as a dead machine: SIGKILL the agent, delete the node\'s and its pods\' namespaces (no CNI DEL); the other nodes still list it as a peer (`lab rmpeer`); with --store kube its Node is deleted from the API too')
    .addOption(nameOption())
    .argument('<nodes...>', 'n<i>')
    .action(async (nodes: string[], o: { name: string }) => {
      const { labNodeRemove } = await loadLab();
      const list = nodes.flatMap((n) => nodeList(n));
      await labNodeRemove(o.name, list);
      process.stdout.write(`removed ${list.join(' ')}\n`);
    });

  lab
    .command('pod')
    .description('pods of a running lab')
    .command('add')
    .description('attach new pods to a node, all at once (a namespace and a CNI ADD each); exits 1 if any ADD failed')
    .addOption(nameOption())
    .argument('<node>', 'n<i>')
    .option('--count <k>', 'how many', wholeNumber, 1)
    .option('--json', 'print [{name, addresses} | {name, error}] as JSON')
    .action(async (nodeName: string, o: { name: string; count: number; json?: boolean }) => {
      const { labAddPods } = await loadLab();
      const results = await labAddPods(o.name, nodeName, o.count);
      if (o.json === true) printJson(results);
      else for (const r of results) process.stdout.write('error' in r ? `${r.name}: ADD failed: ${r.error}\n` : `${r.name}: ${r.addresses.join(' ')}\n`);
      if (results.some((r) => 'error' in r)) process.exitCode = 1;
    });

  lab
    .command('partition')
    .description(`mesh: cut the named nodes off the other nodes (TCP ${MESH_PORT} and UDP ${MESH_VXLAN_PORT} dropped both ways, in the nodes' own namespaces) until \`lab heal\`; replaces any partition`)
    .addOption(nameOption())
    .argument('<nodes...>', 'the nodes on one side (n3, or n1,n2)')
    .action(async (nodes: string[], o: { name: string }) => {
      const { labPartition } = await loadLab();
      const r = await labPartition(o.name, nodes.flatMap((n) => nodeList(n)));
      process.stdout.write(`partition: ${r.cut.join(' ')} | ${r.rest.join(' ')}\n`);
    });

  lab
    .command('heal')
    .description('end the partition `lab partition` made')
    .addOption(nameOption())
    .action(async (o: { name: string }) => {
      const { labHeal } = await loadLab();
      await labHeal(o.name);
      process.stdout.write('healed\n');
    });

  lab
    .command('rmpeer')
    .description('mesh: run `weft rmpeer <peer>` on a node (against its agent\'s status socket): that node takes over the removed peer\'s address space')
    .addOption(nameOption())
    .argument('<node>', 'the node to run it on (n<i>)')
    .argument('<peer>', 'the peer to remove: its peer name or nickname (a lab node\'s nickname is its node name)')
    .action(async (nodeName: string, peer: string, o: { name: string }) => {
      const { labNodeWeft } = await loadLab();
      const r = await labNodeWeft(o.name, nodeName, ['rmpeer', peer]);
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.code ?? 1;
    });
}

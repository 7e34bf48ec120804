// `weft lab …`: a Kubernetes-like cluster on one machine, built from network namespaces.
// This file only parses flags and prints; the work is in src/lab.
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger, type Logger } from '../log/logger.ts';
import { CNI_KINDS, type CniKind } from '../lab/cni-config.ts';
import { DEFAULT_LAB_NAME } from '../lab/names.ts';
import { DEFAULT_KINDS, PROBE_KINDS, isProbeKind, type ProbeKind } from '../lab/probe-kinds.ts';
import { ETCD_APIS, LAB_BACKENDS, STORE_KINDS, type EtcdApi, type LabBackend, type StoreKind } from '../lab/store-kinds.ts';

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
    .addOption(new Option('--store <store>', 'none: the lab plans each node\'s subnet.env; etcd: an etcd member (weft-<name>-etcd) and a `weft agent` per node, which lease subnets, route between nodes and masquerade').choices(STORE_KINDS).default('none'))
    .addOption(new Option('--etcd-api <api>', 'store etcd: the API the network config is written with and the agents use (default v3)').choices(ETCD_APIS))
    .addOption(new Option('--backend <type>', 'store etcd: Backend.Type of the network config (default vxlan)').choices(LAB_BACKENDS))
    .option('--lease-ttl <duration>', 'store etcd: the agents\' --subnet-lease-ttl, e.g. 30s (default), 5m')
    .addOption(new Option('--zones <n>', 'zones the nodes alternate over: 2, or 1 for all in zone a (default 2; 1 with --backend host-gw, which needs one L2 segment)').choices(['1', '2']))
    .option('--no-daemon', 'store none, weft only: do not start a `weft cni-server` per node (the plugin then works standalone)')
    .option('--json', 'print the resulting status as JSON')
    .option('--verbose', 'structured debug logs on stderr')
    .action(async (o: {
      name: string; nodes: number; podsPerNode: number; cni: CniKind; store: StoreKind; etcdApi?: EtcdApi; backend?: LabBackend; leaseTtl?: string; zones?: string;
      daemon: boolean; json?: boolean; verbose?: boolean;
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
        ...(o.daemon ? {} : { daemons: false }),
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
    .option('--kinds <kinds>', `probe kinds, comma-separated, or "all" (default: all with --store etcd, else ${DEFAULT_KINDS.join(',')}); all kinds: ${PROBE_KINDS.join(', ')}`, probeKinds)
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
}

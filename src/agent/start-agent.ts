// `weft agent`: the node runtime with its real parts. In order: the node lock (one agent per
// node, before anything is touched), status and health served from the first second, then the
// runtime's start-up, whatever the control plane (the caller picks the mode). Start-up errors
// that can never heal (a malformed config, an exhausted Network) end the agent through `done`;
// everything else is a phase or a condition the status reports while the agent retries.
import { hostname } from 'node:os';
import type { Server } from 'node:net';
import type { Logger } from '../log/logger.ts';
import { Rtnetlink } from '../netlink/index.ts';
import { blockIpamFactory } from '../ipam/block-ipam.ts';
import { startAgentCniServer } from './cni.ts';
import type { RoutedPod } from '../cni/routed-link.ts';
import { agentFastPath, podLinkEntry } from './fast-path.ts';
import type { ControlPlane } from './control-plane.ts';
import { nodeFirewall } from './firewall.ts';
import { rtnetlinkKernel } from './kernel.ts';
import { CNI_CONFIG_CONDITION, findLeftovers, watchLeftovers } from './leftovers.ts';
import { AgentMetrics } from './metrics.ts';
import { acquireNodeLock } from './node-lock.ts';
import type { AgentOptions } from './options.ts';
import { createNodeRuntime, type NodeRuntime } from './runtime.ts';
import { startHealthz, startStatusServer, type AgentStatus } from './status.ts';
import { subnetFileAt } from './subnet-file.ts';

export interface RunningAgent {
  status(): AgentStatus;
  readonly runtime: NodeRuntime;
  /** Stops the loops and servers; the kernel state stays, as on a restart. */
  stop(): Promise<void>;
  /** Resolves when the agent ends on its own (a fatal error); the value says why. */
  readonly done: Promise<Error>;
}

/** After a DEL or GC, the fast path's maps follow the kernel's pods this much later (a burst coalesced). */
const PODS_CHANGED_DELAY_MS = 200;
/** Another CNI's leftovers are looked for this often (a few processes and a directory read each time). */
const LEFTOVER_CHECK_MS = 60_000;

export interface StartAgentExtras {
  version?: string;
}

export async function startAgent(opts: AgentOptions, log: Logger, controlPlane: ControlPlane, extras: StartAgentExtras = {}): Promise<RunningAgent> {
  const lock = acquireNodeLock(opts.lockFile);
  // The CNI server starts once the node is programmed; the metric reads its usage from then on.
  let ipamUsage: (() => { used: number; free: number } | undefined) | undefined;
  controlPlane.observePodUsage?.(() => ipamUsage?.());
  let nl: Rtnetlink;
  try {
    nl = Rtnetlink.open();
  } catch (e) {
    lock.release();
    throw e;
  }
  const fastPath = opts.fastPath === 'ebpf' ? agentFastPath(nl, opts.bpfDir, log) : undefined;
  let podsChanged: ReturnType<typeof setTimeout> | undefined;
  const metrics = new AgentMetrics({
    version: extras.version ?? 'unknown', mode: controlPlane.mode, ipamUsage: () => ipamUsage?.(),
    ...(controlPlane.metrics ? { modeMetrics: controlPlane.metrics } : {}),
    ...(fastPath ? { fastPath: () => fastPath.status() } : {}),
  });
  const runtime = createNodeRuntime({
    node: process.env.NODE_NAME || hostname(),
    controlPlane,
    kernel: rtnetlinkKernel(nl, opts, log),
    firewall: nodeFirewall({ ipMasq: opts.ipMasq, forwardRules: opts.iptablesForwardRules, log }),
    subnetFile: subnetFileAt(opts.subnetFile, opts.ipMasq, opts.podLink),
    ...(fastPath ? { fastPath } : {}),
    metrics,
    log,
    ...(opts.cniSocket === '' ? {} : {
      startCni: async () => {
        const cni = await startAgentCniServer(opts.cniSocket, log, {
          onRequest: (r) => metrics.cniRequest(r.verb, r.result, r.seconds),
          // A mode that hands out address blocks (mesh) allocates pods from them, not from subnet.env's one subnet.
          ...(controlPlane.podBlocks ? { ipam: blockIpamFactory(controlPlane.podBlocks) } : {}),
          ...(fastPath ? {
            onPodAttached: (pod: RoutedPod) => {
              const entry = podLinkEntry(pod);
              if (entry) fastPath.podAttached(entry);
            },
            // A burst of DELs is one reconcile (three dumps), not one each: nothing waits on it.
            onPodsChanged: () => {
              podsChanged ??= setTimeout(() => {
                podsChanged = undefined;
                fastPath.reconcile();
              }, PODS_CHANGED_DELAY_MS);
            },
          } : {}),
        });
        ipamUsage = cni.usage;
        return cni;
      },
    }),
    reconcileMs: opts.reconcileSeconds * 1000,
    firewallResyncMs: opts.iptablesResyncSeconds * 1000,
  });
  // What another CNI left in weft's way: warnings in the status; a config that wins over weft's also a readiness reason.
  const leftovers = watchLeftovers({
    check: () => findLeftovers({ cniConfDir: opts.cniConfDir }), log, everyMs: LEFTOVER_CHECK_MS,
    onBlocking: (reason) => runtime.setCondition(CNI_CONFIG_CONDITION, reason),
  });
  const status = (): AgentStatus => ({ ...runtime.status(), warnings: leftovers.warnings() });
  const servers: Server[] = [];
  const stopAll = async (): Promise<void> => {
    leftovers.stop();
    await runtime.stop().catch((e: Error) => log.warn({ err: e.message }, 'stopping the runtime'));
    clearTimeout(podsChanged);
    fastPath?.close(); // file descriptors only: the programs stay attached and the maps pinned
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    metrics.close();
    lock.release();
  };
  try {
    servers.push(await startStatusServer(opts.statusSocket, status, controlPlane.command ? (name, body) => controlPlane.command!(name, body) : undefined));
    if (opts.healthzPort > 0) servers.push(await startHealthz(opts.healthzIp, opts.healthzPort, { readiness: runtime.readiness, metrics }));
  } catch (e) {
    await stopAll();
    throw e;
  }
  let stopping = false;
  let end: (e: Error) => void = () => undefined;
  const done = new Promise<Error>((resolve) => (end = resolve));
  runtime.run().catch(async (e: Error) => {
    if (stopping) return;
    await stopAll();
    end(e);
  });
  return {
    status,
    runtime,
    done,
    async stop() {
      stopping = true;
      await stopAll();
      end(new Error('stopped'));
    },
  };
}

// `weft uninstall`: the explicit removal of what the agent installed on this node — its
// masquerade/forward rules (iptables in both builds, and nftables), its backend devices
// (flannel.<VNI>), the routes it added and subnet.env. The agent never does this on its own:
// stopping or restarting it leaves the data plane working.
//
// It needs nothing from the agent: the rules are found by the chains and tables weft owns, not
// by the addresses in subnet.env (which may be gone), and the routes and devices by what marks
// them as weft's. It refuses to run while an agent holds the node lock, since that agent would
// put everything back within seconds.
import { existsSync, rmSync } from 'node:fs';
import { detachFastPath, removeFastPathPins } from '../fastpath/kernel.ts';
import { pinDirFor } from './fast-path.ts';
import { WeftError, errnoCode } from '../errors.ts';
import type { Logger } from '../log/logger.ts';
import { Rtnetlink } from '../netlink/index.ts';
import { teardownAllBackends } from '../dataplane/index.ts';
import { removeAllFlannelRules, type Runner } from '../firewall/index.ts';
import { NodeLockHeldError, acquireNodeLock } from './node-lock.ts';

export interface UninstallReport {
  /** Whether any masquerade/forward rule was found and removed. */
  firewallRules: boolean;
  /** What was removed, e.g. "iptables-nft ipv4: nat FLANNEL-POSTRTG, filter FLANNEL-FWD", "nft: table ip flannel-ipv4". */
  firewall: string[];
  devices: string[];
  routes: number;
  subnetFile: boolean;
  /** The interfaces weft's fast path programs were taken off, and whether its pinned maps were removed. */
  fastPath: { detached: string[]; pins: boolean };
}

export interface UninstallOptions {
  subnetFile: string;
  lockFile: string;
  /** The fast path's --bpf-dir: this namespace's pinned maps under it are removed. */
  bpfDir: string;
  log: Logger;
  /** Where the firewall tools run (tests); default here. */
  firewallRunner?: Runner;
}

function takeLock(lockFile: string): { release(): void } {
  try {
    return acquireNodeLock(lockFile);
  } catch (e) {
    if (e instanceof NodeLockHeldError) {
      throw new WeftError('WEFT_NOT_READY',
        `a weft agent (PID ${e.holder ?? 'unknown'}) is running on this node (it holds ${lockFile}); stop it first (it would reinstall what uninstall removes), then run weft uninstall again`);
    }
    throw e;
  }
}

export async function uninstall(o: UninstallOptions): Promise<UninstallReport> {
  const lock = takeLock(o.lockFile); // held throughout, so no agent starts halfway through
  try {
    const firewall = await removeAllFlannelRules(o.firewallRunner ? { runner: o.firewallRunner } : {});
    for (const line of firewall.removed) o.log.info({ removed: line }, 'firewall rules removed');
    using nl = Rtnetlink.open();
    // The fast path first: its programs redirect by the routes and devices removed next.
    const fastPath = removeFastPath(nl, o.bpfDir, o.log);
    const { routes, devices } = teardownAllBackends(nl, o.log);
    let subnetFile = false;
    try {
      rmSync(o.subnetFile);
      subnetFile = true;
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw new WeftError('WEFT_IO', `cannot remove ${o.subnetFile}: ${(e as Error).message}`, { cause: e });
    }
    // Everything else is done before failing, so one broken tool does not leave the rest installed.
    if (firewall.errors.length > 0) {
      throw new WeftError('WEFT_FIREWALL', `uninstall removed the devices, routes and subnet.env, but not every firewall rule: ${firewall.errors.join('; ')}`);
    }
    return { firewallRules: firewall.removed.length > 0, firewall: firewall.removed, devices, routes, subnetFile, fastPath };
  } finally {
    lock.release();
  }
}

/**
 * weft's tc programs off every interface, and this namespace's pinned maps. Without the BPF
 * addon (no libbpf on this host) no agent here can have attached anything: nothing to detach.
 */
function removeFastPath(nl: Rtnetlink, bpfDir: string, log: Logger): UninstallReport['fastPath'] {
  const links = nl.listLinks();
  let detached: string[] = [];
  try {
    const off = new Set(detachFastPath(links.map((l) => l.index)));
    detached = links.filter((l) => off.has(l.index)).map((l) => l.name);
  } catch (e) {
    log.debug({ err: (e as Error).message }, 'no BPF addon: no fast path programs to detach');
  }
  const pinDir = pinDirFor(bpfDir);
  const pins = existsSync(pinDir);
  removeFastPathPins(pinDir);
  if (detached.length > 0 || pins) log.info({ detached, pinDir }, 'fast path removed');
  return { detached, pins };
}

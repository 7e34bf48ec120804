// The vxlan backend, wire-compatible with flanneld's: device flannel.<VNI> (learning off,
// local = PublicIP, dev = underlay, dstport 8472 unless Port says otherwise), the lease subnet's
// network address as /32 on it, and per vxlan peer a permanent neighbour (peer subnet .0 ->
// VtepMAC), a permanent self FDB entry (VtepMAC -> PublicIP) and the route
// `<subnet> via <subnet .0> dev flannel.<VNI> onlink`. With DirectRouting (and always in weft's
// "auto" mode) a peer on the underlay's own subnet gets `<subnet> via <PublicIP> dev <underlay>`
// instead. IPv4 only: the device's accept_ra (flanneld turns it off) matters only for IPv6.
import { WeftError } from '../../errors.ts';
import { silentLogger, type Logger } from '../../log/logger.ts';
import { addAddressRequest, deleteAddressRequest, type Link, type NetlinkRequest, type Rtnetlink } from '../../netlink/index.ts';
import type { Backend, LocalNode, Peer, PrepareResult, ReconcileReport } from '../backend.ts';
import { canonicalIp, canonicalSubnet, deviceAddress, diffAddresses } from '../plan.ts';
import { reconcilePeers } from '../reconcile.ts';
import { SerialWork, kernelQueue } from '../serial.ts';
import { chooseVtepMac, DEFAULT_VXLAN_PORT, ensureVxlanDevice, VXLAN_OVERHEAD, type VxlanDeviceSpec } from './device.ts';
import { decodeVxlanLeaseData, vxlanLeaseData } from './lease-data.ts';

export interface VxlanOptions {
  /** Default 1. */
  vni?: number;
  /** UDP port; 0 or absent means the kernel's default, 8472. */
  port?: number;
  /** The underlay MTU to assume (flannel's Backend.MTU); default the underlay's own. The device gets this − 50. */
  mtu?: number;
  /** Default false, as flanneld. */
  learning?: boolean;
  /** Plain routes to peers on the underlay's subnet (flannel's DirectRouting). */
  directRouting?: boolean;
  /**
   * The cluster Network: no peer subnet outside it is ever routed (without it, none is), and a
   * reconcile adopts (and later removes) flanneld's DirectRouting routes inside it.
   */
  network?: string;
  log?: Logger;
  /** Netlink requests (or peers planned) per slice between two yields; see reconcile.ts. Default 256. */
  sliceSize?: number;
}

export class VxlanBackend implements Backend {
  readonly type: 'vxlan' | 'auto';
  readonly spec: VxlanDeviceSpec;
  readonly directRouting: boolean;
  private readonly nl: Rtnetlink;
  private readonly node: LocalNode;
  private readonly network: string | undefined;
  private readonly log: Logger;
  private readonly sliceSize: number | undefined;
  private readonly work: SerialWork;
  private mac: string | undefined;
  private device: Link | undefined;
  private subnet: string | undefined;

  /** type "auto" is vxlan with DirectRouting always on. */
  constructor(nl: Rtnetlink, node: LocalNode, options: VxlanOptions = {}, type: 'vxlan' | 'auto' = 'vxlan') {
    const vni = options.vni ?? 1;
    if (!Number.isInteger(vni) || vni < 0 || vni > 0xffffff) throw new WeftError('WEFT_INVALID_CONFIG', `vxlan: VNI ${vni} is not in 0-16777215`);
    const underlayMtu = options.mtu ?? node.underlayMtu;
    const mtu = underlayMtu - VXLAN_OVERHEAD;
    if (!(mtu >= 68)) throw new WeftError('WEFT_INVALID_CONFIG', `vxlan: an underlay MTU of ${underlayMtu} leaves ${mtu} for pods, below IPv4's minimum of 68`);
    this.type = type;
    this.work = new SerialWork(kernelQueue(nl));
    this.nl = nl;
    this.node = node;
    this.network = options.network;
    this.log = options.log ?? silentLogger;
    this.sliceSize = options.sliceSize;
    this.directRouting = type === 'auto' || (options.directRouting ?? false);
    this.spec = {
      name: `flannel.${vni}`,
      vni,
      local: canonicalIp(node.publicIp),
      underlayIndex: node.underlayIndex,
      port: options.port || DEFAULT_VXLAN_PORT,
      mtu,
      learning: options.learning ?? false,
    };
  }

  /** The VTEP MAC in use (after prepare). */
  get vtepMac(): string | undefined {
    return this.mac;
  }

  prepare(previousData: unknown): PrepareResult {
    const { changes } = this.ensureDevice(previousData);
    return {
      backendType: 'vxlan',
      backendData: vxlanLeaseData(this.spec.vni, this.mac as string),
      mtu: this.spec.mtu,
      changes,
    };
  }

  attach(subnet: string): number {
    this.subnet = canonicalSubnet(subnet);
    return this.ensureAddress(this.requireDevice().index);
  }

  reconcile(peers: readonly Peer[]): Promise<ReconcileReport> {
    return this.work.reconcile(peers, (latest) => this.reconcileNow(latest));
  }

  teardown(): Promise<void> {
    return this.work.exclusive(async () => {
      // Direct routes live on the underlay and outlive the device: remove them first.
      const link = this.nl.getLink(this.spec.name);
      await reconcilePeers(this.nl, [], {
        mode: 'vxlan', directRouting: this.directRouting, node: this.node, deviceIndex: link?.index, network: this.network, sliceSize: this.sliceSize,
      });
      if (link && link.kind === 'vxlan') this.nl.deleteLink(link.index);
      this.device = undefined;
    });
  }

  private async reconcileNow(peers: readonly Peer[]): Promise<ReconcileReport> {
    this.requireDevice();
    // The device may have been deleted or changed under us (flanneld >= 0.28 watches for
    // this): recreate it, keeping its MAC; a new device starts empty, so every entry follows.
    const { changes } = this.ensureDevice(undefined, true);
    const index = this.requireDevice().index;
    const addressChanges = this.subnet === undefined ? 0 : this.ensureAddress(index);
    const report = await reconcilePeers(this.nl, peers, {
      mode: 'vxlan',
      directRouting: this.directRouting,
      node: this.node,
      deviceIndex: index,
      vni: this.spec.vni,
      decodeTunnel: decodeVxlanLeaseData,
      ownSubnet: this.subnet,
      network: this.network,
      sliceSize: this.sliceSize,
    });
    report.changes += changes + addressChanges;
    return report;
  }

  private requireDevice(): Link {
    if (!this.device) throw new WeftError('WEFT_INTERNAL', `vxlan: prepare() must run before attach() and reconcile()`);
    return this.device;
  }

  private ensureDevice(previousData: unknown, enforceMac = false): { changes: number } {
    const mac = chooseVtepMac(this.mac, previousData);
    const { link, changes } = ensureVxlanDevice(this.nl, this.spec, mac, this.log, enforceMac);
    this.device = link;
    this.mac = link.mac;
    return { changes };
  }

  /** Exactly the lease subnet's network address, /32, as IPv4 address of the device. */
  private ensureAddress(index: number): number {
    if (this.subnet === undefined) return 0;
    const want = deviceAddress(this.subnet);
    const actual = this.nl.listAddresses({ link: index, family: 4 }).map((a) => a.cidr);
    const { add, remove } = diffAddresses(actual, want);
    const reqs: NetlinkRequest[] = remove.map((cidr) => deleteAddressRequest(index, cidr, this.spec.name));
    if (add) reqs.push(addAddressRequest(index, add, {}, this.spec.name));
    if (reqs.length === 0) return 0;
    for (const cidr of remove) this.log.info({ device: this.spec.name, address: cidr }, `removing address ${cidr} from ${this.spec.name}`);
    this.nl.batch(reqs);
    return reqs.length;
  }
}

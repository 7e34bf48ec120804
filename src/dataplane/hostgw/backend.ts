// The host-gw backend, as flanneld's: per peer `<subnet> via <PublicIP> dev <underlay>`, no
// encapsulation, pods get the underlay's MTU. Every node must be on one L2 segment: a peer the
// underlay does not reach directly is reported unreachable (flanneld would just fail to add
// its route), and the lease says BackendType "host-gw" with no BackendData.
import { WeftError } from '../../errors.ts';
import type { Rtnetlink } from '../../netlink/index.ts';
import type { Backend, LocalNode, Peer, PrepareResult, ReconcileReport } from '../backend.ts';
import { canonicalIp, canonicalSubnet } from '../plan.ts';
import { reconcilePeers } from '../reconcile.ts';
import { SerialWork, kernelQueue } from '../serial.ts';

export interface HostGwOptions {
  /**
   * The cluster Network: no peer subnet outside it is ever routed (without it, none is), and a
   * reconcile adopts (and later removes) flanneld's host-gw routes inside it.
   */
  network?: string;
  /** Netlink requests (or peers planned) per slice between two yields; see reconcile.ts. Default 256. */
  sliceSize?: number;
}

export class HostGwBackend implements Backend {
  readonly type = 'host-gw';
  private readonly nl: Rtnetlink;
  private readonly node: LocalNode;
  private readonly network: string | undefined;
  private readonly sliceSize: number | undefined;
  private readonly work: SerialWork;
  private subnet: string | undefined;

  constructor(nl: Rtnetlink, node: LocalNode, options: HostGwOptions = {}) {
    this.nl = nl;
    this.work = new SerialWork(kernelQueue(nl));
    this.node = node;
    this.network = options.network;
    this.sliceSize = options.sliceSize;
  }

  prepare(_previousData: unknown): PrepareResult {
    // flanneld refuses too: peers would send to an address this node does not have.
    const publicIp = canonicalIp(this.node.publicIp);
    const own = this.nl.listAddresses({ link: this.node.underlayIndex, family: 4 }).map((a) => a.address);
    if (!own.includes(publicIp)) {
      throw new WeftError('WEFT_INVALID_CONFIG',
        `host-gw: the PublicIP ${publicIp} is not an address of ${this.node.underlayInterface} (${own.join(', ') || 'it has none'}); ` +
        'behind NAT, host-gw cannot work: use the vxlan or auto backend');
    }
    return { backendType: 'host-gw', backendData: undefined, mtu: this.node.underlayMtu, changes: 0 };
  }

  attach(subnet: string): number {
    this.subnet = canonicalSubnet(subnet);
    return 0;
  }

  reconcile(peers: readonly Peer[]): Promise<ReconcileReport> {
    return this.work.reconcile(peers, (latest) => reconcilePeers(this.nl, latest, {
      mode: 'host-gw', directRouting: true, node: this.node, ownSubnet: this.subnet, network: this.network, sliceSize: this.sliceSize,
    }));
  }

  teardown(): Promise<void> {
    return this.work.exclusive(async () => {
      await reconcilePeers(this.nl, [], { mode: 'host-gw', directRouting: true, node: this.node, network: this.network, sliceSize: this.sliceSize });
    });
  }
}

// What a mesh-mode agent reports about its mesh: the agent's status JSON carries it as
// `store.details.mesh`, and `weft status` renders it in Weave's layout (render.ts). The mesh
// node fills it in; this module only says what the fields mean.

export interface MeshStatus {
  /** weft's version. */
  version: string;
  protocol: { min: number; max: number };
  name: string;
  nickname: string;
  /** A password is set: the control connections are encrypted (the data plane never is). */
  encryption: boolean;
  peerDiscovery: boolean;
  /** The configured peer list (host or host:port). */
  targets: string[];
  /** This node's live connections plus the targets it fails to reach. */
  connections: MeshConnectionStatus[];
  /** Every known peer, this node included. */
  peers: MeshPeerStatus[];
  /** Always [] for now. */
  trustedSubnets: string[];
  ipam: {
    /** Already the Weave-precedence wording: ready, awaiting consensus (quorum: Q, known: K), priming, idle... */
    status: string;
    range: string;
    defaultSubnet: string;
    blockPrefix: number;
    /** null until the block map exists (then the ipam view is empty). */
    ringId: string | null;
    owners: { name: string; nickname: string; addresses: number; self: boolean; reachable: boolean; active?: number }[];
    /** Blocks this node owns, and blocks nobody owns. */
    blocksOwned: number;
    blocksFree: number;
  };
  dataPlaneEncrypted: false;
}

export interface MeshConnectionStatus {
  direction: 'outbound' | 'inbound';
  /** "10.0.0.12:6783" */
  address: string;
  state: 'established' | 'pending' | 'retrying' | 'failed' | 'connecting';
  /** The other end, once the handshake told us who it is. */
  peer?: { name: string; nickname: string };
  encrypted?: boolean;
  /** The last error, for failing targets (live connections show the peer instead). */
  info?: string;
  /** Next retry time (ISO), or null = never; shown for failed targets. */
  retry?: string | null;
  /** e.g. { mtu: "1410" } */
  attrs?: Record<string, string>;
}

export interface MeshPeerStatus {
  name: string;
  nickname: string;
  self: boolean;
  reachable: boolean;
  connections: { direction: 'outbound' | 'inbound'; address: string; peer: { name: string; nickname: string }; state: 'established' | 'pending' }[];
}

export type MeshIpamStatus = MeshStatus['ipam'];
export type MeshIpamOwner = MeshIpamStatus['owners'][number];

/** `weft rmpeer`: what the agent answers when it took a dead peer's blocks. */
export interface RmpeerAnswer {
  /** Addresses taken over (the blocks' sizes summed). */
  addresses: number;
  /** "name(nickname)" of the removed peer. */
  peer: string;
}

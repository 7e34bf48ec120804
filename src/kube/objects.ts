// The parts of Kubernetes objects weft's modes read and write, as plain structural types
// (client-node's V1Node and V1Lease fit them). Everything read from the API is untrusted:
// every field is optional, and the modes' parsers check each one before use.

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  blockOwnerDeletion?: boolean;
  controller?: boolean;
}

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface NodeObject {
  metadata?: ObjectMeta;
  spec?: { podCIDR?: string; podCIDRs?: string[] };
  status?: { addresses?: { type: string; address: string }[] };
}

export interface LeaseObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  spec?: { holderIdentity?: string };
}

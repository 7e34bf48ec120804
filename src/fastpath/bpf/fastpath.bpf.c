// SPDX-License-Identifier: GPL-2.0
/*
 * weft's fast path: two tc ingress programs that move pod<->pod IPv4 TCP/UDP past the node's
 * netfilter, and only where the kernel's own routing already points (docs/dataplane.md).
 *
 *   weft_from_uplink  on the underlay interface and the tunnel device: a packet for a local pod
 *                     goes straight into the pod's namespace (bpf_redirect_peer).
 *   weft_from_pod     on a routed pod's host veth: a packet for a pod on this node goes into its
 *                     namespace; one for a pod on a peer goes straight out of the uplink that
 *                     bpf_fib_lookup picked (bpf_redirect, or bpf_redirect_neigh when the next
 *                     hop's neighbour is not resolved yet).
 *
 * Everything else returns TC_ACT_OK, to the normal stack: other protocols, IP options,
 * fragments, anything outside the cluster Network, spoofed pod sources, routes that do not end
 * at a known pod or peer, TTL <= 1, packets that need fragmenting (the kernel sends the ICMP),
 * and any connection conntrack has NAT-ed (kube-proxy's Service DNAT, masquerade): the stack
 * must see those packets to reverse the NAT.
 *
 * The maps are pinned by name, so every attach point and every load share them, and an agent
 * restart keeps them (src/fastpath/kernel.ts). Their layouts are mirrored in src/fastpath/maps.ts;
 * a change here is a change there, and a pinned map of another layout is refused at load.
 *
 * Built with clang -O2 -g -target bpf against the UAPI headers and libbpf's bpf_helpers.h;
 * the two kernel types read here are declared below (CO-RE relocates nf_conn's field).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

/* ---- kernel types (no vmlinux.h): only what is read, relocated by name ---- */

struct nf_conn {
  unsigned long status;
} __attribute__((preserve_access_index));

/* The original 12-byte layout, which the kernel still accepts (opts__sz 12). */
struct bpf_ct_opts {
  __s32 netns_id;
  __s32 error;
  __u8 l4proto;
  __u8 dir;
  __u8 reserved[2];
};

extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple__sz,
                                         struct bpf_ct_opts *opts, __u32 opts__sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;

#define IPS_SRC_NAT (1 << 4)
#define IPS_DST_NAT (1 << 5)
#define CT_CURRENT_NETNS (-1)
#define AF_INET 2
#define ENOENT 2
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* ---- maps (layouts mirrored in src/fastpath/maps.ts) ---- */

struct pod_link {
  __u32 ipv4;          /* network order */
  __u8 pod_mac[6];
  __u8 host_mac[6];
};

struct peer_key {
  __u32 prefixlen;
  __u32 addr;          /* network order */
};

struct network {
  __u32 addr;          /* network order; mask 0 means "not configured": nothing takes the fast path */
  __u32 mask;
};

enum stat {
  STAT_RX_REDIRECT,
  STAT_TX_LOCAL,
  STAT_TX_REMOTE,
  STAT_TX_REMOTE_NEIGH,
  STAT_PASS_NAT,
  STAT_PASS_NOT_POD,
  STAT_PASS_OTHER,
};
/* Room for counters a later version adds, so its maps stay compatible with these pins. */
#define STAT_SLOTS 16

/* Host veth ifindex -> the pod behind it. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, __u32);
  __type(value, struct pod_link);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_pods SEC(".maps");

/* Ifindexes whose traffic may leave for a peer: the underlay and the tunnel device. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_uplinks SEC(".maps");

/* The pod subnets of the peers this node reaches. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, 65536);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct peer_key);
  __type(value, __u32);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_peers SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct network);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STAT_SLOTS);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} weft_stats SEC(".maps");

/* ---- helpers ---- */

struct flow {
  __be32 saddr;
  __be32 daddr;
  __be16 sport;
  __be16 dport;
  __u8 proto;
  __u8 ttl;
  __u8 tos;
};

static __always_inline int count(enum stat s, int verdict) {
  __u32 key = s;
  __u64 *n = bpf_map_lookup_elem(&weft_stats, &key);
  if (n) *n += 1;
  return verdict;
}

#define PASS(s) count((s), TC_ACT_OK)
#define L4_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr))

/* Fills f from an IPv4 TCP/UDP packet without options or fragments; -1 for anything else. */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f) {
  if (skb->protocol != bpf_htons(ETH_P_IP)) return -1;
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  if (data + L4_OFF + 4 > end) {
    /* Headers not in the linear part (rare): pull them, or leave the packet to the stack. */
    if (bpf_skb_pull_data(skb, L4_OFF + 4) < 0) return -1;
    data = (void *)(long)skb->data;
    end = (void *)(long)skb->data_end;
    if (data + L4_OFF + 4 > end) return -1;
  }
  struct iphdr *ip = data + sizeof(struct ethhdr);
  if (ip->version != 4 || ip->ihl != 5) return -1;
  if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) return -1;
  if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP) return -1;
  __be16 *ports = data + L4_OFF;
  f->saddr = ip->saddr;
  f->daddr = ip->daddr;
  f->sport = ports[0];
  f->dport = ports[1];
  f->proto = ip->protocol;
  f->ttl = ip->ttl;
  f->tos = ip->tos;
  return 0;
}

/* Both ends inside the cluster Network: only pod<->pod traffic (and the nodes' own Network
 * addresses) is eligible, so that no flow has one direction here and the other through
 * conntrack's masquerade. */
static __always_inline int in_network(const struct flow *f) {
  __u32 key = 0;
  struct network *n = bpf_map_lookup_elem(&weft_config, &key);
  if (!n || n->mask == 0) return 0;
  return (f->saddr & n->mask) == n->addr && (f->daddr & n->mask) == n->addr;
}

/* What conntrack says about this connection: the stack must see NAT-ed ones to reverse the NAT. */
enum ct_verdict { CT_PLAIN, CT_NAT, CT_UNKNOWN };

static __always_inline enum ct_verdict conntrack(struct __sk_buff *skb, const struct flow *f) {
  struct bpf_sock_tuple tuple = {};
  tuple.ipv4.saddr = f->saddr;
  tuple.ipv4.daddr = f->daddr;
  tuple.ipv4.sport = f->sport;
  tuple.ipv4.dport = f->dport;
  struct bpf_ct_opts opts = { .netns_id = CT_CURRENT_NETNS, .l4proto = f->proto };
  struct nf_conn *ct = bpf_skb_ct_lookup(skb, &tuple, sizeof(tuple.ipv4), &opts, sizeof(opts));
  /* -ENOENT: no connection, so nothing to reverse; any other error: the lookup itself failed. */
  if (!ct) return opts.error == -ENOENT ? CT_PLAIN : CT_UNKNOWN;
  enum ct_verdict v = ct->status & (IPS_SRC_NAT | IPS_DST_NAT) ? CT_NAT : CT_PLAIN;
  bpf_ct_release(ct);
  return v;
}

/* TC_ACT_OK (counted) when conntrack needs the stack to see the packet, else -1. */
static __always_inline int leave_to_conntrack(struct __sk_buff *skb, const struct flow *f) {
  enum ct_verdict v = conntrack(skb, f);
  if (v == CT_NAT) return PASS(STAT_PASS_NAT);
  if (v == CT_UNKNOWN) return PASS(STAT_PASS_OTHER);
  return -1;
}

static __always_inline int fib(struct __sk_buff *skb, const struct flow *f, struct bpf_fib_lookup *p) {
  __builtin_memset(p, 0, sizeof(*p));
  p->family = AF_INET;
  p->l4_protocol = f->proto;
  p->sport = f->sport;
  p->dport = f->dport;
  p->tot_len = 0; /* 0: the kernel checks this skb against the out device's MTU, GSO-aware */
  p->tos = f->tos;
  p->ipv4_src = f->saddr;
  p->ipv4_dst = f->daddr;
  p->ifindex = skb->ifindex;
  return bpf_fib_lookup(skb, p, sizeof(*p), 0);
}

/* What a router does to a packet it forwards: TTL - 1, with the header checksum fixed. */
static __always_inline int decrement_ttl(struct __sk_buff *skb, __u8 ttl) {
  const __u32 ttl_off = sizeof(struct ethhdr) + offsetof(struct iphdr, ttl);
  const __u32 csum_off = sizeof(struct ethhdr) + offsetof(struct iphdr, check);
  __u8 next = ttl - 1;
  /* The checksum covers TTL as the high byte of a 16-bit word. */
  if (bpf_l3_csum_replace(skb, csum_off, bpf_htons((__u16)ttl << 8), bpf_htons((__u16)next << 8), 2) < 0) return -1;
  return bpf_skb_store_bytes(skb, ttl_off, &next, 1, 0);
}

static __always_inline int rewrite(struct __sk_buff *skb, const struct flow *f, const struct bpf_fib_lookup *p) {
  if (decrement_ttl(skb, f->ttl) < 0) return -1;
  __u8 macs[12];
  __builtin_memcpy(macs, p->dmac, 6);
  __builtin_memcpy(macs + 6, p->smac, 6);
  return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}

/* The pod behind the host veth ifindex when it owns addr. */
static __always_inline struct pod_link *pod_at(__u32 ifindex, __be32 addr) {
  struct pod_link *pod = bpf_map_lookup_elem(&weft_pods, &ifindex);
  return pod && pod->ipv4 == addr ? pod : NULL;
}

static __always_inline int to_peer(__u32 ifindex, __be32 daddr) {
  struct peer_key key = { .prefixlen = 32, .addr = daddr };
  return bpf_map_lookup_elem(&weft_uplinks, &ifindex) && bpf_map_lookup_elem(&weft_peers, &key);
}

/* Into a local pod's namespace, past the host veth's own receive path. */
static __always_inline int into_pod(struct __sk_buff *skb, const struct flow *f, const struct bpf_fib_lookup *p,
                                    enum stat s) {
  int verdict = leave_to_conntrack(skb, f);
  if (verdict >= 0) return verdict;
  if (rewrite(skb, f, p) < 0) return PASS(STAT_PASS_OTHER);
  count(s, 0);
  return bpf_redirect_peer(p->ifindex, 0);
}

/* ---- programs ---- */

SEC("tc")
int weft_from_uplink(struct __sk_buff *skb) {
  struct flow f;
  struct bpf_fib_lookup p;
  /* Only frames addressed to this node: the stack would drop the others. */
  if (skb->pkt_type != PACKET_HOST || parse(skb, &f) < 0 || !in_network(&f) || f.ttl <= 1) return PASS(STAT_PASS_OTHER);
  if (fib(skb, &f, &p) != BPF_FIB_LKUP_RET_SUCCESS) return PASS(STAT_PASS_OTHER);
  if (!pod_at(p.ifindex, f.daddr)) return PASS(STAT_PASS_NOT_POD);
  return into_pod(skb, &f, &p, STAT_RX_REDIRECT);
}

SEC("tc")
int weft_from_pod(struct __sk_buff *skb) {
  struct flow f;
  struct bpf_fib_lookup p;
  if (parse(skb, &f) < 0 || !in_network(&f) || f.ttl <= 1) return PASS(STAT_PASS_OTHER);
  /* A pod speaks only from its own address; anything else is the stack's to judge. */
  if (!pod_at(skb->ifindex, f.saddr)) return PASS(STAT_PASS_NOT_POD);
  int rc = fib(skb, &f, &p);
  if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
    if (pod_at(p.ifindex, f.daddr)) return into_pod(skb, &f, &p, STAT_TX_LOCAL);
    if (!to_peer(p.ifindex, f.daddr)) return PASS(STAT_PASS_NOT_POD);
    int verdict = leave_to_conntrack(skb, &f);
    if (verdict >= 0) return verdict;
    if (rewrite(skb, &f, &p) < 0) return PASS(STAT_PASS_OTHER);
    count(STAT_TX_REMOTE, 0);
    return bpf_redirect(p.ifindex, 0);
  }
  if (rc == BPF_FIB_LKUP_RET_NO_NEIGH && to_peer(p.ifindex, f.daddr)) {
    /* The lookup filled the out device and the next hop; the neighbour subsystem resolves it.
     * The MTU is checked here, as the lookup does on SUCCESS, so the stack sends the ICMP. */
    __u32 mtu = 0;
    if (bpf_check_mtu(skb, p.ifindex, &mtu, 0, 0) != BPF_MTU_CHK_RET_SUCCESS) return PASS(STAT_PASS_OTHER);
    int verdict = leave_to_conntrack(skb, &f);
    if (verdict >= 0) return verdict;
    if (decrement_ttl(skb, f.ttl) < 0) return PASS(STAT_PASS_OTHER);
    struct bpf_redir_neigh nh = { .nh_family = AF_INET, .ipv4_nh = p.ipv4_dst };
    count(STAT_TX_REMOTE_NEIGH, 0);
    return bpf_redirect_neigh(p.ifindex, &nh, sizeof(nh), 0);
  }
  return PASS(STAT_PASS_OTHER);
}

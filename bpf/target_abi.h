/* The ABI between the target-matching BPF programs (drop.bpf.c, classify.bpf.c, which share
 * target.bpf.h) and the daemon: the layout of their maps and config. */
#ifndef FAULTLINE_BPF_TARGET_ABI_H
#define FAULTLINE_BPF_TARGET_ABI_H

#include <linux/types.h>

/* Protocol mask bits in fl_target_config.protocols. */
#define FL_PROTO_TCP (1u << 0)
#define FL_PROTO_UDP (1u << 1)
#define FL_PROTO_ICMP (1u << 2) /* ICMP and ICMPv6 */
#define FL_PROTO_OTHER (1u << 3)
#define FL_PROTO_ALL (FL_PROTO_TCP | FL_PROTO_UDP | FL_PROTO_ICMP | FL_PROTO_OTHER)

/* fl_target_config.flags */
#define FL_MATCH_ANY_PEER (1u << 0) /* no peer list: every address matches */
#define FL_MATCH_PORTS (1u << 1)    /* only packets with a source or destination port in the port map */
/* The family's peer trie holds some of its peers (networks, and hosts too few for a host set):
 * an address that is not in the family's host set may still be there. Without it, the host set
 * alone decides. */
#define FL_MATCH_PEER_TRIE_V4 (1u << 2)
#define FL_MATCH_PEER_TRIE_V6 (1u << 3)
/* The family has a host set (below): without it, its slot is empty and not looked at. */
#define FL_MATCH_PEER_HOSTS_V4 (1u << 4)
#define FL_MATCH_PEER_HOSTS_V6 (1u << 5)

/* The most entries one LPM trie (a target's peers or exclusions of one family) takes. The tries are
 * not preallocated, so a program is loaded with this cap before anyone knows its target. */
#define FL_TRIE_MAX_ENTRIES (1u << 24)

/* One 64-bit word per 64 ports: bit (port % 64) of word (port / 64). */
#define FL_PORT_WORDS 1024

/* A drop threshold of 2^32 drops every matching packet; below it, the share threshold / 2^32. */
#define FL_DROP_ALL (1ull << 32)

/* The peer filter (fl_target_config.peer_filter) has 2^16 bits. The daemon hashes each family's first
 * N bits, N no more than the family's shortest peer prefix, so that every peer CIDR sets one bit,
 * the bit of all its addresses. N is the most bits, up to 32 (IPv4) or 64 (IPv6), at which the
 * family's peers hold at most FL_PEER_FILTER_MAX_PREFIXES prefixes: a few /32s are told apart from
 * their neighbours, and 100 000 consecutive /32s are cut to their /28s, which leaves most bits clear. */
#define FL_PEER_FILTER_SLOT_BITS 16
#define FL_PEER_FILTER_WORDS ((1u << FL_PEER_FILTER_SLOT_BITS) / 64)
#define FL_PEER_FILTER_MAX_BITS_V4 32
#define FL_PEER_FILTER_MAX_BITS_V6 64
#define FL_PEER_FILTER_MAX_PREFIXES (1u << (FL_PEER_FILTER_SLOT_BITS - 3))

/* The peer filter's slot for an address whose first 8 bytes, big-endian (IPv4's 4 in the high half),
 * are `head`: its first `bits` bits (0 to 64), XORed with its family (4 or 6), which keeps distinct
 * prefixes distinct, hashed by multiplication (Fibonacci hashing) and cut to the top
 * FL_PEER_FILTER_SLOT_BITS bits. The daemon and the programs both compute it with this function. */
static inline __u32 fl_peer_filter_slot(__u64 head, __u32 bits, __u32 family) {
  __u64 prefix = bits == 0 ? 0 : head & (~0ull << (64 - bits));
  return (__u32)(((prefix ^ family) * 0x9e3779b97f4a7c15ull) >> (64 - FL_PEER_FILTER_SLOT_BITS));
}

/* When a family has many peers that are one address (a /32 or a /128), they are kept apart from the
 * networks, in a hash set of their addresses: a lookup there costs the same among 100 000 hosts as
 * among ten, where the trie walks a node per bit the addresses share. The daemon creates each set at
 * the size of its target and puts it in slot 0 of the program's peer_hosts_v4 or _v6 (an array of
 * maps). Filling that slot waits for an RCU grace period (8 to 24 ms measured), so a family with
 * fewer hosts (kernel/target_maps.h) keeps them in its trie and leaves the slot empty. */
struct fl_host_v4 {
  __u8 addr[4];
};

struct fl_host_v6 {
  __u8 addr[16];
};

struct fl_lpm_v4 {
  __u32 prefixlen;
  __u8 addr[4];
};

struct fl_lpm_v6 {
  __u32 prefixlen;
  __u8 addr[16];
};

struct fl_target_config {
  __u64 deadline_ns;    /* CLOCK_MONOTONIC; at or after it no packet matches */
  __u64 drop_threshold; /* drop program: drop when bpf_get_prandom_u32() < drop_threshold */
  __u32 protocols;      /* FL_PROTO_* */
  __u32 flags;          /* FL_MATCH_* */
  __u32 classid;        /* fl_classify, fl_redirect: written to skb->priority (MAJOR:MINOR of a class) */
  /* The peer filter: an address's first peer_filter_bits_v4 (IPv4) or _v6 bits hash to one bit of
   * peer_filter (fl_peer_filter_slot), set when a peer CIDR holds addresses with those bits. A packet
   * whose bit is clear is no peer's: it is turned away without the host set and trie lookups, which
   * cost a packet on a live path more than everything else the program does (bench/datapath-cost). */
  __u8 peer_filter_bits_v4;
  __u8 peer_filter_bits_v6;
  __u64 peer_filter[FL_PEER_FILTER_WORDS];
};

/* fl_redirect's return values. It runs in a cls_bpf filter without direct action, where 0 means "not
 * this filter's packet" (the next filter runs) and any other value runs the filter's actions: the
 * mirred redirect to the ifb (cls_bpf_classify, net/sched/cls_bpf.c). */
#define FL_REDIRECT_SKIP 0
#define FL_REDIRECT_SELECT 1

/* The control-plane guard: TCP endpoints whose packets no program matches, so that an experiment
 * never cuts the connection that would revert it (the agent's listeners, its connected controllers).
 * One LPM trie, created by the daemon and shared by every program it loads. The key's data is the
 * family, the port and the address, in that order, so an entry for a port on every address of a
 * family is the same key cut after the port. */
struct fl_guard_key {
  __u32 prefixlen; /* bits of family, port and address that must match */
  __u8 family;     /* 4 or 6 */
  __u8 port[2];    /* network byte order */
  __u8 addr[16];   /* IPv4: the first 4 bytes, the rest 0 */
  __u8 unused;     /* 0: makes the key's size (24) explicit */
};

#define FL_GUARD_PREFIX_EVERY_ADDRESS 24 /* family and port */
#define FL_GUARD_PREFIX_V4 (24 + 32)
#define FL_GUARD_PREFIX_V6 (24 + 128)
#define FL_GUARD_MAX_ENTRIES 1024

enum fl_stat {
  FL_STAT_MATCHED = 0, /* every program: packets that matched the target */
  FL_STAT_DROPPED = 1, /* drop program: matched packets it dropped */
  FL_STAT_COUNT = 2,
};

#endif

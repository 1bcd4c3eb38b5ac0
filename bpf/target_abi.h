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

/* One 64-bit word per 64 ports: bit (port % 64) of word (port / 64). */
#define FL_PORT_WORDS 1024

/* A drop threshold of 2^32 drops every matching packet; below it, the share threshold / 2^32. */
#define FL_DROP_ALL (1ull << 32)

struct fl_lpm_v4 {
  __u32 prefixlen;
  __u8 addr[4];
};

struct fl_lpm_v6 {
  __u32 prefixlen;
  __u8 addr[16];
};

struct fl_target_config {
  __u64 deadline_ns;      /* CLOCK_MONOTONIC; at or after it no packet matches */
  __u64 drop_threshold;   /* drop program: drop when bpf_get_prandom_u32() < drop_threshold */
  __u32 protocols;        /* FL_PROTO_* */
  __u32 flags;            /* FL_MATCH_* */
  __u32 classid;          /* fl_classify: written to skb->tc_classid (the kernel keeps its minor) */
  __u32 redirect_ifindex; /* fl_redirect: the ifb device matching packets are sent to (its egress) */
};

enum fl_stat {
  FL_STAT_MATCHED = 0, /* every program: packets that matched the target */
  FL_STAT_DROPPED = 1, /* drop program: matched packets it dropped */
  FL_STAT_COUNT = 2,
};

#endif

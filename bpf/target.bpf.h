/* SPDX-License-Identifier: GPL-2.0 */
/* Target matching shared by the programs that act on some peers only (drop.bpf.c, classify.bpf.c):
 * the maps and config the daemon fills (layout in target_abi.h), packet parsing, and match().
 * Each program object includes it once and so gets its own maps: one instance per fault, but for
 * the control-plane guard's, which the daemon shares among all of them. */
#ifndef FAULTLINE_BPF_TARGET_BPF_H
#define FAULTLINE_BPF_TARGET_BPF_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

/* libbpf's headers use the kernel's types: after linux/bpf.h. */
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "target_abi.h"

/* Zero when loaded (a deadline of 0: nothing matches); the daemon writes it, through the mmapped
 * .bss, after load and before the program is attached. */
struct fl_target_config config = {};

/* Not preallocated: max_entries only caps a trie, which holds what the daemon puts in. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct fl_lpm_v4);
  __type(value, __u8);
  __uint(max_entries, FL_TRIE_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} peers_v4 SEC(".maps"), excluded_v4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct fl_lpm_v6);
  __type(value, __u8);
  __uint(max_entries, FL_TRIE_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} peers_v6 SEC(".maps"), excluded_v6 SEC(".maps");

/* A host set's slot (target_abi.h): the daemon creates the inner map at the target's size; this one
 * only describes it (max_entries does not have to match for a hash). Sizes, not types: clang's BTF
 * has only a declaration of a type that an inner map's definition alone refers to. */
#define HOST_SET(key_type)                      \
  struct {                                      \
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);   \
    __type(key, __u32);                         \
    __uint(max_entries, 1);                     \
    __array(                                    \
        values, struct {                        \
          __uint(type, BPF_MAP_TYPE_HASH);      \
          __uint(key_size, sizeof(key_type));   \
          __uint(value_size, sizeof(__u8));     \
          __uint(max_entries, 1);               \
          __uint(map_flags, BPF_F_NO_PREALLOC); \
        });                                     \
  }

HOST_SET(struct fl_host_v4) peer_hosts_v4 SEC(".maps");
HOST_SET(struct fl_host_v6) peer_hosts_v6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, FL_PORT_WORDS);
} ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __type(key, __u32);
  __type(value, __u64);
  __uint(max_entries, FL_STAT_COUNT);
} stats SEC(".maps");

/* The control-plane guard (target_abi.h). The daemon replaces this map with the one it shares among
 * all its programs (bpf_map__reuse_fd) before load; a program loaded without it gets this empty one. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __type(key, struct fl_guard_key);
  __type(value, __u8);
  __uint(max_entries, FL_GUARD_MAX_ENTRIES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
} guarded SEC(".maps");

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define MAX_IPV6_EXT_HEADERS 6

struct packet {
  __u8 family; /* 4 or 6 */
  __u8 l4proto;
  __u8 has_ports;
  __u8 is_ndp;
  __u16 sport;
  __u16 dport;
  __u8 src[16];
  __u8 dst[16];
};

/* How far into the frame a direct read may start: the verifier needs the offset bounded. A header
 * further in (past a long chain of IPv6 extension headers) is read through the helper. */
#define MAX_HEADER_OFFSET 1024

/* Copies the `len` bytes at `off` of the frame into `to`: straight from the packet when they are in
 * its linear part, as a device's headers nearly always are, and through bpf_skb_load_bytes, which
 * reads paged data too, when they are not. The helper call costs a packet more than the rest of the
 * parsing together (bench/datapath-cost). `len` is a constant at every call. Used for the IP headers
 * and the ports, which every packet has; IPv6 extension headers, rare, go through the helper alone:
 * each inlined copy grows the program, and the agent (libbpf) holds every fault's instructions. */
static __always_inline int load(struct __sk_buff *skb, __u32 off, void *to, const __u32 len) {
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  if (off <= MAX_HEADER_OFFSET) {
    void *from = data + off;
    if (from + len <= data_end) {
      __builtin_memcpy(to, from, len);
      return 0;
    }
  }
  return bpf_skb_load_bytes(skb, off, to, len);
}

static __always_inline int parse_ports(struct __sk_buff *skb, __u32 off, struct packet *p) {
  __be16 pair[2];
  if (p->l4proto != IPPROTO_TCP && p->l4proto != IPPROTO_UDP) return 0;
  if (load(skb, off, pair, sizeof(pair)) < 0) return -1;
  p->sport = bpf_ntohs(pair[0]);
  p->dport = bpf_ntohs(pair[1]);
  p->has_ports = 1;
  return 0;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, __u32 off, struct packet *p) {
  struct iphdr ip;
  if (load(skb, off, &ip, sizeof(ip)) < 0) return -1;
  p->family = 4;
  p->l4proto = ip.protocol;
  __builtin_memcpy(p->src, &ip.saddr, 4);
  __builtin_memcpy(p->dst, &ip.daddr, 4);
  /* Only the first fragment carries the transport header. */
  if (bpf_ntohs(ip.frag_off) & IP_OFFSET) return 0;
  return parse_ports(skb, off + ip.ihl * 4, p);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, __u32 off, struct packet *p) {
  struct ipv6hdr ip6;
  if (load(skb, off, &ip6, sizeof(ip6)) < 0) return -1;
  p->family = 6;
  __builtin_memcpy(p->src, &ip6.saddr, 16);
  __builtin_memcpy(p->dst, &ip6.daddr, 16);
  __u8 next = ip6.nexthdr;
  off += sizeof(ip6);
#pragma unroll
  for (int i = 0; i < MAX_IPV6_EXT_HEADERS; i++) {
    if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
      __u8 ext[2];
      if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0) return -1;
      next = ext[0];
      off += (ext[1] + 1) * 8;
    } else if (next == IPPROTO_FRAGMENT) {
      __u8 frag[4];
      if (bpf_skb_load_bytes(skb, off, frag, sizeof(frag)) < 0) return -1;
      next = frag[0];
      off += 8;
      /* Not the first fragment: no transport header follows. */
      if (((frag[2] << 8) | frag[3]) & 0xfff8) {
        p->l4proto = next;
        return 0;
      }
    } else {
      break;
    }
  }
  p->l4proto = next;
  if (next == IPPROTO_ICMPV6) {
    __u8 type;
    if (bpf_skb_load_bytes(skb, off, &type, 1) < 0) return -1;
    /* Router/neighbour solicitation and advertisement, redirect: IPv6's ARP, never faulted. */
    p->is_ndp = type >= 133 && type <= 137;
    return 0;
  }
  return parse_ports(skb, off, p);
}

static __always_inline __u32 protocol_bit(__u8 l4proto) {
  switch (l4proto) {
    case IPPROTO_TCP:
      return FL_PROTO_TCP;
    case IPPROTO_UDP:
      return FL_PROTO_UDP;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      return FL_PROTO_ICMP;
    default:
      return FL_PROTO_OTHER;
  }
}

static __always_inline int port_listed(__u16 port) {
  __u32 word = port / 64;
  __u64 *bits = bpf_map_lookup_elem(&ports, &word);
  return bits && (*bits & (1ull << (port % 64)));
}

/* Whether the peer filter (target_abi.h) lets `addr` through to the lookups: its bit is set when a peer
 * CIDR may hold it, and clear when none does. */
static __always_inline int peer_filter_passes(const struct packet *p, const __u8 *addr) {
  __u32 high, low = 0;
  __builtin_memcpy(&high, addr, 4);
  if (p->family == 6) __builtin_memcpy(&low, addr + 4, 4);
  __u64 head = ((__u64)bpf_ntohl(high) << 32) | bpf_ntohl(low);
  __u32 bits = p->family == 4 ? config.peer_filter_bits_v4 : config.peer_filter_bits_v6;
  __u32 slot = fl_peer_filter_slot(head, bits, p->family);
  return (config.peer_filter[slot / 64] >> (slot % 64)) & 1;
}

/* Whether `key` is in the host set in slot 0 of `hosts` (an array of maps); no set, no host. */
static __always_inline int host_listed(void *hosts, const void *key) {
  __u32 slot = 0;
  void *set = bpf_map_lookup_elem(hosts, &slot);
  return set && bpf_map_lookup_elem(set, key);
}

/* The peer list first and the exclusions after: a packet to an unlisted peer, the common case on a
 * busy interface, costs a host set lookup when the family has a host set and a trie lookup when its
 * trie holds peers; none when the peer filter turns it away. */
static __always_inline int peer_listed(const struct packet *p, const __u8 *addr) {
  const int any_peer = config.flags & FL_MATCH_ANY_PEER;
  if (!any_peer && !peer_filter_passes(p, addr)) return 0;
  if (p->family == 4) {
    struct fl_lpm_v4 key = {.prefixlen = 32};
    __builtin_memcpy(key.addr, addr, 4);
    if (!any_peer && !((config.flags & FL_MATCH_PEER_HOSTS_V4) && host_listed(&peer_hosts_v4, key.addr)) &&
        !((config.flags & FL_MATCH_PEER_TRIE_V4) && bpf_map_lookup_elem(&peers_v4, &key)))
      return 0;
    return !bpf_map_lookup_elem(&excluded_v4, &key);
  }
  struct fl_lpm_v6 key = {.prefixlen = 128};
  __builtin_memcpy(key.addr, addr, 16);
  if (!any_peer && !((config.flags & FL_MATCH_PEER_HOSTS_V6) && host_listed(&peer_hosts_v6, key.addr)) &&
      !((config.flags & FL_MATCH_PEER_TRIE_V6) && bpf_map_lookup_elem(&peers_v6, &key)))
    return 0;
  return !bpf_map_lookup_elem(&excluded_v6, &key);
}

/* Whether `addr`:`port` (host byte order) is a guarded endpoint: the exact address and port, or the
 * port on every address of the family. */
static __always_inline int endpoint_guarded(const struct packet *p, const __u8 *addr, __u16 port) {
  struct fl_guard_key key = {};
  key.prefixlen = p->family == 4 ? FL_GUARD_PREFIX_V4 : FL_GUARD_PREFIX_V6;
  key.family = p->family;
  key.port[0] = port >> 8;
  key.port[1] = port & 0xff;
  /* An IPv4 address fills the first 4 bytes; the packet struct starts zeroed, so the rest are 0. */
  __builtin_memcpy(key.addr, addr, 16);
  return bpf_map_lookup_elem(&guarded, &key) != 0;
}

static __always_inline void count(__u32 stat) {
  __u64 *value = bpf_map_lookup_elem(&stats, &stat);
  if (value) *value += 1;
}

/* Whether the packet belongs to the fault's target; the peer is its source (traffic from the peer,
 * as at ingress) or its destination (traffic to the peer, as at egress). */
static __always_inline int match(struct __sk_buff *skb, int peer_is_source) {
  struct packet p = {};
  int parsed;
  if (skb->protocol == bpf_htons(ETH_P_IP))
    parsed = parse_ipv4(skb, sizeof(struct ethhdr), &p);
  else if (skb->protocol == bpf_htons(ETH_P_IPV6))
    parsed = parse_ipv6(skb, sizeof(struct ethhdr), &p);
  else
    return 0; /* ARP and other non-IP traffic is never faulted */
  if (parsed < 0 || p.is_ndp) return 0;

  if (!(config.protocols & protocol_bit(p.l4proto))) return 0;
  if (!peer_listed(&p, peer_is_source ? p.src : p.dst)) return 0;
  if ((config.flags & FL_MATCH_PORTS) && !(p.has_ports && (port_listed(p.sport) || port_listed(p.dport))))
    return 0;
  /* The control channel is never faulted: no fault may cut the connection that would revert it. Its
   * packets carry a guarded endpoint as their source (from it) or destination (to it). Checked after
   * the tests above, which only narrow the match: the guard's two lookups are paid only by packets the
   * fault would act on. */
  if (p.l4proto == IPPROTO_TCP && p.has_ports &&
      (endpoint_guarded(&p, p.src, p.sport) || endpoint_guarded(&p, p.dst, p.dport)))
    return 0;
  /* The deadline ends the fault even when the daemon is hung or gone. Read last: on a VM the clock
   * (kvm-clock) costs about 80 ns a read, as much as everything above, and a packet the fault would
   * not act on has no use for it. */
  return bpf_ktime_get_ns() < config.deadline_ns;
}

#endif

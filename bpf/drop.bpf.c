// SPDX-License-Identifier: GPL-2.0
/* Partition and eBPF loss: drops the packets that match a target, on clsact egress or ingress.
 * A packet that is not dropped gets TC_ACT_UNSPEC, so the next filter on the hook (another fault)
 * still sees it, and the hook's default (pass) applies at the end of the chain. */
#include "target.bpf.h"

static __always_inline int decide(struct __sk_buff *skb, int egress) {
  /* Egress carries traffic to the peer, ingress traffic from it. */
  if (!match(skb, !egress)) return TC_ACT_UNSPEC;

  count(FL_STAT_MATCHED);
  if (config.drop_threshold < FL_DROP_ALL && bpf_get_prandom_u32() >= config.drop_threshold)
    return TC_ACT_UNSPEC;
  count(FL_STAT_DROPPED);
  /* STOLEN at egress: the sender sees success, as with a loss on the wire; SHOT would report
   * NET_XMIT_DROP (UDP gets ENOBUFS, TCP backs off as if congested). At ingress SHOT is silent. */
  return egress ? TC_ACT_STOLEN : TC_ACT_SHOT;
}

SEC("tc")
int fl_drop_egress(struct __sk_buff *skb) { return decide(skb, 1); }

SEC("tc")
int fl_drop_ingress(struct __sk_buff *skb) { return decide(skb, 0); }

char LICENSE[] SEC("license") = "GPL";

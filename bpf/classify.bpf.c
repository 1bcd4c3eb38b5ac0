// SPDX-License-Identifier: GPL-2.0
/* Shaping aimed at some peers (netem delay/loss, bandwidth): picks out the packets that match a
 * target, leaving the shaping itself to a classful qdisc. A packet that does not match gets
 * TC_ACT_UNSPEC, so the next fault's filter still sees it, and the qdisc's default class (unshaped)
 * takes it at the end of the chain. */
#include "target.bpf.h"

/* A direct-action cls_bpf filter on a classful root qdisc (htb, prio): sends a matching packet to the
 * fault's class. The kernel keeps only the minor of tc_classid (a u16 in qdisc_skb_cb); cls_bpf adds
 * the major of the filter's own classid (TCA_BPF_CLASSID), and prio reads the minor alone. */
SEC("tc")
int fl_classify(struct __sk_buff *skb) {
  if (!match(skb, config.flags & FL_PEER_IS_SOURCE))
    return TC_ACT_UNSPEC;
  count(FL_STAT_MATCHED);
  skb->tc_classid = config.classid;
  return TC_ACT_OK;
}

/* clsact ingress has no classes to shape in: a matching packet goes to the egress of an ifb device,
 * where fl_classify (with FL_PEER_IS_SOURCE) sorts it into the fault's class. */
SEC("tc")
int fl_redirect(struct __sk_buff *skb) {
  if (!match(skb, 1))
    return TC_ACT_UNSPEC;
  count(FL_STAT_MATCHED);
  return bpf_redirect(config.redirect_ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";

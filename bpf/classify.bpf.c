// SPDX-License-Identifier: GPL-2.0
/* Shaping aimed at some peers (netem delay/loss, bandwidth): picks out the packets that match a
 * target, leaving the shaping itself to a classful qdisc. A packet that does not match goes on to the
 * next fault's filter, and the qdisc's default class (unshaped) takes it at the end of the chain. */
#include "target.bpf.h"

/* On clsact egress: gives a matching packet the fault's class as its priority. htb and prio take a
 * packet whose skb->priority names one of their classes straight there, before any filter
 * (htb_classify, prio_classify), and the clsact hook runs before the root qdisc, so no classifier sits
 * on the root: tc_classid would not do, as the kernel keeps only its 16-bit minor. The verdict is
 * always TC_ACT_UNSPEC, so other faults' filters (a partition, say) still see the packet. */
SEC("tc")
int fl_classify(struct __sk_buff *skb) {
  if (match(skb, 0)) {
    count(FL_STAT_MATCHED);
    skb->priority = config.classid;
  }
  return TC_ACT_UNSPEC;
}

/* clsact ingress has no classes to shape in: the ifb device does. This program only selects: a
 * matching packet gets its priority set to the fault's class on the ifb, and FL_REDIRECT_SELECT makes
 * cls_bpf (attached without direct action) run the filter's mirred action, which redirects it to the
 * ifb's egress. Not bpf_redirect(): before 6.4 it does not mark the packet redirected, and ifb_xmit
 * drops packets that are not. Anything else gets FL_REDIRECT_SKIP, and the next filter sees it. */
SEC("tc")
int fl_redirect(struct __sk_buff *skb) {
  if (!match(skb, 1)) return FL_REDIRECT_SKIP;
  count(FL_STAT_MATCHED);
  skb->priority = config.classid;
  return FL_REDIRECT_SELECT;
}

char LICENSE[] SEC("license") = "GPL";

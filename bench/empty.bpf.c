// SPDX-License-Identifier: GPL-2.0
/* A tc program that does nothing: bench/datapath-cost's baseline for the kernel's per-run accounting
 * (kernel.bpf_stats_enabled reads the clock before and after every run). */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

/* libbpf's headers use the kernel's types: after linux/bpf.h. */
#include <bpf/bpf_helpers.h>

SEC("tc")
int fl_bench_empty(struct __sk_buff *skb) { return TC_ACT_UNSPEC; }

char LICENSE[] SEC("license") = "GPL";

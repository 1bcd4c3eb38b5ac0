// The capability probe: what the running kernel can do for faultline, found by asking the kernel to do
// it (create the qdisc, the link, load the program), never by reading its config.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "faultline/v1/agent.pb.h"

namespace faultline::kernel {

// Every feature the probe reports, in the order it reports them.
inline constexpr std::array<std::string_view, 12> kProbedFeatures = {
    "netem", "tbf", "htb", "prio", "fq", "ifb", "clsact", "cls_bpf", "mirred", "bpf", "btf", "cgroup2"};

struct KernelFeatures {
  std::string release;                           // uname -r
  std::vector<faultline::v1::Feature> features;  // one per kProbedFeatures entry, in that order

  // Whether the feature was found to work; false for names the probe does not know.
  bool Has(std::string_view name) const;
  // The feature with its detail (what was found, or why it is missing); nullptr for unknown names.
  const faultline::v1::Feature* Find(std::string_view name) const;
};

// Probes the running kernel. tc and link probes run in a private network namespace made for the probe
// and gone when it returns, so no interface of the agent or the host is ever touched. Takes a few
// milliseconds, never throws: a probe that cannot run reports its feature unavailable with the reason.
// libbpf's print callback is redirected while it runs and restored afterwards.
KernelFeatures ProbeKernelFeatures();

// Whether `path` is on a cgroup2 filesystem.
bool IsCgroup2(const std::string& path);
// The cgroup2 mount the agent sees: /sys/fs/cgroup on a unified host, else the first one in this
// mount namespace (hybrid hosts mount it at /sys/fs/cgroup/unified). Empty when there is none.
std::string FindCgroup2Mount();

}  // namespace faultline::kernel

#include "test_run.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "faultline/api/units.h"

namespace faultline::test {
namespace {

std::vector<api::Cidr> Cidrs(const std::vector<std::string>& texts) {
  std::vector<api::Cidr> cidrs;
  for (const std::string& text : texts) {
    absl::StatusOr<api::Cidr> cidr = api::ParseCidr(text);
    if (!cidr.ok()) {
      ADD_FAILURE() << "test bug: " << text << ": " << std::string(cidr.status().message());
      continue;
    }
    cidrs.push_back(*cidr);
  }
  return cidrs;
}

}  // namespace

std::optional<std::string> WhyNoBpf() {
  if (geteuid() != 0)
    return "needs root: loading sched_cls programs and running them needs CAP_BPF and CAP_NET_ADMIN";
  int supported = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SCHED_CLS, nullptr);
  if (supported == 0) return "this kernel cannot load BPF_PROG_TYPE_SCHED_CLS programs";
  if (supported < 0) return std::string("cannot probe the kernel for BPF: ") + std::strerror(-supported);
  return std::nullopt;
}

int RunProgram(int fd, const std::vector<uint8_t>& frame, uint32_t* priority) {
  __sk_buff context{};
  bpf_test_run_opts opts{};
  opts.sz = sizeof(opts);
  opts.data_in = frame.data();
  opts.data_size_in = static_cast<__u32>(frame.size());
  opts.repeat = 1;
  // The kernel copies skb->priority back out through ctx_out (bpf_prog_test_run_skb).
  opts.ctx_in = &context;
  opts.ctx_size_in = sizeof(context);
  opts.ctx_out = &context;
  opts.ctx_size_out = sizeof(context);
  if (bpf_prog_test_run_opts(fd, &opts) != 0) {
    ADD_FAILURE() << "bpf_prog_test_run_opts: " << std::strerror(errno);
    return kRunFailed;
  }
  if (priority != nullptr) *priority = context.priority;
  // The program's int return travels as a u32: TC_ACT_UNSPEC arrives as 0xffffffff.
  return static_cast<int>(opts.retval);
}

kernel::TargetSpec HourLong(const Target& target) {
  return {.peers = Cidrs(target.peers),
          .excluded = Cidrs(target.excluded),
          .ports = target.ports,
          .protocols = target.protocols,
          .deadline_ns = kernel::MonotonicNowNs() + 3600 * kSecondNs};
}

}  // namespace faultline::test

#include "test_run.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
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

int OpenMapOf(int program_fd, const std::string& map) {
  std::vector<__u32> ids(64);
  bpf_prog_info program{};
  program.nr_map_ids = static_cast<__u32>(ids.size());
  program.map_ids = reinterpret_cast<__u64>(ids.data());
  __u32 length = sizeof(program);
  if (bpf_obj_get_info_by_fd(program_fd, &program, &length) != 0) {
    ADD_FAILURE() << "bpf_obj_get_info_by_fd: " << std::strerror(errno);
    return -1;
  }
  ids.resize(std::min<size_t>(program.nr_map_ids, ids.size()));
  for (__u32 id : ids) {
    const int fd = bpf_map_get_fd_by_id(id);
    if (fd < 0) continue;
    bpf_map_info info{};
    __u32 info_length = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &info_length) == 0 && map == info.name) return fd;
    close(fd);
  }
  ADD_FAILURE() << "the program has no map " << map;
  return -1;
}

bool SlotHoldsMap(int program_fd, const std::string& map) {
  const int fd = OpenMapOf(program_fd, map);
  if (fd < 0) return false;
  const __u32 slot = 0;
  __u32 inner_id = 0;  // the syscall reads a map-in-map slot as the inner map's id
  const bool holds = bpf_map_lookup_elem(fd, &slot, &inner_id) == 0;
  close(fd);
  return holds;
}

kernel::TargetSpec HourLong(const Target& target) {
  return {.peers = Cidrs(target.peers),
          .excluded = Cidrs(target.excluded),
          .ports = target.ports,
          .protocols = target.protocols,
          .deadline_ns = kernel::MonotonicNowNs() + 3600 * kSecondNs};
}

}  // namespace faultline::test

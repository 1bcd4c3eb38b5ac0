// Running a loaded program on one crafted frame with bpf_prog_test_run_opts, and the targets the
// test cases load programs with. For BPF_PROG_TYPE_SCHED_CLS the kernel takes the frame from the
// Ethernet header and sets skb->protocol with eth_type_trans() (net/bpf/test_run.c), as a device's
// receive path does.
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kernel/target_maps.h"
#include "target_abi.h"

namespace faultline::test {

constexpr int kRunFailed = INT_MIN;  // the test run itself failed (already reported)
constexpr uint64_t kSecondNs = 1'000'000'000ull;

// Why the programs cannot run here, or nothing when they can.
std::optional<std::string> WhyNoBpf();

// The program's verdict on `frame`.
int RunProgram(int fd, const std::vector<uint8_t>& frame, uint32_t* priority = nullptr);

// A descriptor of `program_fd`'s map named `map` (the caller closes it), or -1 and a failure.
int OpenMapOf(int program_fd, const std::string& map);

// Whether slot 0 of `program_fd`'s array of maps named `map` holds a map (false, and a failure, when
// the program has no such map).
bool SlotHoldsMap(int program_fd, const std::string& map);

// A target as a user writes it.
struct Target {
  std::vector<std::string> peers{};
  std::vector<std::string> excluded{};
  std::vector<std::pair<uint16_t, uint16_t>> ports{};
  uint32_t protocols = FL_PROTO_ALL;
};

// `target` for a fault that lasts an hour.
kernel::TargetSpec HourLong(const Target& target);

}  // namespace faultline::test

// The drop program (bpf/drop.bpf.c): partition and eBPF loss. One instance per fault, with its own
// maps, so faults on one interface never see each other's targets.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "faultline/api/units.h"

struct drop;  // the bpftool skeleton

namespace faultline::kernel {

struct DropSpec {
  std::vector<api::Cidr> peers;                      // empty: every peer
  std::vector<api::Cidr> excluded;                   // never match, even inside `peers`
  std::vector<std::pair<uint16_t, uint16_t>> ports;  // inclusive ranges; empty: any port
  uint32_t protocols = 0;                            // FL_PROTO_* from bpf/drop_abi.h; 0 is refused
  double drop_percent = 100;                         // 100: partition
  uint64_t deadline_ns = 0;                          // CLOCK_MONOTONIC; from then on every packet passes
};

struct DropStats {
  uint64_t matched = 0;
  uint64_t dropped = 0;
};

class DropProgram {
 public:
  static absl::StatusOr<std::unique_ptr<DropProgram>> Load(const DropSpec& spec);
  ~DropProgram();
  DropProgram(const DropProgram&) = delete;
  DropProgram& operator=(const DropProgram&) = delete;

  int egress_fd() const;
  int ingress_fd() const;
  DropStats ReadStats() const;

 private:
  explicit DropProgram(drop* skeleton) : skeleton_(skeleton) {}
  drop* skeleton_;
};

// The kernel's CLOCK_MONOTONIC now, which is what bpf_ktime_get_ns() reads.
uint64_t MonotonicNowNs();

}  // namespace faultline::kernel

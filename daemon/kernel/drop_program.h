// The drop program (bpf/drop.bpf.c): partition and eBPF loss. One instance per fault, with its own
// maps, so faults on one interface never see each other's targets.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernel/target_maps.h"

struct drop;  // the bpftool skeleton

namespace faultline::kernel {

struct DropSpec {
  TargetSpec target;
  double drop_percent = 100;  // of the matching packets; 100: partition
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

}  // namespace faultline::kernel

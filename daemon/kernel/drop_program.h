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
  // An instance for `spec`: one the installed ProgramPool loaded ahead, or one loaded now.
  static absl::StatusOr<std::unique_ptr<DropProgram>> Load(const DropSpec& spec);
  // Loaded (both entry points verified) but matching nothing: its deadline is 0. What the pool keeps.
  static absl::StatusOr<std::unique_ptr<DropProgram>> Preload();
  ~DropProgram();
  DropProgram(const DropProgram&) = delete;
  DropProgram& operator=(const DropProgram&) = delete;

  int egress_fd() const;
  int ingress_fd() const;
  DropStats ReadStats() const;
  // Both entry points match nothing from now on (kernel::Disarm), attached or not.
  void Disarm();

 private:
  explicit DropProgram(drop* skeleton) : skeleton_(skeleton) {}
  absl::Status Configure(const DropSpec& spec);
  drop* skeleton_;
};

}  // namespace faultline::kernel

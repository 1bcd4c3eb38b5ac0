// cpu and memory faults: a stress worker process (stress/worker.h) per fault, started as a journaled
// child of the agent (kernel::WorkerProcess). Applying checks what the worker cannot: that listed CPUs
// are online, that the cgroup is a cgroup2 directory with the controller the fault needs, and that a
// memory fault leaves at least the floor of MemAvailable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "faults/fault.h"

namespace faultline::faults {

struct StressOptions {
  uint64_t memory_floor_bytes = 256ull << 20;  // --memory-floor
};

class StressDriver : public FaultDriver {
 public:
  explicit StressDriver(StressOptions options);
  static bool Handles(const faultline::v1::Fault& fault);
  absl::StatusOr<std::unique_ptr<ActiveFault>> Apply(const faultline::v1::Fault& fault,
                                                     const ApplyContext& context) override;

 private:
  // The fault as the worker gets it: its cgroup resolved to a path, a memory size in bytes.
  absl::StatusOr<faultline::v1::Fault> Resolve(const faultline::v1::Fault& fault) const;
  StressOptions options_;
  // The agent's binary, which runs the workers: executed as /proc/self/exe (the file the agent was
  // started from, even if an upgrade replaced it since), shown in `ps` under its path.
  std::string self_path_;
};

}  // namespace faultline::faults

// What every fault driver provides: apply a fault, and an object whose destruction undoes it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "faultline/v1/agent.pb.h"

namespace faultline::faults {

// A fault in force. Destroying it undoes every kernel change it made.
class ActiveFault {
 public:
  virtual ~ActiveFault() = default;
  // Ends the fault's effect on traffic at once, where one store can (its programs match nothing from
  // then on), before the slower removal of its kernel objects: a revert's first step. The default
  // does nothing: the destructor ends the fault.
  virtual void Disarm() {}
  // The kernel objects that carry the fault, in words an operator can find with tc or bpftool.
  virtual std::vector<std::string> KernelObjects() const = 0;
  // Live counters, when the fault has them.
  virtual void FillStatus(faultline::v1::AppliedFault& status) const = 0;
};

struct ApplyContext {
  uint64_t deadline_ns = 0;  // CLOCK_MONOTONIC: the fault's programs stop acting on their own then
  // The experiment being applied and the fault's place in it, for faults that compose with their
  // siblings (delay and loss to the same peers share one netem qdisc).
  const faultline::v1::Experiment* experiment = nullptr;
  int index = 0;
};

class FaultDriver {
 public:
  virtual ~FaultDriver() = default;
  virtual absl::StatusOr<std::unique_ptr<ActiveFault>> Apply(const faultline::v1::Fault& fault,
                                                             const ApplyContext& context) = 0;
};

}  // namespace faultline::faults

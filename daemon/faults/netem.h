// netem faults (delay, netem loss, duplicate, corrupt, reorder) and bandwidth limits, on the egress
// of the target interface, for all of its packets or only those of a target's peers, ports and
// protocol. Faults of one experiment with the same target share one netem qdisc.
#pragma once

#include "faults/fault.h"
#include "kernel/capabilities.h"

namespace faultline::faults {

class NetemDriver : public FaultDriver {
 public:
  explicit NetemDriver(const kernel::KernelFeatures& features) : features_(features) {}
  absl::StatusOr<std::unique_ptr<ActiveFault>> Apply(const faultline::v1::Fault& fault,
                                                     const ApplyContext& context) override;
  // Whether this driver applies `fault`.
  static bool Handles(const faultline::v1::Fault& fault);

 private:
  const kernel::KernelFeatures& features_;
};

}  // namespace faultline::faults

#include "faults/drivers.h"

namespace faultline::faults {

using faultline::v1::Fault;

absl::StatusOr<std::unique_ptr<ActiveFault>> FaultDrivers::Apply(const Fault& fault,
                                                                 const ApplyContext& context) {
  if (StressDriver::Handles(fault)) return stress_.Apply(fault, context);
  if (NetemDriver::Handles(fault)) return netem_.Apply(fault, context);
  return drop_.Apply(fault, context);
}

std::vector<std::string> FaultDrivers::Implemented() {
  return {"partition", "loss", "delay", "duplicate", "corrupt", "reorder", "bandwidth", "cpu", "memory"};
}

}  // namespace faultline::faults

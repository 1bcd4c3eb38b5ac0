#include "faults/drivers.h"

#include "faultline/api/cat.h"
#include "faultline/api/validate.h"

namespace faultline::faults {

using faultline::v1::Fault;

absl::Status FaultDrivers::Supports(const Fault& fault) const {
  if (fault.kind_case() == Fault::kCpu || fault.kind_case() == Fault::kMemory) {
    return absl::UnimplementedError(
        api::Cat(api::FaultKindName(fault),
                 " faults are not implemented by this agent yet; it applies network "
                 "faults (partition, loss, delay, duplicate, corrupt, reorder, bandwidth)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ActiveFault>> FaultDrivers::Apply(const Fault& fault,
                                                                 const ApplyContext& context) {
  if (absl::Status s = Supports(fault); !s.ok()) return s;
  if (NetemDriver::Handles(fault)) return netem_.Apply(fault, context);
  return drop_.Apply(fault, context);
}

std::vector<std::string> FaultDrivers::Implemented() {
  return {"partition", "loss", "delay", "duplicate", "corrupt", "reorder", "bandwidth"};
}

}  // namespace faultline::faults

#include "faults/drivers.h"

#include "faultline/api/cat.h"
#include "faultline/api/validate.h"

namespace faultline::faults {

using faultline::v1::Fault;
using faultline::v1::Loss;

absl::Status FaultDrivers::Supports(const Fault& fault) const {
  switch (fault.kind_case()) {
    case Fault::kPartition:
      return absl::OkStatus();
    case Fault::kLoss:
      if (fault.loss().model() == Loss::MODEL_UNSPECIFIED || fault.loss().model() == Loss::MODEL_EBPF) {
        return absl::OkStatus();
      }
      return absl::UnimplementedError(
          api::Cat("loss model ", Loss::Model_Name(fault.loss().model()),
                   " is not implemented by this agent yet (netem faults are planned); use model MODEL_EBPF"));
    default:
      return absl::UnimplementedError(api::Cat(api::FaultKindName(fault),
                                               " faults are not implemented by this agent yet; it applies ",
                                               "partition and loss"));
  }
}

absl::StatusOr<std::unique_ptr<ActiveFault>> FaultDrivers::Apply(const Fault& fault,
                                                                 const ApplyContext& context) {
  if (absl::Status s = Supports(fault); !s.ok()) return s;
  return drop_.Apply(fault, context);
}

std::vector<std::string> FaultDrivers::Implemented() { return {"partition", "loss (model ebpf)"}; }

}  // namespace faultline::faults

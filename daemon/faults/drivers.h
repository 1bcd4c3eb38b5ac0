// Which driver applies which fault kind, and which kinds this agent cannot apply yet.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "faults/drop.h"
#include "faults/fault.h"
#include "faults/netem.h"

namespace faultline::faults {

class FaultDrivers {
 public:
  explicit FaultDrivers(const kernel::KernelFeatures& features) : drop_(features), netem_(features) {}

  // UNIMPLEMENTED, with what is missing, for a fault kind or model no driver applies yet.
  absl::Status Supports(const faultline::v1::Fault& fault) const;
  absl::StatusOr<std::unique_ptr<ActiveFault>> Apply(const faultline::v1::Fault& fault,
                                                     const ApplyContext& context);
  // For Capabilities: "partition", "loss", "delay", ...
  static std::vector<std::string> Implemented();

 private:
  DropDriver drop_;
  NetemDriver netem_;
};

}  // namespace faultline::faults

// Which driver applies which fault kind.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "faults/drop.h"
#include "faults/fault.h"
#include "faults/netem.h"
#include "faults/stress.h"

namespace faultline::faults {

class FaultDrivers {
 public:
  FaultDrivers(const kernel::KernelFeatures& features, StressOptions stress)
      : drop_(features), netem_(features), stress_(std::move(stress)) {}

  absl::StatusOr<std::unique_ptr<ActiveFault>> Apply(const faultline::v1::Fault& fault,
                                                     const ApplyContext& context);
  // For Capabilities: "partition", "loss", "delay", ...
  static std::vector<std::string> Implemented();

 private:
  DropDriver drop_;
  NetemDriver netem_;
  StressDriver stress_;
};

}  // namespace faultline::faults

// Partition and eBPF loss: the drop program on the target interface's clsact hooks.
#pragma once

#include "faults/fault.h"
#include "kernel/capabilities.h"

namespace faultline::faults {

class DropDriver : public FaultDriver {
 public:
  explicit DropDriver(const kernel::KernelFeatures& features) : features_(features) {}
  absl::StatusOr<std::unique_ptr<ActiveFault>> Apply(const faultline::v1::Fault& fault,
                                                     const ApplyContext& context) override;

 private:
  const kernel::KernelFeatures& features_;
};

}  // namespace faultline::faults

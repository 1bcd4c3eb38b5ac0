#include "faults/drop.h"

#include "faultline/api/cat.h"
#include "faultline/api/validate.h"
#include "faults/target.h"
#include "kernel/drop_program.h"
#include "kernel/tc.h"
#include "target_abi.h"

namespace faultline::faults {
namespace {

using api::Cat;
using faultline::v1::Fault;
using faultline::v1::Target;

class ActiveDrop : public ActiveFault {
 public:
  ActiveDrop(std::shared_ptr<kernel::ClsactHook> hook, std::unique_ptr<kernel::DropProgram> program)
      : hook_(std::move(hook)), program_(std::move(program)) {}

  absl::Status Attach(kernel::Hook direction, int program_fd) {
    auto filter = kernel::TcFilter::Attach(hook_, direction, program_fd);
    if (!filter.ok()) return filter.status();
    filters_.push_back(std::move(*filter));
    return absl::OkStatus();
  }

  void Disarm() override { program_->Disarm(); }

  std::vector<std::string> KernelObjects() const override {
    std::vector<std::string> objects;
    if (hook_->created())
      objects.push_back(Cat("clsact qdisc on ", hook_->interface(), " in ", hook_->netns().Describe()));
    for (const auto& filter : filters_) objects.push_back(filter->Describe());
    return objects;
  }

  void FillStatus(faultline::v1::AppliedFault& status) const override {
    kernel::DropStats stats = program_->ReadStats();
    status.set_packets_matched(stats.matched);
    status.set_packets_dropped(stats.dropped);
  }

 private:
  // Destroyed in reverse order: filters first, then the program they run, then (maybe) the clsact.
  std::shared_ptr<kernel::ClsactHook> hook_;
  std::unique_ptr<kernel::DropProgram> program_;
  std::vector<std::unique_ptr<kernel::TcFilter>> filters_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ActiveFault>> DropDriver::Apply(const Fault& fault,
                                                               const ApplyContext& context) {
  std::vector<std::string> missing;
  for (const char* feature : {"bpf", "clsact", "cls_bpf"}) {
    if (!features_.Has(feature)) missing.push_back(feature);
  }
  if (!missing.empty()) {
    std::string list;
    for (const auto& name : missing) list += (list.empty() ? "" : ", ") + name;
    return absl::FailedPreconditionError(
        Cat(api::FaultKindName(fault), " needs bpf, clsact and cls_bpf; this kernel lacks ", list));
  }
  const Target& target = fault.target();
  kernel::DropSpec spec;
  spec.target = TargetSpecOf(target, context.deadline_ns);
  spec.drop_percent = fault.has_loss() ? fault.loss().percent() : 100.0;

  auto netns = kernel::Netns::Open(TargetNetnsPath(target));
  if (!netns.ok()) return netns.status();
  auto hook = kernel::ClsactHook::Acquire(*netns, target.interface());
  if (!hook.ok()) return hook.status();
  // The drop program parses from an Ethernet header on; on other links it would misread every packet.
  if (!(*hook)->ethernet()) {
    return absl::FailedPreconditionError(Cat(
        "interface ", target.interface(), " in ", (*netns)->Describe(),
        ": not an Ethernet interface; partition and loss support Ethernet-type links (veth, physical NICs)"));
  }
  auto program = kernel::DropProgram::Load(spec);
  if (!program.ok()) return program.status();

  int egress_fd = (*program)->egress_fd();
  int ingress_fd = (*program)->ingress_fd();
  auto active = std::make_unique<ActiveDrop>(*hook, std::move(*program));
  auto direction = target.direction();
  if (direction != faultline::v1::DIRECTION_INGRESS) {
    if (auto s = active->Attach(kernel::Hook::kEgress, egress_fd); !s.ok()) return s;
  }
  if (direction != faultline::v1::DIRECTION_EGRESS) {
    if (auto s = active->Attach(kernel::Hook::kIngress, ingress_fd); !s.ok()) return s;
  }
  return active;
}

}  // namespace faultline::faults

#include "faults/netem.h"

#include "faultline/api/cat.h"
#include "faultline/api/validate.h"
#include "faults/composition.h"
#include "faults/shaping.h"
#include "faults/target.h"
#include "kernel/classify_program.h"
#include "kernel/tc.h"

namespace faultline::faults {
namespace {

using api::Cat;
using faultline::v1::Fault;

// netem keeps order under jitter when it has a rate: each packet is then sent no earlier than the one
// before it (netem_enqueue). A rate no link reaches keeps the order and shapes nothing else.
constexpr uint64_t kOrderKeepingRate = 12'500'000'000ull;  // 100 Gbit/s

uint64_t Nanos(const google::protobuf::Duration& d) {
  return static_cast<uint64_t>(d.seconds()) * 1'000'000'000ull + static_cast<uint64_t>(d.nanos());
}

kernel::DelayDistribution Distribution(v1::Delay::Distribution distribution) {
  switch (distribution) {
    case v1::Delay::DISTRIBUTION_NORMAL:
      return kernel::DelayDistribution::kNormal;
    case v1::Delay::DISTRIBUTION_PARETO:
      return kernel::DelayDistribution::kPareto;
    case v1::Delay::DISTRIBUTION_PARETONORMAL:
      return kernel::DelayDistribution::kParetoNormal;
    default:
      return kernel::DelayDistribution::kUniform;
  }
}

bool UsesNetem(const Fault& fault) {
  return fault.has_delay() || fault.has_duplicate() || fault.has_corrupt() || fault.has_reorder() ||
         (fault.has_loss() && fault.loss().model() != v1::Loss::MODEL_UNSPECIFIED &&
          fault.loss().model() != v1::Loss::MODEL_EBPF) ||
         (fault.has_bandwidth() && fault.bandwidth().shaper() == v1::Bandwidth::SHAPER_NETEM);
}

// Adds one fault's part to a class's shaping; refuses a second fault setting the same thing.
absl::Status Merge(const Fault& fault, Shaping& shaping, std::vector<std::string>& set_by, int index) {
  auto claim = [&](const std::string& what) -> absl::Status {
    for (const std::string& entry : set_by) {
      if (entry.starts_with(what + "=")) {
        return absl::InvalidArgumentError(Cat("faults[", index, "] and ", entry.substr(what.size() + 1),
                                              " both set ", what,
                                              " for the same packets; only one can hold"));
      }
    }
    set_by.push_back(Cat(what, "=faults[", index, "]"));
    return absl::OkStatus();
  };
  auto netem = [&shaping]() -> kernel::NetemParams& {
    if (!shaping.netem) shaping.netem.emplace();
    return *shaping.netem;
  };
  switch (fault.kind_case()) {
    case Fault::kDelay: {
      if (auto s = claim("delay"); !s.ok()) return s;
      const auto& delay = fault.delay();
      netem().latency_ns = Nanos(delay.latency());
      netem().jitter_ns = Nanos(delay.jitter());
      netem().delay_correlation = delay.correlation();
      netem().distribution = Distribution(delay.distribution());
      if (delay.keep_order() && netem().rate_bytes_per_second == 0)
        netem().rate_bytes_per_second = kOrderKeepingRate;
      return absl::OkStatus();
    }
    case Fault::kLoss: {
      if (auto s = claim("loss"); !s.ok()) return s;
      const auto& loss = fault.loss();
      if (loss.model() == v1::Loss::MODEL_GILBERT_ELLIOTT) {
        const auto& ge = loss.gilbert_elliott();
        netem().gilbert_elliott = kernel::GilbertElliott{ge.p(), ge.r(), 100 - ge.h(), ge.k()};
      } else {
        netem().loss_percent = loss.percent();
        netem().loss_correlation = loss.correlation();
      }
      return absl::OkStatus();
    }
    case Fault::kDuplicate:
      if (auto s = claim("duplicate"); !s.ok()) return s;
      netem().duplicate_percent = fault.duplicate().percent();
      netem().duplicate_correlation = fault.duplicate().correlation();
      return absl::OkStatus();
    case Fault::kCorrupt:
      if (auto s = claim("corrupt"); !s.ok()) return s;
      netem().corrupt_percent = fault.corrupt().percent();
      netem().corrupt_correlation = fault.corrupt().correlation();
      return absl::OkStatus();
    case Fault::kReorder:
      if (auto s = claim("reorder"); !s.ok()) return s;
      netem().reorder_percent = fault.reorder().percent();
      netem().reorder_correlation = fault.reorder().correlation();
      netem().gap = fault.reorder().gap();
      return absl::OkStatus();
    case Fault::kBandwidth: {
      if (auto s = claim("bandwidth"); !s.ok()) return s;
      const auto& bandwidth = fault.bandwidth();
      uint64_t bytes_per_second = bandwidth.rate_bits_per_second() / 8;
      if (bandwidth.shaper() == v1::Bandwidth::SHAPER_NETEM) {
        netem().rate_bytes_per_second = bytes_per_second;
        return absl::OkStatus();
      }
      kernel::TbfParams tbf;
      tbf.rate_bytes_per_second = bytes_per_second;
      // tbf needs a bucket of at least one packet per timer tick; 10 ms worth, one full frame at least.
      tbf.burst_bytes = bandwidth.burst_bytes() != 0
                            ? bandwidth.burst_bytes()
                            : static_cast<uint32_t>(std::max<uint64_t>(bytes_per_second / 100, 3028));
      uint64_t latency_ns =
          bandwidth.has_latency() ? Nanos(bandwidth.latency()) : 50'000'000;  // tc's usual 50 ms
      tbf.limit_bytes =
          bandwidth.limit_bytes() != 0
              ? bandwidth.limit_bytes()
              : static_cast<uint32_t>(std::min<uint64_t>(
                    bytes_per_second * latency_ns / 1'000'000'000ull + tbf.burst_bytes, UINT32_MAX));
      shaping.bandwidth = tbf;
      return absl::OkStatus();
    }
    default:
      return absl::InternalError(
          Cat("faults[", index, "]: ", api::FaultKindName(fault), " is not a shaping fault"));
  }
}

// A fault whose shaping another fault of its experiment carries (same target: one class, one netem).
class MergedFault : public ActiveFault {
 public:
  explicit MergedFault(int carrier) : carrier_(carrier) {}
  std::vector<std::string> KernelObjects() const override {
    return {Cat("shaped together with faults[", carrier_, "], in its class")};
  }
  void FillStatus(v1::AppliedFault&) const override {}

 private:
  int carrier_;
};

// Where faultline's redirect filters sit on clsact ingress: above the priorities the kernel picks
// (49152 and down), so a partition's drop filter always sees a packet before it is redirected.
constexpr uint32_t kRedirectPriority = 60000;

class ActiveShaping : public ActiveFault {
 public:
  // One direction of the fault: a class on a shaped device, and the program and filter feeding it.
  struct Side {
    std::unique_ptr<ShapedClass> shaped_class;
    std::unique_ptr<kernel::ClassifyProgram> program;
    std::unique_ptr<kernel::TcFilter> filter;  // destroyed first: no packet reaches a class being removed
  };

  // New packets go to the device's default (unshaped) class; those already queued in the fault's
  // class still leave at its pace.
  void Disarm() override {
    for (Side& side : sides) side.program->Disarm();
  }

  std::vector<std::string> KernelObjects() const override {
    std::vector<std::string> objects;
    for (const Side& side : sides) {
      for (auto& object : side.shaped_class->KernelObjects()) objects.push_back(std::move(object));
      objects.push_back(side.filter->Describe());
    }
    return objects;
  }
  void FillStatus(v1::AppliedFault& status) const override {
    uint64_t matched = 0;
    for (const Side& side : sides) matched += side.program->ReadStats().matched;
    status.set_packets_matched(matched);
  }

  std::shared_ptr<kernel::ClsactHook> hook;  // destroyed last
  std::vector<Side> sides;
};

}  // namespace

bool NetemDriver::Handles(const Fault& fault) { return UsesNetem(fault) || fault.has_bandwidth(); }

absl::StatusOr<std::unique_ptr<ActiveFault>> NetemDriver::Apply(const Fault& fault,
                                                                const ApplyContext& context) {
  const v1::Experiment& experiment = *context.experiment;
  // The first shaping fault with this target carries every later one with the same target.
  for (int i = 0; i < context.index; i++) {
    if (Handles(experiment.faults(i)) && SameTarget(experiment.faults(i).target(), fault.target())) {
      return std::make_unique<MergedFault>(i);
    }
  }
  Shaping shaping;
  std::vector<std::string> set_by;
  bool needs_netem = false;
  for (int i = context.index; i < experiment.faults_size(); i++) {
    const Fault& sibling = experiment.faults(i);
    if (i != context.index && !(Handles(sibling) && SameTarget(sibling.target(), fault.target()))) continue;
    needs_netem |= UsesNetem(sibling);
    if (auto s = Merge(sibling, shaping, set_by, i); !s.ok()) return s;
  }
  std::vector<std::string> missing;
  for (const char* feature : {"bpf", "clsact"}) {
    if (!features_.Has(feature)) missing.push_back(feature);
  }
  if (needs_netem && !features_.Has("netem")) missing.push_back("netem");
  if (!features_.Has("prio") && !features_.Has("htb")) missing.push_back("htb or prio");
  if (!missing.empty()) {
    std::string list;
    for (const auto& name : missing) list += (list.empty() ? "" : ", ") + name;
    return absl::FailedPreconditionError(
        Cat(api::FaultKindName(fault), " needs ", list, ", which this kernel lacks (see faultctl caps)"));
  }
  const v1::Target& target = fault.target();
  kernel::TargetSpec spec = TargetSpecOf(target, context.deadline_ns);
  auto netns = kernel::Netns::Open(TargetNetnsPath(target));
  if (!netns.ok()) return netns.status();
  auto active = std::make_unique<ActiveShaping>();
  auto hook = kernel::ClsactHook::Acquire(*netns, target.interface());
  if (!hook.ok()) return hook.status();
  active->hook = *hook;
  if (!active->hook->ethernet()) {
    return absl::FailedPreconditionError(
        Cat("interface ", target.interface(), " in ", (*netns)->Describe(),
            ": not an Ethernet interface; shaping faults support Ethernet-type "
            "links (veth, physical NICs)"));
  }
  for (kernel::Hook side : {kernel::Hook::kEgress, kernel::Hook::kIngress}) {
    bool wanted = side == kernel::Hook::kEgress ? target.direction() != v1::DIRECTION_INGRESS
                                                : target.direction() != v1::DIRECTION_EGRESS;
    if (!wanted) continue;
    if (side == kernel::Hook::kIngress) {
      std::string lacking;
      for (const char* feature : {"ifb", "mirred"}) {
        if (!features_.Has(feature)) lacking += Cat(lacking.empty() ? "" : " and ", feature);
      }
      if (!lacking.empty()) {
        return absl::FailedPreconditionError(Cat(api::FaultKindName(fault),
                                                 " at ingress needs ifb and mirred; this kernel lacks ",
                                                 lacking, " (see faultctl caps)"));
      }
    }
    auto device = side == kernel::Hook::kEgress
                      ? ShapedDevice::Acquire(*netns, target.interface(), features_)
                      : ShapedDevice::AcquireIngress(*netns, target.interface(), features_);
    if (!device.ok()) return device.status();
    ActiveShaping::Side& applied = active->sides.emplace_back();
    auto shaped_class = (*device)->AddClass(shaping);
    if (!shaped_class.ok()) return shaped_class.status();
    applied.shaped_class = *std::move(shaped_class);
    uint32_t classid = applied.shaped_class->classid();
    auto program = side == kernel::Hook::kEgress ? kernel::ClassifyProgram::LoadClassifier(spec, classid)
                                                 : kernel::ClassifyProgram::LoadRedirect(spec, classid);
    if (!program.ok()) return program.status();
    applied.program = *std::move(program);
    auto filter = side == kernel::Hook::kEgress
                      ? kernel::TcFilter::Attach(active->hook, side, applied.program->fd())
                      : kernel::TcFilter::AttachRedirect(active->hook, applied.program->fd(),
                                                         kRedirectPriority + (classid & 0xffff),
                                                         (*device)->ifb_ifindex());
    if (!filter.ok()) return filter.status();
    applied.filter = *std::move(filter);
  }
  return active;
}

}  // namespace faultline::faults

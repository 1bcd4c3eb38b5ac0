#include "kernel/classify_program.h"

#include <bpf/libbpf.h>
#include <linux/pkt_sched.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <ios>

#include "faultline/api/cat.h"
#include "target_abi.h"

// The skeleton uses the ABI's types, so it comes after target_abi.h.
#include "classify.skel.h"

namespace faultline::kernel {
namespace {

using api::Cat;

using Skeleton = std::unique_ptr<classify, void (*)(classify*)>;

// The skeleton holds both programs; an instance plays one role.
enum class Role { kClassify, kRedirect };

bpf_program* ProgramOf(const classify& skeleton, Role role) {
  return role == Role::kClassify ? skeleton.progs.fl_classify : skeleton.progs.fl_redirect;
}

// Opens the skeleton, loads only the program of `role` (the other would be a second verified copy of
// the matching code, never attached) and fills the target; `configure` writes the role's config fields.
absl::StatusOr<Skeleton> Load(const char* name, const TargetSpec& target, Role role,
                              const std::function<void(fl_target_config&)>& configure) {
  Skeleton skeleton(classify::open(), classify::destroy);
  if (skeleton == nullptr) return absl::InternalError(Cat(name, ": cannot open: ", std::strerror(errno)));
  for (Role each : {Role::kClassify, Role::kRedirect}) {
    bpf_program__set_autoload(ProgramOf(*skeleton, each), each == role);
  }
  const TargetMaps maps = TargetMapsOf(*skeleton);
  fl_target_config& config = skeleton->bss->config;
  if (auto s = PrepareTarget(name, target, maps, config); !s.ok()) return s;
  configure(config);
  if (int err = classify::load(skeleton.get()); err != 0) {
    return absl::FailedPreconditionError(Cat(name, ": the kernel refused to load it: ", std::strerror(-err)));
  }
  if (auto s = FillTarget(name, target, maps); !s.ok()) return s;
  return skeleton;
}

// A priority of MAJOR:0 names the qdisc itself: htb would send the packet out unshaped (HTB_DIRECT).
absl::Status CheckClassid(const char* name, uint32_t classid) {
  if (TC_H_MIN(classid) != 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      Cat(name, ": classid 0x", std::hex, classid, " has minor 0, which names the qdisc, not a class"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClassifyProgram>> ClassifyProgram::LoadClassifier(const TargetSpec& target,
                                                                                 uint32_t classid) {
  constexpr const char* kName = "classify program";
  if (auto s = CheckClassid(kName, classid); !s.ok()) return s;
  auto skeleton =
      Load(kName, target, Role::kClassify, [&](fl_target_config& config) { config.classid = classid; });
  if (!skeleton.ok()) return skeleton.status();
  bpf_program* program = ProgramOf(**skeleton, Role::kClassify);
  return std::unique_ptr<ClassifyProgram>(new ClassifyProgram(skeleton->release(), program));
}

absl::StatusOr<std::unique_ptr<ClassifyProgram>> ClassifyProgram::LoadRedirect(const TargetSpec& target,
                                                                               uint32_t classid) {
  constexpr const char* kName = "redirect program";
  if (auto s = CheckClassid(kName, classid); !s.ok()) return s;
  auto skeleton =
      Load(kName, target, Role::kRedirect, [&](fl_target_config& config) { config.classid = classid; });
  if (!skeleton.ok()) return skeleton.status();
  bpf_program* program = ProgramOf(**skeleton, Role::kRedirect);
  return std::unique_ptr<ClassifyProgram>(new ClassifyProgram(skeleton->release(), program));
}

ClassifyProgram::~ClassifyProgram() { classify::destroy(skeleton_); }

int ClassifyProgram::fd() const { return bpf_program__fd(program_); }

ClassifyStats ClassifyProgram::ReadStats() const {
  return {.matched = ReadStat(TargetMapsOf(*skeleton_), FL_STAT_MATCHED)};
}

}  // namespace faultline::kernel

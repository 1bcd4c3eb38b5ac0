#include "kernel/classify_program.h"

#include <bpf/libbpf.h>
#include <linux/pkt_sched.h>

#include <cerrno>
#include <cstring>
#include <ios>

#include "faultline/api/cat.h"
#include "kernel/program_pool.h"
#include "target_abi.h"

// The skeleton uses the ABI's types, so it comes after target_abi.h.
#include "classify.skel.h"

namespace faultline::kernel {
namespace {

using api::Cat;

using Role = ClassifyProgram::Role;

bpf_program* ProgramOf(const classify& skeleton, Role role) {
  return role == Role::kClassifier ? skeleton.progs.fl_classify : skeleton.progs.fl_redirect;
}

const char* NameOf(Role role) { return role == Role::kClassifier ? "classify program" : "redirect program"; }

// A priority of MAJOR:0 names the qdisc itself: htb would send the packet out unshaped (HTB_DIRECT).
absl::Status CheckClassid(const char* name, uint32_t classid) {
  if (TC_H_MIN(classid) != 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      Cat(name, ": classid 0x", std::hex, classid, " has minor 0, which names the qdisc, not a class"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ClassifyProgram>> ClassifyProgram::Preload(Role role) {
  const char* name = NameOf(role);
  classify* skeleton = classify::open();
  if (skeleton == nullptr) return absl::InternalError(Cat(name, ": cannot open: ", std::strerror(errno)));
  auto program = std::unique_ptr<ClassifyProgram>(new ClassifyProgram(skeleton, ProgramOf(*skeleton, role)));
  for (Role each : {Role::kClassifier, Role::kRedirect}) {
    bpf_program__set_autoload(ProgramOf(*skeleton, each), each == role);
  }
  if (auto s = ShareGuard(name, TargetMapsOf(*skeleton)); !s.ok()) return s;
  if (int err = classify::load(skeleton); err != 0) {
    return absl::FailedPreconditionError(Cat(name, ": the kernel refused to load it: ", std::strerror(-err)));
  }
  return program;
}

absl::StatusOr<std::unique_ptr<ClassifyProgram>> ClassifyProgram::Load(Role role, const TargetSpec& target,
                                                                       uint32_t classid) {
  const char* name = NameOf(role);
  if (auto s = CheckClassid(name, classid); !s.ok()) return s;
  std::unique_ptr<ClassifyProgram> program;
  if (ProgramPool* pool = ProgramPool::Installed()) program = pool->TakeClassify(role);
  if (program == nullptr) {
    auto loaded = Preload(role);
    if (!loaded.ok()) return loaded.status();
    program = std::move(*loaded);
  }
  fl_target_config& config = program->skeleton_->bss->config;
  config.classid = classid;
  if (auto s = ConfigureTarget(name, target, TargetMapsOf(*program->skeleton_), config); !s.ok()) return s;
  return program;
}

absl::StatusOr<std::unique_ptr<ClassifyProgram>> ClassifyProgram::LoadClassifier(const TargetSpec& target,
                                                                                 uint32_t classid) {
  return Load(Role::kClassifier, target, classid);
}

absl::StatusOr<std::unique_ptr<ClassifyProgram>> ClassifyProgram::LoadRedirect(const TargetSpec& target,
                                                                               uint32_t classid) {
  return Load(Role::kRedirect, target, classid);
}

ClassifyProgram::~ClassifyProgram() { classify::destroy(skeleton_); }

int ClassifyProgram::fd() const { return bpf_program__fd(program_); }

void ClassifyProgram::Disarm() { kernel::Disarm(skeleton_->bss->config); }

ClassifyStats ClassifyProgram::ReadStats() const {
  return {.matched = ReadStat(TargetMapsOf(*skeleton_), FL_STAT_MATCHED)};
}

}  // namespace faultline::kernel

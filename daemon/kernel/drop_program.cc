#include "kernel/drop_program.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "faultline/api/cat.h"
#include "kernel/program_pool.h"
#include "target_abi.h"

// The skeleton uses the ABI's types, so it comes after target_abi.h.
#include "drop.skel.h"

namespace faultline::kernel {
namespace {

using api::Cat;

constexpr const char* kName = "drop program";

}  // namespace

absl::StatusOr<std::unique_ptr<DropProgram>> DropProgram::Preload() {
  drop* skeleton = drop::open();
  if (skeleton == nullptr) return absl::InternalError(Cat(kName, ": cannot open: ", std::strerror(errno)));
  auto program = std::unique_ptr<DropProgram>(new DropProgram(skeleton));
  if (auto s = ShareGuard(kName, TargetMapsOf(*skeleton)); !s.ok()) return s;
  if (int err = drop::load(skeleton); err != 0) {
    return absl::FailedPreconditionError(
        Cat(kName, ": the kernel refused to load it: ", std::strerror(-err)));
  }
  return program;
}

absl::StatusOr<std::unique_ptr<DropProgram>> DropProgram::Load(const DropSpec& spec) {
  std::unique_ptr<DropProgram> program;
  if (ProgramPool* pool = ProgramPool::Installed()) program = pool->TakeDrop();
  if (program == nullptr) {
    auto loaded = Preload();
    if (!loaded.ok()) return loaded.status();
    program = std::move(*loaded);
  }
  if (auto s = program->Configure(spec); !s.ok()) return s;
  return program;
}

absl::Status DropProgram::Configure(const DropSpec& spec) {
  fl_target_config& config = skeleton_->bss->config;
  config.drop_threshold = spec.drop_percent >= 100
                              ? FL_DROP_ALL
                              : static_cast<__u64>(std::llround(spec.drop_percent / 100.0 * FL_DROP_ALL));
  return ConfigureTarget(kName, spec.target, TargetMapsOf(*skeleton_), config);
}

DropProgram::~DropProgram() { drop::destroy(skeleton_); }

int DropProgram::egress_fd() const { return bpf_program__fd(skeleton_->progs.fl_drop_egress); }

int DropProgram::ingress_fd() const { return bpf_program__fd(skeleton_->progs.fl_drop_ingress); }

void DropProgram::Disarm() { kernel::Disarm(skeleton_->bss->config); }

DropStats DropProgram::ReadStats() const {
  const TargetMaps maps = TargetMapsOf(*skeleton_);
  return {.matched = ReadStat(maps, FL_STAT_MATCHED), .dropped = ReadStat(maps, FL_STAT_DROPPED)};
}

}  // namespace faultline::kernel

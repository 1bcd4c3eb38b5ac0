#include "faults/stress.h"

#include <google/protobuf/text_format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "faultline/api/cat.h"
#include "faultline/api/validate.h"
#include "kernel/capabilities.h"
#include "kernel/worker_process.h"
#include "stress/worker.h"

namespace faultline::faults {
namespace {

using api::Cat;
using faultline::v1::Fault;

constexpr std::chrono::milliseconds kCpuSetupTimeout{5000};

class ActiveStress : public ActiveFault {
 public:
  ActiveStress(std::unique_ptr<kernel::WorkerProcess> worker, bool memory)
      : worker_(std::move(worker)), memory_(memory) {}
  std::vector<std::string> KernelObjects() const override {
    std::optional<std::string> ended = worker_->Ended();
    return {Cat(worker_->what(), " pid ", worker_->pid(), ended ? Cat(": ", *ended) : "")};
  }
  void FillStatus(v1::AppliedFault& status) const override {
    if (memory_) status.set_resident_bytes(worker_->ResidentBytes());
  }

 private:
  std::unique_ptr<kernel::WorkerProcess> worker_;
  const bool memory_;
};

std::string Mib(uint64_t bytes) { return Cat(bytes >> 20, " MiB"); }

// /proc/meminfo's values in bytes, by name ("MemTotal", "MemAvailable").
std::map<std::string, uint64_t> MemInfo() {
  std::map<std::string, uint64_t> values;
  std::ifstream in("/proc/meminfo");
  std::string name;
  uint64_t kib;
  std::string unit;
  while (in >> name >> kib) {
    name.pop_back();  // the ':'
    values[name] = kib << 10;
    std::getline(in, unit);
  }
  return values;
}

// The CPUs in a kernel CPU list ("0-3,8").
std::set<uint32_t> ParseCpuList(const std::string& text) {
  std::set<uint32_t> cpus;
  std::istringstream in(text);
  std::string range;
  while (std::getline(in, range, ',')) {
    if (range.empty()) continue;
    size_t dash = range.find('-');
    uint32_t first = static_cast<uint32_t>(std::stoul(range.substr(0, dash)));
    uint32_t last =
        dash == std::string::npos ? first : static_cast<uint32_t>(std::stoul(range.substr(dash + 1)));
    for (uint32_t cpu = first; cpu <= last; cpu++) cpus.insert(cpu);
  }
  return cpus;
}

// `path` (absolute, or relative to the cgroup2 mount) as a cgroup2 directory that has `controller`.
absl::StatusOr<std::string> ResolveCgroup(const std::string& field, const std::string& path,
                                          const std::string& controller) {
  const std::string mount = kernel::FindCgroup2Mount();
  if (mount.empty()) return absl::FailedPreconditionError(Cat(field, ": this host has no cgroup2 mount"));
  std::filesystem::path full =
      path.starts_with(mount + "/") || path == mount
          ? std::filesystem::path(path)
          : std::filesystem::path(mount) / std::filesystem::path(path).relative_path();
  std::error_code error;
  std::filesystem::path real = std::filesystem::canonical(full, error);
  if (error) return absl::FailedPreconditionError(Cat(field, ": ", full.string(), ": ", error.message()));
  if (!real.string().starts_with(mount) || !kernel::IsCgroup2(real.string()) ||
      !std::filesystem::exists(real / "cgroup.procs")) {
    return absl::FailedPreconditionError(Cat(field, ": ", real.string(), " is not a cgroup under ", mount));
  }
  std::ifstream in(real / "cgroup.controllers");
  std::string controllers;
  std::getline(in, controllers);
  std::istringstream names(controllers);
  for (std::string name; names >> name;) {
    if (name == controller) return real.string();
  }
  return absl::FailedPreconditionError(Cat(field, ": cgroup ", real.string(), " has no ", controller,
                                           " controller (enable it in its parent's cgroup.subtree_control)"));
}

}  // namespace

StressDriver::StressDriver(StressOptions options) : options_(std::move(options)) {
  std::error_code error;
  self_path_ = std::filesystem::read_symlink("/proc/self/exe", error).string();
  if (error) self_path_ = "faultlined";
}

bool StressDriver::Handles(const Fault& fault) { return fault.has_cpu() || fault.has_memory(); }

absl::StatusOr<Fault> StressDriver::Resolve(const Fault& fault) const {
  Fault resolved = fault;
  if (fault.has_cpu()) {
    std::ifstream in("/sys/devices/system/cpu/online");
    std::string online_text;
    std::getline(in, online_text);
    const std::set<uint32_t> online = ParseCpuList(online_text);
    for (uint32_t cpu : fault.cpu().cpus()) {
      if (!online.contains(cpu)) {
        return absl::FailedPreconditionError(
            Cat("cpu.cpus: CPU ", cpu, " is not online (online: ", online_text, ")"));
      }
    }
    if (!fault.cpu().cgroup().empty()) {
      auto cgroup = ResolveCgroup("cpu.cgroup", fault.cpu().cgroup(), "cpu");
      if (!cgroup.ok()) return cgroup.status();
      resolved.mutable_cpu()->set_cgroup(*cgroup);
    }
    return resolved;
  }
  const v1::Memory& memory = fault.memory();
  std::map<std::string, uint64_t> meminfo = MemInfo();
  const uint64_t bytes =
      memory.has_percent_of_total()
          ? static_cast<uint64_t>(static_cast<double>(meminfo["MemTotal"]) * memory.percent_of_total() / 100)
          : memory.bytes();
  const uint64_t available = meminfo["MemAvailable"];
  if (bytes + options_.memory_floor_bytes > available) {
    return absl::FailedPreconditionError(
        Cat(memory.has_percent_of_total() ? "memory.percent_of_total: " : "memory.bytes: ", Mib(bytes),
            " would leave ", available > bytes ? Mib(available - bytes) : "nothing", " of the ",
            Mib(available), " available (MemAvailable), under the agent's floor of ",
            Mib(options_.memory_floor_bytes), " (--memory-floor)"));
  }
  resolved.mutable_memory()->set_bytes(bytes);
  if (!memory.cgroup().empty()) {
    auto cgroup = ResolveCgroup("memory.cgroup", memory.cgroup(), "memory");
    if (!cgroup.ok()) return cgroup.status();
    resolved.mutable_memory()->set_cgroup(*cgroup);
  }
  return resolved;
}

absl::StatusOr<std::unique_ptr<ActiveFault>> StressDriver::Apply(const Fault& fault, const ApplyContext&) {
  auto resolved = Resolve(fault);
  if (!resolved.ok()) return resolved.status();
  std::string text;
  google::protobuf::TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  printer.PrintToString(*resolved, &text);
  // Touching memory takes time, the more so on a slow machine: 10 s, and 10 s more per GiB.
  const auto timeout = fault.has_memory()
                           ? std::chrono::milliseconds(10'000 + 10'000 * (resolved->memory().bytes() >> 30))
                           : kCpuSetupTimeout;
  auto worker =
      kernel::WorkerProcess::Start("/proc/self/exe", {self_path_, std::string(stress::kWorkerFlag), text},
                                   Cat("stress worker (", api::DescribeFault(*resolved), ")"), timeout);
  if (!worker.ok()) return worker.status();
  return std::make_unique<ActiveStress>(*std::move(worker), fault.has_memory());
}

}  // namespace faultline::faults

// cpu and memory faults through a real faultlined: the load measured from /proc/stat, a cgroup's quota
// from its cpu.stat, the memory from the worker's RSS and MemAvailable, and the workers' end from
// /proc, however the experiment or the agent ends.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent_fixture.h"
#include "faultline/api/cat.h"
#include "kernel/capabilities.h"
#include "kernel/worker_process.h"

namespace faultline::test {
namespace {

using api::Cat;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
namespace v1 = faultline::v1;

constexpr seconds kMeasured{10};

// Busy and total jiffies of each CPU (/proc/stat's "cpuN" lines).
struct CpuTimes {
  std::vector<double> busy, total;
};

CpuTimes ReadCpuTimes() {
  CpuTimes times;
  std::ifstream in("/proc/stat");
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("cpu") || line.starts_with("cpu ")) continue;
    std::istringstream fields(line.substr(line.find(' ')));
    double value, sum = 0, idle = 0;
    for (int i = 0; fields >> value; i++) {
      sum += value;
      if (i == 3 || i == 4) idle += value;  // idle, iowait
    }
    times.busy.push_back(sum - idle);
    times.total.push_back(sum);
  }
  return times;
}

// The load of each CPU in percent over `period`.
std::vector<double> MeasureLoad(std::chrono::milliseconds period) {
  CpuTimes before = ReadCpuTimes();
  std::this_thread::sleep_for(period);
  CpuTimes after = ReadCpuTimes();
  std::vector<double> load;
  for (size_t cpu = 0; cpu < before.busy.size(); cpu++) {
    double total = after.total[cpu] - before.total[cpu];
    load.push_back(total > 0 ? 100 * (after.busy[cpu] - before.busy[cpu]) / total : 0);
  }
  return load;
}

// The stress worker of a fault: its pid, from "stress worker (...) pid N".
pid_t WorkerPid(const v1::AppliedFault& fault) {
  if (fault.kernel_objects().empty()) return -1;
  const std::string& object = fault.kernel_objects(0);
  size_t at = object.rfind(" pid ");
  return at == std::string::npos ? -1 : static_cast<pid_t>(std::stol(object.substr(at + 5)));
}

// Gone, or dead and waiting for a parent to reap it.
bool ProcessEnded(pid_t pid) {
  std::ifstream in(Cat("/proc/", pid, "/stat"));
  // One line, read with getline: a process that exits while it is read makes read(2) fail with ESRCH,
  // which an istreambuf_iterator turns into an exception (it crashed an agent's replay once).
  std::string text;
  std::getline(in, text);
  size_t close = text.rfind(')');
  return close == std::string::npos || text.compare(close + 2, 1, "Z") == 0;
}

// Waits up to `limit` for `pid` to end; how long it took, or -1.
int MillisecondsUntilEnded(pid_t pid, milliseconds limit) {
  const auto start = steady_clock::now();
  while (steady_clock::now() - start < limit) {
    if (ProcessEnded(pid)) {
      return static_cast<int>(std::chrono::duration_cast<milliseconds>(steady_clock::now() - start).count());
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  return -1;
}

// The number after `key` in a "key value" file: cpu.stat's usage_usec, or (with a colon) /proc/meminfo's
// MemAvailable and /proc/PID/status's VmRSS, which are in KiB.
uint64_t Field(const std::string& file, const std::string& key) {
  std::ifstream in(file);
  std::string name;
  uint64_t value = 0;
  std::string rest;
  while (in >> name) {
    if (name == key) {
      in >> value;
      return value;
    }
    std::getline(in, rest);
  }
  return 0;
}

uint64_t MemAvailable() { return Field("/proc/meminfo", "MemAvailable:") << 10; }

// The processes whose parent is `parent`.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "stat");
    std::string text;
    std::getline(in, text);  // not an istreambuf_iterator: see ProcessEnded
    size_t close = text.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(text.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent) children.push_back(std::stoi(name));
  }
  return children;
}

class StressTest : public AgentInSandboxTest {
 protected:
  // Injects `fault` alone as experiment `id`; the worker's pid.
  pid_t InjectStress(const std::string& id, const v1::Fault& fault) {
    auto experiment = NewExperiment(id);
    *experiment.add_faults() = fault;
    grpc::Status status = Inject(experiment);
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << agent_->Log();
    if (!status.ok()) return -1;
    v1::ExperimentStatus got = Get(id);
    EXPECT_EQ(got.state(), v1::STATE_ACTIVE);
    return got.faults_size() == 1 ? WorkerPid(got.faults(0)) : -1;
  }

  static v1::Fault Cpu(uint32_t load, std::vector<uint32_t> cpus, uint32_t workers = 0) {
    v1::Fault fault;
    fault.mutable_cpu()->set_load_percent(load);
    for (uint32_t cpu : cpus) fault.mutable_cpu()->add_cpus(cpu);
    fault.mutable_cpu()->set_workers(workers);
    return fault;
  }

  static v1::Fault Memory(uint64_t bytes) {
    v1::Fault fault;
    fault.mutable_memory()->set_bytes(bytes);
    return fault;
  }
};

// load x CPUs listed: (25, 50, 75, 100) x ({1}, {0, 1}).
class CpuLoadTest : public StressTest, public ::testing::WithParamInterface<std::tuple<uint32_t, bool>> {};

TEST_P(CpuLoadTest, TheListedCpusCarryTheLoadAndNoOthers) {
  if (CpuIsEmulated()) GTEST_SKIP() << "load accuracy is measured on real CPUs; qemu emulates this one (TCG)";
  if (ReadCpuTimes().busy.size() < 2) GTEST_SKIP() << "needs two CPUs, to load one and watch the other";
  const auto [load, both] = GetParam();
  std::vector<uint32_t> cpus = both ? std::vector<uint32_t>{0, 1} : std::vector<uint32_t>{1};
  // What else runs on these CPUs (the agent, the test, the machine) adds to the fault's load.
  const std::vector<double> idle = MeasureLoad(milliseconds(2000));
  pid_t worker = InjectStress("cpu", Cpu(load, cpus));
  ASSERT_GT(worker, 0);
  // One burning thread (all but the main one, which waits on the lifeline) pinned to each listed CPU.
  std::multiset<std::string> pinned;
  for (const auto& task : std::filesystem::directory_iterator(Cat("/proc/", worker, "/task"))) {
    if (task.path().filename() == std::to_string(worker)) continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("Cpus_allowed_list:")) pinned.insert(line.substr(line.find_last_of('\t') + 1));
    }
  }
  std::multiset<std::string> listed;
  for (uint32_t cpu : cpus) listed.insert(std::to_string(cpu));
  EXPECT_EQ(pinned, listed) << "the burning threads' CPUs";
  std::this_thread::sleep_for(milliseconds(500));  // the workers are at their pace
  const std::vector<double> measured = MeasureLoad(kMeasured);
  Revert("cpu");
  EXPECT_GE(MillisecondsUntilEnded(worker, milliseconds(100)), 0)
      << "the worker outlived the revert by 100 ms";
  std::printf("[ MEASURED ] cpu %u%% on cpus %s: cpu0 %.1f%% (%.1f%% before), cpu1 %.1f%% (%.1f%% before)\n",
              load, both ? "0,1" : "1", measured[0], idle[0], measured[1], idle[1]);
  auto expected = [&](size_t cpu) { return std::min(100.0, load + idle[cpu]); };
  EXPECT_NEAR(measured[1], expected(1), 5) << "cpu1";
  if (both) {
    EXPECT_NEAR(measured[0], expected(0), 5) << "cpu0";
  } else {
    // Not listed: no worker thread may run there, and its load stays near what it was (the machine's
    // own work on it comes and goes by a few points).
    EXPECT_LT(measured[0], idle[0] + 10) << "cpu0 is not listed and must stay as it was";
  }
}

INSTANTIATE_TEST_SUITE_P(LoadsAndCpus, CpuLoadTest,
                         ::testing::Combine(::testing::Values(25u, 50u, 75u, 100u), ::testing::Bool()),
                         [](const ::testing::TestParamInfo<std::tuple<uint32_t, bool>>& info) {
                           return Cat("load_", std::get<0>(info.param),
                                      std::get<1>(info.param) ? "_cpus_0_1" : "_cpu_1");
                         });

// A child cgroup of the cgroup2 root made for a test, removed with the object; `path` stays empty (and
// `missing` says why) when the hierarchy does not hand `controller` to its children.
struct ScratchCgroup {
  explicit ScratchCgroup(const std::string& controller) {
    const std::string mount = kernel::FindCgroup2Mount();
    std::ifstream subtree(mount + "/cgroup.subtree_control");
    std::string enabled;
    std::getline(subtree, enabled);
    if (mount.empty() || (" " + enabled + " ").find(" " + controller + " ") == std::string::npos) {
      missing = Cat("the cgroup2 hierarchy", mount.empty() ? "" : " at " + mount, " does not hand the ",
                    controller, " controller to its children (it is bound to cgroup v1 here)");
      return;
    }
    path = Cat(mount, "/fltest-stress-", getpid());
    if (!std::filesystem::create_directory(path)) missing = Cat("cannot create ", path.string());
  }
  ~ScratchCgroup() {
    if (!path.empty()) rmdir(path.c_str());
  }
  std::filesystem::path path;
  std::string missing;
};

TEST_F(StressTest, ACgroupsQuotaHoldsItsWorkersToTheQuota) {
  ScratchCgroup scratch("cpu");
  if (!scratch.missing.empty()) GTEST_SKIP() << scratch.missing;
  const std::filesystem::path& cgroup = scratch.path;
  std::ofstream(cgroup / "cpu.max") << "50000 100000" << std::flush;  // half a CPU

  v1::Fault fault = Cpu(100, {}, 2);
  fault.mutable_cpu()->set_cgroup(cgroup.filename());  // relative to the cgroup2 mount
  pid_t worker = InjectStress("quota", fault);
  ASSERT_GT(worker, 0);
  std::ifstream procs(cgroup / "cgroup.procs");
  pid_t member = 0;
  procs >> member;
  EXPECT_EQ(member, worker) << "the worker is not in " << cgroup;

  auto usage = [&] { return Field((cgroup / "cpu.stat").string(), "usage_usec"); };
  std::this_thread::sleep_for(milliseconds(500));
  const uint64_t before = usage();
  const auto start = steady_clock::now();
  std::this_thread::sleep_for(seconds(5));
  const double elapsed_usec = static_cast<double>(
      std::chrono::duration_cast<std::chrono::microseconds>(steady_clock::now() - start).count());
  const double share = 100 * static_cast<double>(usage() - before) / elapsed_usec;
  Revert("quota");
  std::printf("[ MEASURED ] cpu 100%% on 2 workers in a cgroup with cpu.max 50000 100000: %.1f%% of a CPU\n",
              share);
  EXPECT_NEAR(share, 50, 5) << "of one CPU";
}

TEST_F(StressTest, MemoryIsResidentWhileActiveAndBackAfterTheRevert) {
  constexpr uint64_t kBytes = 512ull << 20;
  const uint64_t available_before = MemAvailable();
  pid_t worker = InjectStress("memory", Memory(kBytes));
  ASSERT_GT(worker, 0);
  const uint64_t rss = Field(Cat("/proc/", worker, "/status"), "VmRSS:") << 10;
  EXPECT_NEAR(static_cast<double>(rss), static_cast<double>(kBytes), 0.05 * kBytes) << "the worker's RSS";
  EXPECT_NEAR(static_cast<double>(Get("memory").faults(0).resident_bytes()), static_cast<double>(kBytes),
              0.05 * kBytes)
      << "the status's resident_bytes";
  const uint64_t available_during = MemAvailable();
  Revert("memory");
  EXPECT_TRUE(ProcessEnded(worker)) << "the worker is still there after the revert";
  const uint64_t available_after = MemAvailable();
  std::printf(
      "[ MEASURED ] memory 512 MiB: RSS %llu MiB; MemAvailable %llu MiB before, %llu during, %llu after\n",
      static_cast<unsigned long long>(rss >> 20), static_cast<unsigned long long>(available_before >> 20),
      static_cast<unsigned long long>(available_during >> 20),
      static_cast<unsigned long long>(available_after >> 20));
  EXPECT_NEAR(static_cast<double>(available_after), static_cast<double>(available_before),
              0.05 * available_before);
}

TEST_F(StressTest, MemoryInACgroupIsChargedToIt) {
  ScratchCgroup scratch("memory");
  if (!scratch.missing.empty()) GTEST_SKIP() << scratch.missing;
  constexpr uint64_t kBytes = 64ull << 20;
  v1::Fault fault = Memory(kBytes);
  fault.mutable_memory()->set_cgroup(scratch.path.string());
  ASSERT_GT(InjectStress("charged", fault), 0);
  uint64_t charged = 0;
  std::ifstream(scratch.path / "memory.current") >> charged;
  EXPECT_GE(charged, kBytes) << "memory.current of " << scratch.path;
  Revert("charged");
}

TEST_F(StressTest, MemoryGrowsAtItsRate) {
  constexpr uint64_t kBytes = 128ull << 20;
  v1::Fault fault = Memory(kBytes);
  fault.mutable_memory()->set_grow_bytes_per_second(64ull << 20);
  const auto start = steady_clock::now();
  ASSERT_GT(InjectStress("growing", fault), 0);
  std::this_thread::sleep_until(start + seconds(1));
  const double after_one_second = static_cast<double>(Get("growing").faults(0).resident_bytes()) / (1 << 20);
  std::this_thread::sleep_until(start + seconds(3));
  const double after_three_seconds =
      static_cast<double>(Get("growing").faults(0).resident_bytes()) / (1 << 20);
  Revert("growing");
  std::printf("[ MEASURED ] memory 128 MiB growing 64 MiB/s: %.0f MiB after 1 s, %.0f MiB after 3 s\n",
              after_one_second, after_three_seconds);
  EXPECT_GT(after_one_second, 32) << "MiB: it did not grow";
  EXPECT_LT(after_one_second, 110) << "MiB: it took everything at once";
  EXPECT_NEAR(after_three_seconds, 128, 0.05 * 128 + 16) << "MiB (the binary's own pages come on top)";
}

TEST_F(StressTest, MemoryThatWouldCrossTheFloorIsRefusedAndNothingStarts) {
  const uint64_t available = MemAvailable();
  auto experiment = NewExperiment("too-much");
  *experiment.add_faults() = Memory(available - (128ull << 20));  // the default floor is 256 MiB
  grpc::Status status = Inject(experiment);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("faults[0] (memory): memory.bytes: "), std::string::npos)
      << status.error_message();
  EXPECT_NE(status.error_message().find("under the agent's floor of 256 MiB (--memory-floor)"),
            std::string::npos)
      << status.error_message();
  EXPECT_EQ(Get("too-much").state(), v1::STATE_FAILED);
  EXPECT_TRUE(ChildrenOf(agent_->pid()).empty()) << "a worker was started";
}

TEST_F(StressTest, BadCpusAndCgroupsAreRefusedNamingTheField) {
  v1::Fault offline = Cpu(50, {4095});
  v1::Fault no_cgroup = Cpu(50, {}, 1);
  no_cgroup.mutable_cpu()->set_cgroup("fltest-no-such-cgroup");
  const std::pair<v1::Fault, std::string> cases[] = {
      {offline, "faults[0] (cpu): cpu.cpus: CPU 4095 is not online"},
      {no_cgroup, "faults[0] (cpu): cpu.cgroup: "},
  };
  for (const auto& [fault, message] : cases) {
    auto experiment = NewExperiment("refused");
    *experiment.add_faults() = fault;
    grpc::Status status = Inject(experiment);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(status.error_message().find(message), std::string::npos) << status.error_message();
  }
  EXPECT_TRUE(ChildrenOf(agent_->pid()).empty()) << "a worker was started";
}

TEST_F(StressTest, WorkersDieWithTheAgent) {
  pid_t cpu = InjectStress("cpu", Cpu(50, {}, 1));
  pid_t memory = InjectStress("memory", Memory(64ull << 20));
  ASSERT_GT(cpu, 0);
  ASSERT_GT(memory, 0);
  agent_->Signal(SIGKILL);
  for (pid_t worker : {cpu, memory}) {
    int ended = MillisecondsUntilEnded(worker, milliseconds(1000));
    EXPECT_GE(ended, 0) << "worker " << worker << " outlived the agent by more than 1 s";
    std::printf("[ MEASURED ] worker %d ended %d ms after the agent was killed\n", worker, ended);
  }
  agent_.reset();  // nothing to halt
}

TEST_F(StressTest, AWorkerThatOutlivedItsAgentIsKilledByTheNextOne) {
  const std::string state_dir = Cat("/tmp/fltest-stress-state-", getpid());
  std::filesystem::create_directories(state_dir);
  agent_ = std::make_unique<AgentProcess>(std::vector<std::string>{}, state_dir);
  pid_t worker = InjectStress("cpu", Cpu(10, {}, 1));
  ASSERT_GT(worker, 0);
  // A stopped worker cannot notice that its agent is gone: only the journal's replay can end it.
  kill(worker, SIGSTOP);
  agent_->Signal(SIGKILL);
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_FALSE(ProcessEnded(worker)) << "the stopped worker should still be there";
  agent_ = std::make_unique<AgentProcess>(std::vector<std::string>{}, state_dir);
  EXPECT_GE(MillisecondsUntilEnded(worker, milliseconds(1000)), 0)
      << "the next agent left the worker running";
  EXPECT_NE(agent_->Log().find(Cat("killed process ", worker)), std::string::npos) << agent_->Log();
  if (!ProcessEnded(worker)) kill(worker, SIGKILL);
  agent_.reset();
  std::filesystem::remove_all(state_dir);
}

}  // namespace
}  // namespace faultline::test

#include "stress/worker.h"

#include <google/protobuf/text_format.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <future>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "faultline/api/cat.h"
#include "faultline/v1/experiment.pb.h"
#include "kernel/worker_process.h"

namespace faultline::stress {
namespace {

using api::Cat;
using kernel::WorkerProcess;

// The duty cycle's period: 10 ms on average, each one drawn from 5-15 ms. A fixed period locks in
// phase with the scheduler tick, and /proc/stat (what monitoring reads) samples CPU time at the tick:
// a fixed 10 ms period read 21% for 25% and 55% for 50%.
constexpr int64_t kMinPeriodNs = 5'000'000;
constexpr int64_t kMaxPeriodNs = 15'000'000;
constexpr int64_t kGrowthStepNs = 100'000'000;

int64_t Now(clockid_t clock) {
  timespec now;
  clock_gettime(clock, &now);
  return now.tv_sec * 1'000'000'000LL + now.tv_nsec;
}

// Reports the end of setup to the agent: "ok", or what went wrong (then the worker exits).
void ReportSetup(const std::string& line) {
  std::string text = line + "\n";
  (void)!write(WorkerProcess::kSetupFd, text.data(), text.size());
  close(WorkerProcess::kSetupFd);
}

// Whether the agent is gone (its end of the lifeline closed), waiting up to `timeout_ns` for it.
bool AgentGone(int64_t timeout_ns) {
  timespec timeout{static_cast<time_t>(timeout_ns / 1'000'000'000),
                   static_cast<long>(timeout_ns % 1'000'000'000)};
  pollfd p{WorkerProcess::kLifelineFd, POLLIN, 0};
  return ppoll(&p, 1, timeout_ns < 0 ? nullptr : &timeout, nullptr) > 0;
}

std::string WriteFile(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value << std::flush;
  return out ? "" : Cat(path, ": ", std::strerror(errno));
}

// Joins the fault's cgroup and makes this process the first the OOM killer takes.
std::string JoinAndExpose(const std::string& cgroup) {
  if (!cgroup.empty()) {
    if (std::string error = WriteFile(cgroup + "/cgroup.procs", Cat(getpid())); !error.empty()) {
      return Cat("cannot join cgroup ", cgroup, ": ", error);
    }
  }
  return WriteFile("/proc/self/oom_score_adj", "1000");
}

// One cpu worker thread: `load_percent` of every period in this thread's CPU time, the rest asleep.
[[noreturn]] void Burn(uint32_t load_percent) {
  std::minstd_rand random(static_cast<uint32_t>(gettid()));
  std::uniform_int_distribution<int64_t> period_ns(kMinPeriodNs, kMaxPeriodNs);
  int64_t period_end = Now(CLOCK_MONOTONIC);
  for (;;) {
    const int64_t period = period_ns(random);
    const int64_t busy_ns = period * load_percent / 100;
    const int64_t cpu_start = Now(CLOCK_THREAD_CPUTIME_ID);
    while (Now(CLOCK_THREAD_CPUTIME_ID) - cpu_start < busy_ns) {
    }
    period_end += period;
    const int64_t now = Now(CLOCK_MONOTONIC);
    if (period_end < now) period_end = now;  // preempted past its period: no catching up in a burst
    if (load_percent < 100) {
      timespec until{static_cast<time_t>(period_end / 1'000'000'000),
                     static_cast<long>(period_end % 1'000'000'000)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr) == EINTR) {
      }
    }
  }
}

int RunCpu(const v1::Cpu& cpu) {
  if (std::string error = JoinAndExpose(cpu.cgroup()); !error.empty()) {
    ReportSetup(error);
    return 1;
  }
  std::vector<int> pinned(cpu.cpus().begin(), cpu.cpus().end());
  const size_t threads = pinned.empty() ? cpu.workers() : pinned.size();
  std::vector<std::future<std::string>> set_up;
  for (size_t i = 0; i < threads; i++) {
    std::promise<std::string> promise;
    set_up.push_back(promise.get_future());
    const int on = pinned.empty() ? -1 : pinned[i];
    std::thread([on, nice = cpu.nice(), load = cpu.load_percent(), promise = std::move(promise)]() mutable {
      // Affinity and nice are per thread on Linux.
      if (on >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(on, &set);
        if (sched_setaffinity(0, sizeof(set), &set) != 0) {
          promise.set_value(Cat("cpu.cpus: cannot run on CPU ", on, ": ", std::strerror(errno)));
          return;
        }
      }
      if (nice != 0 && setpriority(PRIO_PROCESS, 0, nice) != 0) {
        promise.set_value(Cat("cpu.nice ", nice, ": ", std::strerror(errno)));
        return;
      }
      promise.set_value("");
      Burn(load);
    }).detach();
  }
  for (auto& result : set_up) {
    if (std::string error = result.get(); !error.empty()) {
      ReportSetup(error);
      return 1;
    }
  }
  ReportSetup("ok");
  AgentGone(-1);
  _exit(0);  // the burning threads never return
}

int RunMemory(const v1::Memory& memory) {
  if (std::string error = JoinAndExpose(memory.cgroup()); !error.empty()) {
    ReportSetup(error);
    return 1;
  }
  const size_t size = memory.bytes();
  auto* region =
      static_cast<char*>(mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (region == MAP_FAILED) {
    ReportSetup(Cat("memory.bytes: cannot map ", size, " bytes: ", std::strerror(errno)));
    return 1;
  }
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  auto touch = [&](size_t from, size_t to) {
    for (size_t offset = from; offset < to; offset += page) region[offset] = 1;
  };
  const uint64_t rate = memory.grow_bytes_per_second();
  if (rate == 0) {
    // All of it before "ok": an ACTIVE memory fault holds its memory.
    touch(0, size);
    ReportSetup("ok");
  } else {
    ReportSetup("ok");
    const size_t step = std::max<size_t>(page, rate * kGrowthStepNs / 1'000'000'000);
    for (size_t done = 0; done < size; done += step) {
      touch(done, std::min(size, done + step));
      if (AgentGone(kGrowthStepNs)) _exit(0);
    }
  }
  AgentGone(-1);
  _exit(0);
}

}  // namespace

int RunWorker(std::string_view fault_text) {
  v1::Fault fault;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(fault_text), &fault)) {
    ReportSetup(Cat("the stress worker cannot parse its fault: ", fault_text));
    return 2;
  }
  prctl(PR_SET_NAME, fault.has_cpu() ? "fl-stress-cpu" : "fl-stress-mem");
  // The agent blocks SIGTERM and SIGINT for its sigwait; a worker takes them like any process.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  if (fault.has_cpu()) return RunCpu(fault.cpu());
  if (fault.has_memory()) return RunMemory(fault.memory());
  ReportSetup(Cat("the stress worker got a fault that is not cpu or memory: ", fault_text));
  return 2;
}

}  // namespace faultline::stress

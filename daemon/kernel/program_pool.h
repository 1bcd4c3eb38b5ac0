// BPF programs loaded ahead of the faults that will run them. The kernel verifies a program as it
// loads it, about 2 ms per program on the benchmark machine, and a partition loads two: that was a
// third of an inject's time (docs/benchmarks.md). So faultlined keeps `depth` instances of each kind
// loaded and matching nothing (deadline 0), each with maps of its own as any instance has; a fault
// takes one and configures it (DropProgram::Load, ClassifyProgram::Load*). A thread at SCHED_IDLE
// loads the replacements, so the verifier runs when the CPUs have nothing else to do. A fault that
// finds its kind empty loads its own, as it would without a pool. A load that fails is tried again
// later, backing off, each kind on its own: a failure can be passing (memory, a full fd table), and a
// pool that stopped for good would cost every later inject its own load.
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "kernel/classify_program.h"
#include "kernel/drop_program.h"

namespace faultline::kernel {

class ProgramPool {
 public:
  // How the pool loads each kind; the defaults are the programs' own Preload functions.
  struct Loaders {
    std::function<absl::StatusOr<std::unique_ptr<DropProgram>>()> drop = [] {
      return DropProgram::Preload();
    };
    std::function<absl::StatusOr<std::unique_ptr<ClassifyProgram>>(ClassifyProgram::Role)> classify =
        [](ClassifyProgram::Role role) { return ClassifyProgram::Preload(role); };
  };
  // After a failed load of one kind the loader tries that kind again after `first`, then twice as long
  // after each further failure, up to `most`; a load that succeeds starts it over. Other kinds go on.
  struct Backoff {
    std::chrono::milliseconds first{1000};
    std::chrono::milliseconds most{60'000};
  };

  // Starts loading. Install the guard map (GuardMap::Install) first: every instance shares it.
  explicit ProgramPool(size_t depth);
  ProgramPool(size_t depth, Loaders loaders, Backoff backoff);
  // Stops the thread (after the load in progress) and unloads what no fault took.
  ~ProgramPool();
  ProgramPool(const ProgramPool&) = delete;
  ProgramPool& operator=(const ProgramPool&) = delete;

  // A loaded instance, or nullptr when none is ready (or the loader holds the lock).
  std::unique_ptr<DropProgram> TakeDrop();
  std::unique_ptr<ClassifyProgram> TakeClassify(ClassifyProgram::Role role);

  struct Counts {
    size_t drop = 0;
    size_t classifier = 0;
    size_t redirect = 0;
  };
  // How many of each kind are loaded and waiting.
  Counts Ready() const;

  // The pool DropProgram::Load and ClassifyProgram::Load* take from; nullptr uninstalls. Not owned.
  static void Install(ProgramPool* pool);
  static ProgramPool* Installed();

 private:
  template <typename Program>
  std::unique_ptr<Program> Take(std::deque<std::unique_ptr<Program>>& ready);
  void Run(std::stop_token stop);

  const size_t depth_;
  const Loaders loaders_;
  const Backoff backoff_;
  mutable std::mutex mutex_;
  std::condition_variable_any taken_;
  std::deque<std::unique_ptr<DropProgram>> drop_;
  std::array<std::deque<std::unique_ptr<ClassifyProgram>>, 2> classify_;  // by Role
  std::jthread thread_;  // last: stopped and joined before the queues go
};

}  // namespace faultline::kernel

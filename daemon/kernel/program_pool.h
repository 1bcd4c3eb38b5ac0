// BPF programs loaded ahead of the faults that will run them. The kernel verifies a program as it
// loads it, about 2 ms per program on the benchmark machine, and a partition loads two: that was a
// third of an inject's time (docs/benchmarks.md). So faultlined keeps `depth` instances of each kind
// loaded and matching nothing (deadline 0), each with maps of its own as any instance has; a fault
// takes one and configures it (DropProgram::Load, ClassifyProgram::Load*). A thread at SCHED_IDLE
// loads the replacements, so the verifier runs when the CPUs have nothing else to do. A fault that
// finds its kind empty loads its own, as it would without a pool.
#pragma once

#include <array>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "kernel/classify_program.h"
#include "kernel/drop_program.h"

namespace faultline::kernel {

class ProgramPool {
 public:
  // Starts loading. Install the guard map (GuardMap::Install) first: every instance shares it.
  explicit ProgramPool(size_t depth);
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
  mutable std::mutex mutex_;
  std::condition_variable_any taken_;
  std::deque<std::unique_ptr<DropProgram>> drop_;
  std::array<std::deque<std::unique_ptr<ClassifyProgram>>, 2> classify_;  // by Role
  bool failed_ = false;  // a load failed: the kernel will not load these; faults load their own
  std::jthread thread_;  // last: stopped and joined before the queues go
};

}  // namespace faultline::kernel

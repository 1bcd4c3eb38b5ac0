#include "kernel/program_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>

#include "log.h"

namespace faultline::kernel {
namespace {

std::atomic<ProgramPool*> installed{nullptr};

using Role = ClassifyProgram::Role;

size_t RoleIndex(Role role) { return role == Role::kClassifier ? 0 : 1; }

}  // namespace

ProgramPool::ProgramPool(size_t depth) : ProgramPool(depth, Loaders{}, Backoff{}) {}

ProgramPool::ProgramPool(size_t depth, Loaders loaders, Backoff backoff)
    : depth_(depth),
      loaders_(std::move(loaders)),
      backoff_(backoff),
      thread_([this](std::stop_token stop) { Run(stop); }) {}

ProgramPool::~ProgramPool() {
  ProgramPool* self = this;
  installed.compare_exchange_strong(self, nullptr);
}

void ProgramPool::Install(ProgramPool* pool) { installed = pool; }

ProgramPool* ProgramPool::Installed() { return installed; }

template <typename Program>
std::unique_ptr<Program> ProgramPool::Take(std::deque<std::unique_ptr<Program>>& ready) {
  // Never waits: the loader runs at SCHED_IDLE, and on busy CPUs it may hold the lock for long while
  // it is not scheduled. A fault that finds the lock taken loads its own program.
  std::unique_lock lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() || ready.empty()) return nullptr;
  std::unique_ptr<Program> program = std::move(ready.front());
  ready.pop_front();
  taken_.notify_one();
  return program;
}

std::unique_ptr<DropProgram> ProgramPool::TakeDrop() { return Take(drop_); }

std::unique_ptr<ClassifyProgram> ProgramPool::TakeClassify(Role role) {
  return Take(classify_[RoleIndex(role)]);
}

ProgramPool::Counts ProgramPool::Ready() const {
  std::lock_guard lock(mutex_);
  return {.drop = drop_.size(), .classifier = classify_[0].size(), .redirect = classify_[1].size()};
}

void ProgramPool::Run(std::stop_token stop) {
  // Only when a CPU would otherwise idle: never in an inject's way, nor in the host's.
  sched_param param{};
  if (int err = pthread_setschedparam(pthread_self(), SCHED_IDLE, &param); err != 0) {
    log::Warning("program_pool.priority").With("error", std::strerror(err));
  }
  std::unique_lock lock(mutex_);
  std::chrono::milliseconds retry_in = backoff_.first;
  while (!stop.stop_requested()) {
    // Adds one instance to `ready` unless it is full (false), loading outside the lock.
    auto top_up = [&](auto& ready, auto load) {
      if (ready.size() >= depth_) return false;
      lock.unlock();
      auto loaded = load();
      lock.lock();
      if (loaded.ok()) {
        ready.push_back(std::move(*loaded));
        retry_in = backoff_.first;
        return true;
      }
      log::Warning("program_pool.load_failed")
          .With("error", std::string(loaded.status().message()))
          .With("retry_in_ms", static_cast<int64_t>(retry_in.count()));
      // Wakes only when stopped: a take meanwhile changes nothing about why the load failed.
      taken_.wait_for(lock, stop, retry_in, [] { return false; });
      retry_in = std::min(retry_in * 2, backoff_.most);
      return true;
    };
    auto wanted = [&] {
      return drop_.size() < depth_ || classify_[0].size() < depth_ || classify_[1].size() < depth_;
    };
    if (!wanted()) {
      taken_.wait(lock, stop, wanted);
      continue;
    }
    if (!top_up(drop_, loaders_.drop) &&
        !top_up(classify_[0], [this] { return loaders_.classify(Role::kClassifier); })) {
      top_up(classify_[1], [this] { return loaders_.classify(Role::kRedirect); });
    }
  }
}

}  // namespace faultline::kernel

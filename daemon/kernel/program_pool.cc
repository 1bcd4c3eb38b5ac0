#include "kernel/program_pool.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <optional>
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
  using Clock = std::chrono::steady_clock;
  // Per kind (drop, classifier, redirect), so that one that keeps failing does not hold up the others:
  // when it may be tried again, and the wait after its next failure.
  std::array<Clock::time_point, 3> retry_at{};
  std::array<std::chrono::milliseconds, 3> retry_in{backoff_.first, backoff_.first, backoff_.first};
  std::unique_lock lock(mutex_);
  auto ready = [&](size_t kind) { return kind == 0 ? drop_.size() : classify_[kind - 1].size(); };
  auto loadable = [&](size_t kind) { return ready(kind) < depth_ && Clock::now() >= retry_at[kind]; };
  // Adds one instance of `kind` to `queue` when it is loadable (else false), loading outside the lock.
  auto top_up = [&](size_t kind, auto& queue, auto load) {
    if (!loadable(kind)) return false;
    lock.unlock();
    auto loaded = load();
    if (!loaded.ok()) {  // logged before the lock is taken again: a take never waits on a log line
      log::Warning("program_pool.load_failed")
          .With("error", std::string(loaded.status().message()))
          .With("retry_in_ms", static_cast<int64_t>(retry_in[kind].count()));
    }
    lock.lock();
    if (loaded.ok()) {
      queue.push_back(std::move(*loaded));
      retry_in[kind] = backoff_.first;
      return true;
    }
    retry_at[kind] = Clock::now() + retry_in[kind];
    retry_in[kind] = std::min(retry_in[kind] * 2, backoff_.most);
    return true;
  };
  while (!stop.stop_requested()) {
    if (top_up(0, drop_, loaders_.drop) ||
        top_up(1, classify_[0], [this] { return loaders_.classify(Role::kClassifier); }) ||
        top_up(2, classify_[1], [this] { return loaders_.classify(Role::kRedirect); })) {
      continue;
    }
    // Nothing to load now: wait for a take, or until the first kind short of instances may be retried.
    auto any_loadable = [&] { return loadable(0) || loadable(1) || loadable(2); };
    std::optional<Clock::time_point> retry;
    for (size_t kind = 0; kind < retry_at.size(); kind++) {
      if (ready(kind) < depth_ && (!retry || retry_at[kind] < *retry)) retry = retry_at[kind];
    }
    if (retry) {
      taken_.wait_until(lock, stop, *retry, any_loadable);
    } else {
      taken_.wait(lock, stop, any_loadable);
    }
  }
}

}  // namespace faultline::kernel

#include "experiment_manager.h"

#include <absl/cleanup/cleanup.h>
#include <google/protobuf/util/message_differencer.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <random>

#include "faultline/api/cat.h"
#include "faultline/api/units.h"
#include "log.h"

namespace faultline {

using api::Cat;
using faultline::v1::Experiment;
using faultline::v1::ExperimentEvent;
using faultline::v1::ExperimentState;
using faultline::v1::ExperimentStatus;
using google::protobuf::util::TimeUtil;

namespace {

constexpr size_t kEndedHistory = 1000;  // ended experiments kept for Get and List

std::string GenerateId() {
  std::random_device random;
  return Cat("exp-", std::hex, random(), random() & 0xffff);
}

std::chrono::nanoseconds ToNanos(const google::protobuf::Duration& d) {
  return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

bool Ended(ExperimentState state) {
  return state == v1::STATE_REVERTED || state == v1::STATE_FAILED || state == v1::STATE_EXPIRED ||
         state == v1::STATE_ABORTED;
}

double Seconds(std::chrono::steady_clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Undoes faults last-applied first, as a stack of kernel changes must be unwound.
void Unwind(std::vector<std::unique_ptr<faults::ActiveFault>>& faults) {
  while (!faults.empty()) faults.pop_back();
}

}  // namespace

bool Subscription::Next(ExperimentEvent& event, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, timeout, [&] { return !events_.empty() || closed_; });
  if (events_.empty()) return false;
  event = std::move(events_.front());
  events_.pop_front();
  return true;
}

bool Subscription::closed() const {
  std::lock_guard lock(mutex_);
  return closed_ && events_.empty();
}

void Subscription::Push(const ExperimentEvent& event) {
  if (!id_.empty() && event.experiment_id() != id_) return;
  std::lock_guard lock(mutex_);
  events_.push_back(event);
  ready_.notify_one();
}

void Subscription::Close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  ready_.notify_all();
}

ExperimentManager::ExperimentManager(faults::FaultDrivers& drivers, api::Limits limits,
                                     metrics::AgentMetrics* metrics)
    : drivers_(drivers), limits_(std::move(limits)), metrics_(metrics), timer_([this] { TimerLoop(); }) {}

ExperimentManager::~ExperimentManager() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  timer_wake_.notify_all();
  timer_.join();
  CloseSubscriptions();
}

absl::StatusOr<v1::InjectResponse> ExperimentManager::Inject(Experiment experiment,
                                                             const std::string& client) {
  const Clock::time_point called = Clock::now();
  if (experiment.id().empty()) experiment.set_id(GenerateId());
  const std::string id = experiment.id();
  {
    std::lock_guard lock(mutex_);
    if (auto it = records_.find(id); it != records_.end() && it->second.status.state() == v1::STATE_FAILED) {
      // Nothing of a failed experiment remains, so its id may be tried again.
      std::erase(ended_order_, id);
      records_.erase(it);
    }
    if (auto it = records_.find(id); it != records_.end()) {
      if (!google::protobuf::util::MessageDifferencer::Equals(it->second.status.experiment(), experiment)) {
        return absl::AlreadyExistsError(Cat("experiment ", id, " already exists with a different spec"));
      }
      v1::InjectResponse response;
      *response.mutable_status() = Snapshot(it->second);
      response.set_created(false);
      return response;
    }
    if (limits_.max_experiments > 0) {
      int unfinished =
          static_cast<int>(std::count_if(records_.begin(), records_.end(), [](const auto& entry) {
            return !Ended(entry.second.status.state());
          }));
      if (unfinished >= limits_.max_experiments) {
        return absl::ResourceExhaustedError(
            Cat("experiment ", id, ": the agent already has ", unfinished,
                " experiments that have not ended, its limit (--max-experiments ", limits_.max_experiments,
                "); revert one or wait for one to end"));
      }
    }
    Record& record = records_[id];
    *record.status.mutable_experiment() = experiment;
    record.status.set_client(client);
    *record.status.mutable_created_at() = TimeUtil::GetCurrentTime();
    SetState(record, v1::STATE_PENDING, "accepted");
  }
  absl::Cleanup observe_latency = [&] {
    if (metrics_ != nullptr) metrics_->inject_seconds.Observe(Seconds(Clock::now() - called));
  };

  // Waits here while other experiments are applied: a revert or halt meanwhile is left in pending_end.
  std::lock_guard apply_lock(apply_mutex_);
  // Under apply_mutex_, so no other experiment is applied between this check and this one's apply.
  std::vector<faults::PlacedFault> placed = faults::Place(experiment);
  absl::Status failure = faults::CheckComposition(placed, ActivePlacements());
  Faults applied;
  if (failure.ok()) {
    const auto duration = ToNanos(experiment.duration());
    const Clock::time_point start = Clock::now();
    {
      std::lock_guard lock(mutex_);
      Record& record = records_.at(id);
      record.expires_at = start + std::chrono::duration_cast<Clock::duration>(duration);
      *record.status.mutable_expires_at() =
          TimeUtil::GetCurrentTime() + TimeUtil::NanosecondsToDuration(duration.count());
      SetState(record, v1::STATE_APPLYING, Cat("applying ", experiment.faults_size(), " fault(s)"));
    }
    // steady_clock is CLOCK_MONOTONIC, the clock bpf_ktime_get_ns() reads: programs and timer agree.
    faults::ApplyContext context;
    context.deadline_ns = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>((start + duration).time_since_epoch()).count());
    context.experiment = &experiment;
    for (int i = 0; i < experiment.faults_size(); i++) {
      {
        // A halt must not wait for the rest of a long apply: what is applied so far is undone below.
        std::lock_guard lock(mutex_);
        if (records_.at(id).pending_end) break;
      }
      context.index = i;
      auto active = drivers_.Apply(experiment.faults(i), context);
      if (!active.ok()) {
        failure = absl::Status(active.status().code(),
                               Cat("faults[", i, "] (", api::FaultKindName(experiment.faults(i)),
                                   "): ", active.status().message()));
        break;
      }
      applied.push_back(std::move(*active));
    }
  }
  if (!failure.ok()) {
    Unwind(applied);
    std::lock_guard lock(mutex_);
    Record& record = records_.at(id);
    *record.status.mutable_ended_at() = TimeUtil::GetCurrentTime();
    SetState(record, v1::STATE_FAILED, std::string(failure.message()));
    ended_order_.push_back(id);
    ForgetOldest();
    return failure;
  }

  std::unique_lock lock(mutex_);
  Record& record = records_.at(id);
  record.faults = std::move(applied);
  record.placed = std::move(placed);
  v1::InjectResponse response;
  response.set_created(true);
  if (record.pending_end) {
    // A revert or halt arrived while the experiment waited or was being applied: it never becomes
    // active, and the faults it got (all, some, or none) are undone now.
    auto [state, reason] = *record.pending_end;
    Faults faults = BeginRevert(record, reason);
    lock.unlock();
    *response.mutable_status() = FinishRevert(id, std::move(faults), state, reason, client);
    return response;
  }
  if (experiment.has_lease()) {
    record.lease_expires_at =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(ToNanos(experiment.lease().ttl()));
    *record.status.mutable_lease_expires_at() = TimeUtil::GetCurrentTime() + experiment.lease().ttl();
  }
  SetState(record, v1::STATE_ACTIVE, Cat("active for ", api::FormatDuration(experiment.duration())));
  *response.mutable_status() = Snapshot(record);
  lock.unlock();
  timer_wake_.notify_all();
  return response;
}

absl::StatusOr<ExperimentStatus> ExperimentManager::Get(const std::string& id) const {
  std::lock_guard lock(mutex_);
  auto it = records_.find(id);
  if (it == records_.end()) return absl::NotFoundError(Cat("experiment ", id, ": not found"));
  return Snapshot(it->second);
}

v1::ListResponse ExperimentManager::List(const std::vector<ExperimentState>& states) const {
  std::lock_guard lock(mutex_);
  v1::ListResponse response;
  for (const auto& [id, record] : records_) {
    if (!states.empty() && std::find(states.begin(), states.end(), record.status.state()) == states.end())
      continue;
    *response.add_experiments() = Snapshot(record);
  }
  return response;
}

absl::StatusOr<ExperimentStatus> ExperimentManager::Revert(const std::string& id, const std::string& reason,
                                                           const std::string& client) {
  Faults faults;
  {
    std::lock_guard lock(mutex_);
    auto it = records_.find(id);
    if (it == records_.end()) return absl::NotFoundError(Cat("experiment ", id, ": not found"));
    Record& record = it->second;
    if (record.status.state() == v1::STATE_PENDING || record.status.state() == v1::STATE_APPLYING) {
      record.pending_end = {v1::STATE_REVERTED, reason};
    }
    if (record.status.state() != v1::STATE_ACTIVE) return Snapshot(record);
    faults = BeginRevert(record, reason);
  }
  return FinishRevert(id, std::move(faults), v1::STATE_REVERTED, reason, client);
}

v1::HaltResponse ExperimentManager::Halt(const std::string& reason, const std::string& client) {
  // Never waits for apply_mutex_: an experiment being applied (or waiting to be) is only marked, and
  // its Inject undoes it once the fault in progress is applied. The response lists it as it is now.
  std::vector<std::pair<std::string, Faults>> halted;
  std::vector<ExperimentStatus> marked;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, record] : records_) {
      if (record.status.state() == v1::STATE_ACTIVE) halted.emplace_back(id, BeginRevert(record, reason));
      if (record.status.state() == v1::STATE_PENDING || record.status.state() == v1::STATE_APPLYING) {
        record.pending_end = {v1::STATE_ABORTED, reason};
        marked.push_back(Snapshot(record));
      }
    }
  }
  v1::HaltResponse response;
  for (auto& [id, faults] : halted) {
    *response.add_reverted() = FinishRevert(id, std::move(faults), v1::STATE_ABORTED, reason, client);
  }
  for (auto& status : marked) *response.add_reverted() = std::move(status);
  return response;
}

absl::StatusOr<v1::RenewLeaseResponse> ExperimentManager::RenewLease(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = records_.find(id);
  if (it == records_.end()) return absl::NotFoundError(Cat("experiment ", id, ": not found"));
  Record& record = it->second;
  if (!record.status.experiment().has_lease()) {
    return absl::FailedPreconditionError(Cat("experiment ", id, " was injected without a lease"));
  }
  if (record.status.state() != v1::STATE_ACTIVE) {
    return absl::FailedPreconditionError(
        Cat("experiment ", id, " is ", v1::ExperimentState_Name(record.status.state()), ", not active"));
  }
  const auto& ttl = record.status.experiment().lease().ttl();
  record.lease_expires_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(ToNanos(ttl));
  *record.status.mutable_lease_expires_at() = TimeUtil::GetCurrentTime() + ttl;
  v1::RenewLeaseResponse response;
  *response.mutable_lease_expires_at() = record.status.lease_expires_at();
  return response;
}

ExperimentManager::Census ExperimentManager::TakeCensus() const {
  std::lock_guard lock(mutex_);
  Census census;
  for (const auto& [id, record] : records_) {
    census.experiments[record.status.state()]++;
    if (record.status.state() != v1::STATE_ACTIVE) continue;
    for (size_t i = 0; i < record.faults.size(); i++) {
      census.active_faults[api::FaultKindName(record.status.experiment().faults(static_cast<int>(i)))]++;
    }
  }
  return census;
}

std::shared_ptr<Subscription> ExperimentManager::Subscribe(const std::string& id) {
  auto subscription = std::make_shared<Subscription>(id);
  std::lock_guard lock(mutex_);
  for (const auto& [record_id, record] : records_) {
    ExperimentEvent event;
    *event.mutable_time() = record.status.state_changed_at();
    event.set_experiment_id(record_id);
    event.set_state(record.status.state());
    event.set_reason(record.status.reason());
    subscription->Push(event);
  }
  subscriptions_.push_back(subscription);
  return subscription;
}

void ExperimentManager::CloseSubscriptions() {
  std::lock_guard lock(mutex_);
  for (auto& weak : subscriptions_) {
    if (auto subscription = weak.lock()) subscription->Close();
  }
  subscriptions_.clear();
}

void ExperimentManager::SetState(Record& record, ExperimentState state, const std::string& reason) {
  record.status.set_state(state);
  record.status.set_reason(reason);
  *record.status.mutable_state_changed_at() = TimeUtil::GetCurrentTime();
  ExperimentEvent event;
  *event.mutable_time() = record.status.state_changed_at();
  event.set_experiment_id(record.status.experiment().id());
  event.set_state(state);
  event.set_reason(reason);
  std::erase_if(subscriptions_, [&](const std::weak_ptr<Subscription>& weak) {
    auto subscription = weak.lock();
    if (subscription) subscription->Push(event);
    return !subscription;
  });
  log::Info("experiment.state")
      .With("id", record.status.experiment().id())
      .With("state", v1::ExperimentState_Name(state))
      .With("reason", reason)
      .With("client", record.status.client());
}

ExperimentStatus ExperimentManager::Snapshot(const Record& record) const {
  ExperimentStatus status = record.status;
  if (record.faults.empty()) return status;
  status.clear_faults();
  for (size_t i = 0; i < record.faults.size(); i++) {
    v1::AppliedFault* applied = status.add_faults();
    applied->set_index(static_cast<uint32_t>(i));
    applied->set_kind(api::FaultKindName(record.status.experiment().faults(static_cast<int>(i))));
    for (auto& object : record.faults[i]->KernelObjects()) applied->add_kernel_objects(std::move(object));
    record.faults[i]->FillStatus(*applied);
  }
  return status;
}

ExperimentManager::Faults ExperimentManager::BeginRevert(Record& record, const std::string& reason) {
  // The faults leave the wire first: the bookkeeping and the removal of their kernel objects after
  // this take longer than the stores that disarm them (bench/inject-latency, revert).
  for (auto& fault : record.faults) fault->Disarm();
  // Keep the last counters and objects, so Get after the revert still shows what the fault did.
  *record.status.mutable_faults() = Snapshot(record).faults();
  record.placed.clear();
  SetState(record, v1::STATE_REVERTING, reason);
  return std::move(record.faults);
}

ExperimentStatus ExperimentManager::FinishRevert(const std::string& id, Faults faults,
                                                 ExperimentState final_state, const std::string& reason,
                                                 const std::string& client) {
  const Clock::time_point started = Clock::now();
  Unwind(faults);
  if (metrics_ != nullptr) metrics_->revert_seconds.Observe(Seconds(Clock::now() - started));
  std::lock_guard lock(mutex_);
  Record& record = records_.at(id);
  record.faults.clear();
  *record.status.mutable_ended_at() = TimeUtil::GetCurrentTime();
  SetState(record, final_state, reason);
  log::Info("experiment.reverted").With("id", id).With("by", client).With("reason", reason);
  ExperimentStatus status = Snapshot(record);
  ended_order_.push_back(id);
  ForgetOldest();
  return status;
}

void ExperimentManager::ForgetOldest() {
  while (ended_order_.size() > kEndedHistory) {
    records_.erase(ended_order_.front());
    ended_order_.pop_front();
  }
}

std::vector<faults::PlacedFault> ExperimentManager::ActivePlacements() const {
  std::lock_guard lock(mutex_);
  std::vector<faults::PlacedFault> placed;
  for (const auto& [id, record] : records_) {
    if (record.status.state() == v1::STATE_ACTIVE)
      placed.insert(placed.end(), record.placed.begin(), record.placed.end());
  }
  return placed;
}

void ExperimentManager::TimerLoop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    Clock::time_point next = Clock::time_point::max();
    for (const auto& [id, record] : records_) {
      if (record.status.state() != v1::STATE_ACTIVE) continue;
      next = std::min({next, record.expires_at, record.lease_expires_at});
    }
    timer_wake_.wait_until(lock, next);
    if (stopping_) break;

    struct Due {
      std::string id;
      Faults faults;
      ExperimentState state;
      std::string reason;
    };
    std::vector<Due> due;
    const Clock::time_point now = Clock::now();
    for (auto& [id, record] : records_) {
      if (record.status.state() != v1::STATE_ACTIVE) continue;
      if (record.expires_at <= now) {
        std::string reason =
            Cat("duration ", api::FormatDuration(record.status.experiment().duration()), " ended");
        due.push_back({id, BeginRevert(record, reason), v1::STATE_EXPIRED, reason});
      } else if (record.lease_expires_at <= now) {
        std::string reason = Cat("lease lost: not renewed within ",
                                 api::FormatDuration(record.status.experiment().lease().ttl()));
        if (metrics_ != nullptr) metrics_->lease_losses.Increment();
        due.push_back({id, BeginRevert(record, reason), v1::STATE_ABORTED, reason});
      }
    }
    lock.unlock();
    for (auto& item : due) FinishRevert(item.id, std::move(item.faults), item.state, item.reason, "agent");
    lock.lock();
  }
}

}  // namespace faultline

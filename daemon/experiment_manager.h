// The lifecycle of experiments in the agent: apply all-or-nothing, expire on time, revert on request,
// on halt and on a missed lease, and tell watchers about every state change.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "faultline/api/validate.h"
#include "faultline/v1/agent.pb.h"
#include "faults/composition.h"
#include "faults/drivers.h"
#include "metrics.h"

namespace faultline {

// A watcher's queue of events. Closed when the agent shuts down.
class Subscription {
 public:
  explicit Subscription(std::string id) : id_(std::move(id)) {}
  // Waits up to `timeout` for the next event; false on timeout or once closed and drained.
  bool Next(faultline::v1::ExperimentEvent& event, std::chrono::milliseconds timeout);
  bool closed() const;

 private:
  friend class ExperimentManager;
  void Push(const faultline::v1::ExperimentEvent& event);
  void Close();

  const std::string id_;  // empty: every experiment
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<faultline::v1::ExperimentEvent> events_;
  bool closed_ = false;
};

class ExperimentManager {
 public:
  // `metrics`, when given, is told of injects, reverts and lost leases. Not owned.
  ExperimentManager(faults::FaultDrivers& drivers, api::Limits limits,
                    metrics::AgentMetrics* metrics = nullptr);
  // Stops the timer. Experiments still active are left to their BPF deadlines: call Halt first.
  ~ExperimentManager();
  ExperimentManager(const ExperimentManager&) = delete;
  ExperimentManager& operator=(const ExperimentManager&) = delete;

  // `experiment` must be valid (api::ValidateExperiment). Returns the status and whether it was new.
  // RESOURCE_EXHAUSTED when limits.max_experiments have not ended. A revert or halt that arrives
  // meanwhile stops the apply after the fault being applied and undoes what was applied.
  absl::StatusOr<faultline::v1::InjectResponse> Inject(faultline::v1::Experiment experiment,
                                                       const std::string& client);
  absl::StatusOr<faultline::v1::ExperimentStatus> Get(const std::string& id) const;
  faultline::v1::ListResponse List(const std::vector<faultline::v1::ExperimentState>& states) const;
  absl::StatusOr<faultline::v1::ExperimentStatus> Revert(const std::string& id, const std::string& reason,
                                                         const std::string& client);
  faultline::v1::HaltResponse Halt(const std::string& reason, const std::string& client);
  absl::StatusOr<faultline::v1::RenewLeaseResponse> RenewLease(const std::string& id);

  // How many experiments are in each state, and how many faults of each kind the active ones have.
  struct Census {
    std::map<faultline::v1::ExperimentState, int> experiments;
    std::map<std::string, int> active_faults;
  };
  Census TakeCensus() const;

  // Registers a watcher; the current state of the selected experiments is queued first.
  std::shared_ptr<Subscription> Subscribe(const std::string& id);
  // Closes every subscription, so Watch streams end.
  void CloseSubscriptions();

 private:
  using Clock = std::chrono::steady_clock;
  struct Record {
    faultline::v1::ExperimentStatus status;
    std::vector<std::unique_ptr<faults::ActiveFault>> faults;
    std::vector<faults::PlacedFault> placed;  // where its network faults act, for CheckComposition
    Clock::time_point expires_at;
    Clock::time_point lease_expires_at = Clock::time_point::max();
    // A revert or halt that arrived while the experiment was being applied.
    std::optional<std::pair<faultline::v1::ExperimentState, std::string>> pending_end;
  };
  using Faults = std::vector<std::unique_ptr<faults::ActiveFault>>;

  // All under mutex_.
  void SetState(Record& record, faultline::v1::ExperimentState state, const std::string& reason);
  faultline::v1::ExperimentStatus Snapshot(const Record& record) const;
  Faults BeginRevert(Record& record, const std::string& reason);
  void ForgetOldest();
  // The placed faults of every active experiment, which a new one must compose with.
  std::vector<faults::PlacedFault> ActivePlacements() const;

  // Undoes `faults` outside the lock, then records the final state.
  faultline::v1::ExperimentStatus FinishRevert(const std::string& id, Faults faults,
                                               faultline::v1::ExperimentState final_state,
                                               const std::string& reason, const std::string& client);
  void TimerLoop();

  faults::FaultDrivers& drivers_;
  const api::Limits limits_;
  metrics::AgentMetrics* const metrics_;

  mutable std::mutex mutex_;
  std::condition_variable timer_wake_;
  bool stopping_ = false;
  std::map<std::string, Record> records_;
  std::deque<std::string> ended_order_;  // ended experiments, oldest first, for bounded history
  std::vector<std::weak_ptr<Subscription>> subscriptions_;
  std::mutex apply_mutex_;  // one experiment changes the kernel at a time
  std::thread timer_;
};

}  // namespace faultline

#include "runner.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "agent_client.h"
#include "faultline/api/cat.h"
#include "probe.h"
#include "selection.h"

namespace faultline::ctl {
namespace {

using api::Cat;
using Clock = std::chrono::steady_clock;
namespace v1 = faultline::v1;

constexpr auto kCallTimeout = std::chrono::seconds(10);

// A call that waits out a connection being (re)made, up to its deadline: a busy agent whose
// connection attempt timed out once must not end a run.
std::unique_ptr<grpc::ClientContext> Within(std::chrono::seconds timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + timeout);
  context->set_wait_for_ready(true);
  return context;
}

// One agent of the run.
struct Target {
  InventoryAgent agent;
  std::unique_ptr<v1::Agent::Stub> stub;
  std::atomic<bool> injected{false};  // read by the lease keeper's thread
};
using Targets = std::vector<std::unique_ptr<Target>>;

// The targets whose experiment is in force.
std::vector<Target*> Injected(const Targets& targets) {
  std::vector<Target*> injected;
  for (const auto& target : targets) {
    if (target->injected) injected.push_back(target.get());
  }
  return injected;
}

// Sends one call to each of `targets` at once, then hands each answer to `answered` as it comes, on
// this thread; returns when all have answered or their deadlines passed. A fan-out costs one round
// trip, not one per agent, and makes no thread: its calls share one completion queue, polled here.
// `start` begins one target's call (stub.AsyncGet(context, request, queue)); `answered` takes the
// target, the call's status and the response.
template <typename Response, typename Start, typename Answered>
void CallEach(const std::vector<Target*>& targets, Start start, Answered answered) {
  struct Call {
    Target* target = nullptr;
    std::unique_ptr<grpc::ClientContext> context = Within(kCallTimeout);
    std::unique_ptr<grpc::ClientAsyncResponseReader<Response>> reader;
    Response response;
    grpc::Status status;
  };
  grpc::CompletionQueue queue;
  std::vector<Call> calls(targets.size());  // never resized: each call's address is its tag
  for (size_t i = 0; i < targets.size(); i++) {
    Call& call = calls[i];
    call.target = targets[i];
    call.reader = start(*call.target, call.context.get(), &queue);
    call.reader->Finish(&call.response, &call.status, &call);
  }
  void* tag = nullptr;
  bool ok = false;
  for (size_t left = calls.size(); left > 0 && queue.Next(&tag, &ok); left--) {
    Call& call = *static_cast<Call*>(tag);
    answered(*call.target, call.status, call.response);
  }
  // A queue must be shut down and drained before it is destroyed; nothing is left in it by now.
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
}

// A probe's value as far as it means anything: 501.9 ms, 0.0001234.
std::string FourDigits(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.4g", value);
  return text;
}

// Sleeps up to `time`; false if `interrupted` is (or becomes) set.
bool SleepUnless(const std::atomic<bool>* interrupted, Clock::duration time) {
  auto set = [interrupted] { return interrupted != nullptr && interrupted->load(); };
  for (auto end = Clock::now() + time; Clock::now() < end;) {
    if (set()) return false;
    std::this_thread::sleep_for(
        std::min<Clock::duration>(std::chrono::milliseconds(100), end - Clock::now()));
  }
  return !set();
}

class Run {
 public:
  Run(const ExperimentFile& file, const RunOptions& options) : options_(options) {
    if (!options.journal.empty()) journal_.open(options.journal, std::ios::app);
    record_.experiment = file.metadata.name;
    record_.path = file.path;
    record_.description = file.metadata.description;
    record_.duration = std::chrono::duration_cast<Milliseconds>(
        std::chrono::seconds(file.experiment.duration().seconds()) +
        std::chrono::nanoseconds(file.experiment.duration().nanos()));
    for (const Probe& probe : file.steady_state.probes) record_.probes.push_back(probe.name);
    record_.started = std::chrono::system_clock::now();
  }

  // Every event: into the record, to the observer, and as a JSON line into the journal.
  void Emit(const std::string& phase, const std::string& event, std::map<std::string, std::string> fields) {
    std::lock_guard lock(mutex_);  // the lease keeper's thread reports too
    std::erase_if(fields, [](const auto& field) { return field.second.empty(); });
    RunEvent& recorded = record_.events.emplace_back(
        RunEvent{std::chrono::system_clock::now(), phase, event, std::move(fields)});
    if (options_.observe) options_.observe(record_, recorded);
    if (journal_.is_open()) journal_ << EventJson(record_.experiment, recorded) << "\n" << std::flush;
  }

  bool Sleep(Clock::duration time) const { return SleepUnless(options_.interrupted, time); }

  // Every probe once; whether all were healthy.
  bool Steady(const SteadyState& steady_state, const std::string& phase) {
    bool healthy = true;
    for (const Probe& probe : steady_state.probes) {
      ProbeResult result = RunProbe(probe);
      healthy &= result.healthy;
      Emit(phase, "probe",
           {{"probe", probe.name},
            {"healthy", result.healthy ? "true" : "false"},
            {"observed", result.observed},
            {"value", result.value ? FourDigits(*result.value) : ""}});
    }
    return healthy;
  }

  RunRecord Finish(int exit_code) {
    std::lock_guard lock(mutex_);
    record_.exit_code = exit_code;
    record_.finished = std::chrono::system_clock::now();
    return std::move(record_);
  }

 private:
  const RunOptions& options_;
  std::mutex mutex_;
  std::ofstream journal_;
  RunRecord record_;
};

// Renews every injected agent's lease at a third of its TTL until stopped.
class LeaseKeeper {
 public:
  LeaseKeeper(Targets& targets, const std::string& id, std::chrono::milliseconds ttl, Run& run)
      : thread_([this, &targets, id, ttl, &run] {
          std::unique_lock lock(mutex_);
          while (!wake_.wait_for(lock, ttl / 3, [this] { return stop_; })) {
            CallEach<v1::RenewLeaseResponse>(
                Injected(targets),
                [&id](Target& target, grpc::ClientContext* context, grpc::CompletionQueue* queue) {
                  v1::RenewLeaseRequest request;
                  request.set_id(id);
                  return target.stub->AsyncRenewLease(context, request, queue);
                },
                [&run](Target& target, const grpc::Status& status, const v1::RenewLeaseResponse&) {
                  if (status.ok()) return;
                  run.Emit("during", "lease-renewal-failed",
                           {{"agent", target.agent.name}, {"error", status.error_message()}});
                });
          }
        }) {}
  ~LeaseKeeper() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

// Every injected agent at once.
void RevertAll(Targets& targets, const std::string& id, const std::string& reason, Run& run) {
  CallEach<v1::ExperimentStatus>(
      Injected(targets),
      [&](Target& target, grpc::ClientContext* context, grpc::CompletionQueue* queue) {
        v1::RevertRequest request;
        request.set_id(id);
        request.set_reason(reason);
        return target.stub->AsyncRevert(context, request, queue);
      },
      [&run](Target& target, const grpc::Status& result, const v1::ExperimentStatus& status) {
        run.Emit("revert", result.ok() ? "reverted" : "revert-failed",
                 {{"agent", target.agent.name},
                  {"state", result.ok() ? v1::ExperimentState_Name(status.state()).substr(6) : ""},
                  {"error", result.ok() ? "" : result.error_message()}});
        target.injected = !result.ok();
      });
}

// --dry-run: every selected agent answers and implements every fault; nothing is injected.
int DryRun(const Targets& targets, const ExperimentFile& file, Run& run) {
  int outcome = kRunHeld;
  std::vector<Target*> all;
  for (const auto& target : targets) all.push_back(target.get());
  CallEach<v1::CapabilitiesResponse>(
      all,
      [](Target& target, grpc::ClientContext* context, grpc::CompletionQueue* queue) {
        return target.stub->AsyncCapabilities(context, v1::CapabilitiesRequest(), queue);
      },
      [&](Target& target, const grpc::Status& status, const v1::CapabilitiesResponse& capabilities) {
        if (!status.ok()) {
          run.Emit("select", "failed", {{"agent", target.agent.name}, {"error", status.error_message()}});
          outcome = kRunError;
          return;
        }
        const auto& implemented = capabilities.implemented_faults();
        std::string missing;
        const v1::Experiment experiment = ForAgent(file.experiment, target.agent);
        for (const v1::Fault& fault : experiment.faults()) {
          const std::string kind(fault.GetDescriptor()->FindFieldByNumber(fault.kind_case())->name());
          if (std::find(implemented.begin(), implemented.end(), kind) == implemented.end())
            missing += (missing.empty() ? "" : ",") + kind;
        }
        run.Emit("select", missing.empty() ? "ready" : "failed",
                 {{"agent", target.agent.name},
                  {"kernel", capabilities.kernel_release()},
                  {"error", missing.empty() ? "" : Cat("does not implement ", missing)}});
        if (!missing.empty()) outcome = kRunError;
      });
  if (outcome != kRunHeld) return outcome;
  if (!run.Steady(file.steady_state, "before")) {
    run.Emit("before", "not-steady", {});
    return kRunNotSteady;
  }
  run.Emit("before", "dry-run",
           {{"faults", Cat(file.experiment.faults_size())}, {"agents", Cat(targets.size())}});
  return kRunHeld;
}

int Execute(const ExperimentFile& file, const Inventory& inventory, const RunOptions& options, Run& run) {
  auto selected = SelectAgents(inventory, file.agents, options.seed);
  if (!selected.ok()) {
    run.Emit("select", "failed", {{"error", std::string(selected.status().message())}});
    return kRunError;
  }
  Targets targets;
  std::string names;
  for (const InventoryAgent& agent : *selected) {
    auto stub = ConnectAgent(agent.address, agent.tls);
    if (!stub.ok()) {
      run.Emit("select", "failed", {{"agent", agent.name}, {"error", std::string(stub.status().message())}});
      return kRunError;
    }
    targets.push_back(std::make_unique<Target>());
    targets.back()->agent = agent;
    targets.back()->stub = *std::move(stub);
    names += (names.empty() ? "" : ",") + agent.name;
  }
  run.Emit("select", "agents", {{"agents", names}, {"seed", Cat(options.seed)}});
  if (options.dry_run) return DryRun(targets, file, run);

  if (!run.Steady(file.steady_state, "before")) {
    run.Emit("before", "not-steady", {});
    return kRunNotSteady;
  }
  const std::string id = Cat(file.metadata.name, "-", std::time(nullptr));
  const auto duration = std::chrono::seconds(file.experiment.duration().seconds()) +
                        std::chrono::nanoseconds(file.experiment.duration().nanos());
  const auto ttl = std::chrono::milliseconds(file.experiment.lease().ttl().seconds() * 1000 +
                                             file.experiment.lease().ttl().nanos() / 1'000'000);
  LeaseKeeper leases(targets, id, ttl, run);
  const size_t wave =
      file.rollout.wave_size > 0 ? static_cast<size_t>(file.rollout.wave_size) : targets.size();
  const Clock::time_point injected_at = Clock::now();
  for (size_t first = 0; first < targets.size(); first += wave) {
    if (first > 0 && !run.Sleep(file.rollout.pause)) {
      run.Emit("inject", "interrupted", {});
      RevertAll(targets, id, "interrupted", run);
      return kRunAborted;
    }
    // The whole wave at once. If an agent refuses, the others of the wave may have taken it by then:
    // everything injected so far is reverted.
    std::vector<Target*> agents_of_wave;
    for (size_t i = first; i < std::min(targets.size(), first + wave); i++)
      agents_of_wave.push_back(targets[i].get());
    std::string refused;  // the first agent of the wave that failed
    CallEach<v1::InjectResponse>(
        agents_of_wave,
        [&](Target& target, grpc::ClientContext* context, grpc::CompletionQueue* queue) {
          v1::InjectRequest request;
          *request.mutable_experiment() = ForAgent(file.experiment, target.agent);
          request.mutable_experiment()->set_id(id);
          return target.stub->AsyncInject(context, request, queue);
        },
        [&](Target& target, const grpc::Status& status, const v1::InjectResponse&) {
          if (!status.ok()) {
            run.Emit("inject", "failed", {{"agent", target.agent.name}, {"error", status.error_message()}});
            if (refused.empty()) refused = target.agent.name;
            return;
          }
          target.injected = true;
          run.Emit("inject", "active", {{"agent", target.agent.name}, {"id", id}});
        });
    if (!refused.empty()) {
      RevertAll(targets, id, Cat("agent ", refused, " failed to inject"), run);
      return kRunError;
    }
  }

  int outcome = kRunHeld;
  int failures = 0;
  while (Clock::now() - injected_at < duration) {
    const auto left = duration - (Clock::now() - injected_at);
    if (!run.Sleep(std::min<Clock::duration>(file.steady_state.interval, left))) {
      run.Emit("during", "interrupted", {});
      outcome = kRunAborted;
      break;
    }
    if (Clock::now() - injected_at >= duration) break;
    CallEach<v1::ExperimentStatus>(
        Injected(targets),
        [&id](Target& target, grpc::ClientContext* context, grpc::CompletionQueue* queue) {
          v1::GetRequest request;
          request.set_id(id);
          return target.stub->AsyncGet(context, request, queue);
        },
        [&](Target& target, const grpc::Status& result, const v1::ExperimentStatus& status) {
          if (result.ok() && status.state() == v1::STATE_ACTIVE) return;
          run.Emit("during", "agent-ended",
                   {{"agent", target.agent.name},
                    {"state", result.ok() ? v1::ExperimentState_Name(status.state()).substr(6) : ""},
                    {"error", result.ok() ? status.reason() : result.error_message()}});
          outcome = kRunAborted;
        });
    if (outcome != kRunHeld) break;
    failures = run.Steady(file.steady_state, "during") ? 0 : failures + 1;
    if (failures >= file.steady_state.failures_to_abort) {
      run.Emit("during", "deviated", {{"failed-rounds", Cat(failures)}});
      outcome = kRunDeviated;
      break;
    }
  }
  RevertAll(targets, id,
            outcome == kRunHeld       ? "duration ended"
            : outcome == kRunDeviated ? "the steady state failed"
                                      : "aborted",
            run);
  if (outcome == kRunAborted) return outcome;

  // The steady state must come back within recover_within.
  const Clock::time_point reverted_at = Clock::now();
  bool recovered = run.Steady(file.steady_state, "after");
  while (!recovered && Clock::now() - reverted_at < file.steady_state.recover_within) {
    if (!run.Sleep(std::chrono::seconds(1))) {
      run.Emit("after", "interrupted", {});
      return kRunAborted;
    }
    recovered = run.Steady(file.steady_state, "after");
  }
  if (!recovered) {
    run.Emit("after", "not-recovered", {});
    return kRunDeviated;
  }
  run.Emit("after", outcome == kRunHeld ? "held" : "recovered", {});
  return outcome;
}

}  // namespace

RunRecord RunExperiment(const ExperimentFile& file, const Inventory& inventory, const RunOptions& options) {
  Run run(file, options);
  return run.Finish(Execute(file, inventory, options, run));
}

std::vector<RunRecord> RunGameDay(const GameDayFile& file, const Inventory& inventory,
                                  const RunOptions& options) {
  std::vector<RunRecord> runs;
  for (const GameDayStep& step : file.steps) {
    runs.push_back(RunExperiment(step.experiment, inventory, options));
    const bool failed = runs.back().exit_code != kRunHeld;
    if ((failed && !file.continue_on_failure) || &step == &file.steps.back() ||
        !SleepUnless(options.interrupted, step.pause_after))
      break;
  }
  return runs;
}

int GameDayExit(const GameDayFile& file, const std::vector<RunRecord>& runs) {
  for (const RunRecord& run : runs) {
    if (run.exit_code != kRunHeld) return run.exit_code;
  }
  return runs.size() == file.steps.size() ? kRunHeld : kRunAborted;
}

}  // namespace faultline::ctl

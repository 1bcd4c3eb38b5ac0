// faultctl: the faultline controller CLI. Exit codes: 0 success; 1 the agent refused or failed the
// request (its message on stderr); 2 bad command line or experiment (checked before sending);
// 3 the agent could not be reached or did not answer in time; 130 `inject --wait` was interrupted
// (the experiment was reverted).
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <thread>

#include "agent_client.h"
#include "experiment_file.h"
#include "fault_spec.h"
#include "faultline/api/cat.h"
#include "faultline/api/units.h"
#include "faultline/api/validate.h"
#include "format.h"
#include "html_report.h"
#include "junit_report.h"
#include "live_view.h"
#include "runner.h"
#include "scheduler.h"

namespace {

using faultline::api::Cat;
namespace v1 = faultline::v1;

constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnreachable = 3;
constexpr int kExitInterrupted = 130;  // as a shell reports a command ended by SIGINT

struct Options {
  std::string agent;
  faultline::api::TlsFiles tls;
  bool json = false;
  std::string timeout = "30s";
};

struct InjectFlags {
  std::string id;
  std::string duration;
  std::string lease;
  std::vector<std::string> labels;
  bool wait = false;
  faultline::ctl::FaultSpec spec;
};

struct UsageError {
  std::string message;
};

std::atomic<bool> interrupted{false};

class Agent {
 public:
  explicit Agent(const Options& options) : options_(options) {
    address_ = faultline::ctl::ResolveAgentAddress(options.agent);
    auto stub = faultline::ctl::ConnectAgent(address_, options.tls);
    if (!stub.ok()) throw UsageError{std::string(stub.status().message())};
    stub_ = *std::move(stub);
    auto timeout = faultline::api::ParseDuration(options.timeout);
    if (!timeout.ok()) throw UsageError{Cat("--timeout: ", timeout.status().message())};
    timeout_ = std::chrono::seconds(timeout->seconds()) + std::chrono::nanoseconds(timeout->nanos());
  }

  std::unique_ptr<grpc::ClientContext> Context() const {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout_));
    return context;
  }

  // Prints the agent's error and returns the exit code for it.
  int Failed(const grpc::Status& status) const {
    bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    std::fprintf(stderr, "faultctl: %s%s\n", unreachable ? Cat("agent ", address_, ": ").c_str() : "",
                 status.error_message().c_str());
    return unreachable ? kExitUnreachable : kExitRefused;
  }

  template <typename Message>
  int Print(const Message& message, const std::string& human) const {
    std::cout << (options_.json ? faultline::ctl::ToJson(message) + "\n" : human);
    return 0;
  }

  // One unary call: the answer printed with `format` (or as JSON), or the agent's error.
  template <typename Request, typename Response, typename Format>
  int Call(grpc::Status (v1::Agent::Stub::*rpc)(grpc::ClientContext*, const Request&, Response*),
           const Request& request, Format format) {
    Response response;
    grpc::Status status = (stub_.get()->*rpc)(Context().get(), request, &response);
    if (!status.ok()) return Failed(status);
    return Print(response, format(response));
  }

  v1::Agent::Stub& stub() { return *stub_; }
  bool json() const { return options_.json; }

 private:
  const Options& options_;
  std::string address_;
  std::unique_ptr<v1::Agent::Stub> stub_;
  std::chrono::nanoseconds timeout_{};
};

template <typename T>
T OrUsage(absl::StatusOr<T> value, const std::string& flag) {
  if (!value.ok()) throw UsageError{Cat(flag, ": ", value.status().message())};
  return *std::move(value);
}

// The faultctl option for a fault option's name (fault_spec.h).
std::string FlagFor(const std::string& option) {
  const std::pair<const char*, const char*> renamed[] = {{"interface", "--iface"},
                                                         {"peers", "--peer"},
                                                         {"excludedPeers", "--exclude"},
                                                         {"ports", "--port"},
                                                         {"keepOrder", "--keep-order"}};
  for (const auto& [name, flag] : renamed) {
    if (option == name) return flag;
  }
  return "--" + option;
}

v1::Experiment BuildExperiment(const InjectFlags& flags, const std::string& kind) {
  v1::Experiment experiment;
  experiment.set_id(flags.id);
  if (flags.duration.empty()) throw UsageError{"--duration: required, e.g. --duration 30s"};
  *experiment.mutable_duration() = OrUsage(faultline::api::ParseDuration(flags.duration), "--duration");
  if (!flags.lease.empty()) {
    *experiment.mutable_lease()->mutable_ttl() =
        OrUsage(faultline::api::ParseDuration(flags.lease), "--lease");
  }
  for (const auto& label : flags.labels) {
    size_t equals = label.find('=');
    if (equals == std::string::npos) throw UsageError{Cat("--label: \"", label, "\" is not KEY=VALUE")};
    (*experiment.mutable_labels())[label.substr(0, equals)] = label.substr(equals + 1);
  }
  faultline::ctl::SpecError bad;
  auto faults = faultline::ctl::BuildFaults(kind, flags.spec, &bad);
  if (!faults.ok()) throw UsageError{Cat(FlagFor(bad.option), ": ", bad.message)};
  for (auto& fault : *faults) *experiment.add_faults() = std::move(fault);
  // The agent checks again; checking here gives the same message without a round trip.
  if (absl::Status s = faultline::api::ValidateExperiment(experiment, {}); !s.ok()) {
    throw UsageError{Cat("invalid experiment: ", s.message())};
  }
  return experiment;
}

bool IsEnded(v1::ExperimentState state) {
  return state == v1::STATE_REVERTED || state == v1::STATE_FAILED || state == v1::STATE_EXPIRED ||
         state == v1::STATE_ABORTED;
}

// Follows an experiment until it ends; Ctrl-C or SIGTERM reverts it first.
int WaitForEnd(Agent& agent, const std::string& id) {
  grpc::ClientContext context;
  v1::WatchRequest request;
  request.set_id(id);
  auto stream = agent.stub().Watch(&context, request);
  std::atomic<bool> done{false};
  std::thread interrupter([&] {
    while (!done && !interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (!interrupted) return;
    v1::RevertRequest revert;
    revert.set_id(id);
    revert.set_reason("interrupted: faultctl got a signal while waiting");
    v1::ExperimentStatus status;
    (void)agent.stub().Revert(agent.Context().get(), revert, &status);
  });
  v1::ExperimentEvent event;
  v1::ExperimentState last = v1::STATE_UNSPECIFIED;
  while (stream->Read(&event)) {
    agent.Print(event, faultline::ctl::FormatEvent(event));
    last = event.state();
    if (IsEnded(last)) break;
  }
  done = true;
  context.TryCancel();
  interrupter.join();
  (void)stream->Finish();
  if (!IsEnded(last)) {
    std::fprintf(stderr, "faultctl: lost the agent while waiting for %s to end\n", id.c_str());
    return kExitUnreachable;
  }
  if (interrupted) return kExitInterrupted;
  return last == v1::STATE_FAILED ? kExitRefused : 0;
}

void AddTargetFlags(CLI::App* command, faultline::ctl::TargetSpec& flags) {
  command->add_option("--netns", flags.netns, "network namespace path: /proc/PID/ns/net or /run/netns/NAME");
  command->add_option("--pid", flags.pid, "fault the network namespace of this process");
  command->add_option("--iface", flags.interface, "interface to fault")->required();
  command->add_option("--direction", flags.direction, "egress, ingress or both")->capture_default_str();
  command->add_option("--peer", flags.peers, "peer CIDR (repeatable); none: every peer");
  command->add_option("--exclude", flags.excluded_peers, "CIDR never faulted (repeatable)");
  command->add_option("--port", flags.ports, "port or range N-M, source or destination (repeatable)");
  command->add_option("--protocol", flags.protocol, "tcp, udp, icmp or all")->capture_default_str();
}

void AddInjectCommand(CLI::App* inject, const std::string& kind, const std::string& what, InjectFlags& flags,
                      std::string& chosen) {
  CLI::App* command = inject->add_subcommand(kind, what);
  faultline::ctl::FaultSpec& spec = flags.spec;
  if (kind == "loss" || kind == "duplicate" || kind == "corrupt" || kind == "reorder") {
    command->add_option("--percent", spec.percent, "share of packets, 0-100");
    command->add_option("--correlation", spec.correlation, "percent of the previous draw kept (netem)");
  }
  if (kind == "loss") {
    command->add_option("--model", spec.model, "ebpf, netem or gilbert-elliott")->capture_default_str();
    command->add_option("--p", spec.ge_p, "gilbert-elliott: percent chance of going from good to bad");
    command->add_option("--r", spec.ge_r, "gilbert-elliott: percent chance of going from bad to good");
    command->add_option("--h", spec.ge_h, "gilbert-elliott: percent of packets kept in the bad state");
    command->add_option("--k", spec.ge_k, "gilbert-elliott: percent of packets lost in the good state");
  }
  if (kind == "delay" || kind == "reorder") {
    command->add_option("--latency", spec.latency, "added delay, e.g. 50ms")->required();
    command->add_option("--jitter", spec.jitter, "spread around the latency, e.g. 10ms");
    command->add_option("--distribution", spec.distribution, "uniform, normal, pareto or paretonormal")
        ->capture_default_str();
  }
  if (kind == "delay") {
    command->add_option("--correlation", spec.correlation, "percent of the previous delay kept");
    command->add_flag("--keep-order", spec.keep_order, "never reorder packets under jitter");
  }
  if (kind == "reorder") command->add_option("--gap", spec.gap, "send every Nth packet at once (netem gap)");
  if (kind == "bandwidth") {
    command->add_option("--rate", spec.rate, "e.g. 10mbit, 1gbit, 500kbps")->required();
    command->add_option("--burst", spec.burst, "bucket size, e.g. 32k (default: 10 ms at the rate)");
    command->add_option("--limit", spec.limit, "bytes that may queue, e.g. 64k (default: 50 ms at the rate)");
    command->add_option("--shaper", spec.shaper, "tbf, htb or netem")->capture_default_str();
  }
  if (kind == "cpu") {
    command->add_option("--load", spec.load, "percent of each CPU's time, 1-100")->required();
    command->add_option("--workers", spec.workers, "threads, each loading one CPU (default 1)");
    command->add_option("--cpus", spec.cpus, "pin one worker to each of these CPUs, e.g. --cpus 0,2")
        ->delimiter(',');
    command->add_option("--nice", spec.nice, "the workers' nice level, -20..19");
  }
  if (kind == "memory") {
    command->add_option("--size", spec.size, "e.g. 512MiB, 2GiB, or 10% of MemTotal")->required();
    command->add_option("--grow", spec.grow, "reach the size at this rate, e.g. 64MiB/s (default: at once)");
  }
  if (faultline::ctl::IsStressKind(kind)) {
    command->add_option("--cgroup", spec.cgroup,
                        "cgroup v2 path (absolute, or under the cgroup2 mount) the workers join");
  } else {
    AddTargetFlags(command, flags.spec.target);
  }
  command->add_option("--duration", flags.duration, "how long the fault lasts, e.g. 30s, 5m")->required();
  command->add_option("--id", flags.id, "experiment id (default: generated); the same id again is a no-op");
  command->add_option("--lease", flags.lease,
                      "revert unless renewed within this time (renewed while --wait runs)");
  command->add_option("--label", flags.labels, "KEY=VALUE label (repeatable)");
  command->add_flag("--wait", flags.wait, "stay until the experiment ends; Ctrl-C reverts it");
  command->callback([&chosen, kind] { chosen = kind; });
}

// `faultctl validate`: every file checked offline; 0 when all are valid, kExitUsage otherwise.
int ValidateFiles(const std::vector<std::string>& files) {
  int status = 0;
  for (const std::string& file : files) {
    const std::string kind = faultline::ctl::FileKind(file);
    absl::Status loaded;
    std::string summary;
    if (kind == "Experiment") {
      auto experiment = faultline::ctl::LoadExperiment(file);
      loaded = experiment.status();
      if (loaded.ok()) {
        summary = Cat("Experiment ", experiment->metadata.name, ": ", experiment->experiment.faults_size(),
                      " fault(s), ", experiment->steady_state.probes.size(), " probe(s), ",
                      faultline::api::FormatDuration(experiment->experiment.duration()));
      }
    } else if (kind == "GameDay") {
      auto game_day = faultline::ctl::LoadGameDay(file);
      loaded = game_day.status();
      if (loaded.ok())
        summary = Cat("GameDay ", game_day->metadata.name, ": ", game_day->steps.size(), " step(s)");
    } else if (kind == "Inventory") {
      auto inventory = faultline::ctl::LoadInventory(file);
      loaded = inventory.status();
      if (loaded.ok()) summary = Cat("Inventory: ", inventory->agents.size(), " agent(s)");
    } else if (kind == "Schedule") {
      auto schedule = faultline::ctl::LoadSchedule(file);
      loaded = schedule.status();
      if (loaded.ok()) {
        summary = Cat("Schedule ", schedule->metadata.name, ": ", schedule->runs.size(), " run(s), ",
                      schedule->blackouts.size(), " blackout window(s), time zone ", schedule->zone.name());
      }
    } else {
      loaded = absl::InvalidArgumentError(Cat(
          file,
          ": not a faultline file (kind Experiment, GameDay, Inventory or Schedule), or not readable YAML"));
    }
    if (loaded.ok()) {
      std::printf("%s: valid %s\n", file.c_str(), summary.c_str());
    } else {
      std::fprintf(stderr, "faultctl: %s\n", std::string(loaded.message()).c_str());
      status = kExitUsage;
    }
  }
  return status;
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  return out.good();
}

// The flags `faultctl run` and `faultctl gameday run` share.
struct RunFlags {
  std::string file;
  std::string inventory;
  std::string journal;
  std::string junit;
  std::string html;
  uint64_t seed = std::random_device()();
  std::string duration;  // in place of every experiment's own
  std::string pause;     // in place of a game day's pauses
  bool dry_run = false;
  bool no_progress = false;
  std::string line_suffix;  // after each event's line

  // --duration and --pause applied to the file's experiments and steps; false (with a message) if
  // either is malformed.
  bool Override(const std::vector<faultline::ctl::ExperimentFile*>& experiments,
                std::vector<faultline::ctl::GameDayStep>* steps = nullptr) const {
    std::optional<faultline::ctl::Milliseconds> new_duration, new_pause;
    if (!FlagDuration("--duration", duration, new_duration) || !FlagDuration("--pause", pause, new_pause))
      return false;
    for (auto* experiment : experiments) {
      if (new_duration) faultline::ctl::OverrideDuration(*experiment, *new_duration);
    }
    if (steps != nullptr && new_pause) {
      for (auto& step : *steps) step.pause_after = *new_pause;
    }
    return true;
  }

 private:
  // A duration flag's value, if given; false when malformed (the message printed).
  static bool FlagDuration(const char* flag, const std::string& text,
                           std::optional<faultline::ctl::Milliseconds>& value) {
    if (text.empty()) return true;
    auto parsed = faultline::api::ParseDuration(text);
    if (!parsed.ok()) {
      std::fprintf(stderr, "faultctl: %s: %s\n", flag, std::string(parsed.status().message()).c_str());
      return false;
    }
    value = faultline::ctl::Milliseconds(parsed->seconds() * 1000 + parsed->nanos() / 1'000'000);
    return true;
  }
};

void AddRunFlags(CLI::App* command, RunFlags& flags) {
  command->add_option("--inventory", flags.inventory,
                      "the agents to choose from; default: the agent of --agent");
  command->add_option("--seed", flags.seed, "repeats an earlier run's choice of agents (it prints its seed)");
  command->add_option("--journal", flags.journal, "append every event to this file as a JSON line");
  command->add_option("--junit", flags.junit, "write a JUnit XML report here, for CI systems");
  command->add_option("--html", flags.html, "write a self-contained HTML report with a timeline here");
  command->add_option("--duration", flags.duration,
                      "a trial run: this duration in place of the file's (e.g. 10s)");
  command->add_flag("--dry-run", flags.dry_run,
                    "check the agents, their faults and the steady state; inject nothing");
  command->add_flag("--no-progress", flags.no_progress, "one line per event, also on a terminal");
}

// The inventory of --inventory, or the one agent of --agent (then every experiment runs on it,
// whatever its files select: `clear_selection`).
absl::StatusOr<faultline::ctl::Inventory> RunInventory(const Options& options, const RunFlags& flags,
                                                       bool& clear_selection) {
  clear_selection = flags.inventory.empty();
  if (!flags.inventory.empty()) return faultline::ctl::LoadInventory(flags.inventory);
  faultline::ctl::Inventory inventory;
  inventory.path = "--agent";
  faultline::ctl::InventoryAgent local;
  local.name = "local";
  local.address = faultline::ctl::ResolveAgentAddress(options.agent);
  local.tls = options.tls;
  inventory.agents.push_back(local);
  return inventory;
}

// Runs `run` with the flags' options: live progress on a terminal, else one line per event; then
// the reports. Returns what `run` returned.
template <typename Runner>
auto WithReports(const RunFlags& flags, const std::string& name, const std::atomic<bool>& stop, Runner run) {
  faultline::ctl::RunOptions run_options;
  run_options.seed = flags.seed;
  run_options.journal = flags.journal;
  run_options.interrupted = &stop;
  run_options.dry_run = flags.dry_run;
  std::optional<faultline::ctl::LiveView> live;
  if (!flags.no_progress && isatty(STDOUT_FILENO)) {
    live.emplace(stdout);
    run_options.observe = [&live](const faultline::ctl::RunRecord& record, const faultline::ctl::RunEvent&) {
      live->Observe(record);
    };
  } else {
    run_options.observe = [&flags](const faultline::ctl::RunRecord&, const faultline::ctl::RunEvent& event) {
      std::printf("%s%s\n", faultline::ctl::EventLine(event).c_str(), flags.line_suffix.c_str());
      std::fflush(stdout);
    };
  }
  std::vector<faultline::ctl::RunRecord> records = run(run_options);
  live.reset();
  if (!flags.junit.empty() && !WriteFile(flags.junit, faultline::ctl::JunitReport(name, records)))
    std::fprintf(stderr, "faultctl: --junit %s: %s\n", flags.junit.c_str(), std::strerror(errno));
  if (!flags.html.empty() && !WriteFile(flags.html, faultline::ctl::HtmlReport(name, records)))
    std::fprintf(stderr, "faultctl: --html %s: %s\n", flags.html.c_str(), std::strerror(errno));
  return records;
}

// Whether a file loaded; prints its error if not.
bool Loaded(const absl::Status& status) {
  if (!status.ok()) std::fprintf(stderr, "faultctl: %s\n", std::string(status.message()).c_str());
  return status.ok();
}

// `faultctl run`: the experiment file against the inventory's agents, or the one agent of --agent.
int RunFile(const Options& options, const RunFlags& flags, const std::atomic<bool>& stop = interrupted) {
  auto experiment = faultline::ctl::LoadExperiment(flags.file);
  bool clear_selection = false;
  auto inventory = RunInventory(options, flags, clear_selection);
  if (!Loaded(experiment.status()) || !Loaded(inventory.status())) return kExitUsage;
  if (clear_selection) experiment->agents = {};
  if (!flags.Override({&*experiment})) return kExitUsage;
  auto records =
      WithReports(flags, experiment->metadata.name, stop, [&](const faultline::ctl::RunOptions& run_options) {
        return std::vector{faultline::ctl::RunExperiment(*experiment, *inventory, run_options)};
      });
  std::printf("%s: %s (exit %d)\n", experiment->metadata.name.c_str(),
              faultline::ctl::Verdict(records.front().exit_code), records.front().exit_code);
  return records.front().exit_code;
}

// `faultctl gameday run`: the game day's experiments in order, with one combined report.
int RunGameDayFile(const Options& options, const RunFlags& flags,
                   const std::atomic<bool>& stop = interrupted) {
  auto game_day = faultline::ctl::LoadGameDay(flags.file);
  bool clear_selection = false;
  auto inventory = RunInventory(options, flags, clear_selection);
  if (!Loaded(game_day.status()) || !Loaded(inventory.status())) return kExitUsage;
  std::vector<faultline::ctl::ExperimentFile*> experiments;
  for (auto& step : game_day->steps) {
    if (clear_selection) step.experiment.agents = {};
    experiments.push_back(&step.experiment);
  }
  if (!flags.Override(experiments, &game_day->steps)) return kExitUsage;
  auto records =
      WithReports(flags, game_day->metadata.name, stop, [&](const faultline::ctl::RunOptions& run_options) {
        return faultline::ctl::RunGameDay(*game_day, *inventory, run_options);
      });
  for (const auto& record : records)
    std::printf("step %s: %s (exit %d)\n", record.experiment.c_str(),
                faultline::ctl::Verdict(record.exit_code), record.exit_code);
  const int exit_code = faultline::ctl::GameDayExit(*game_day, records);
  std::printf("%s: %zu of %zu step(s) ran: %s (exit %d)\n", game_day->metadata.name.c_str(), records.size(),
              game_day->steps.size(), faultline::ctl::Verdict(exit_code), exit_code);
  return exit_code;
}

// One slot of `faultctl schedule`: the file run to its end, reverted once `abort` is set.
int LaunchScheduled(const Options& options, const faultline::ctl::ScheduledRun& run,
                    const std::string& inventory_flag, const std::string& journal,
                    const std::atomic<bool>& abort) {
  RunFlags flags;
  flags.file = run.path;  // read again at each slot: an edited file takes effect at its next run
  flags.inventory = run.inventory.empty() ? inventory_flag : run.inventory;
  flags.journal = journal;
  flags.no_progress = true;
  flags.line_suffix = Cat(" experiment=", run.name);  // runs of several files go on side by side
  return run.kind == "GameDay" ? RunGameDayFile(options, flags, abort) : RunFile(options, flags, abort);
}

// `faultctl schedule`: the schedules' runs at their times, until SIGINT or SIGTERM (which abort and
// revert the runs in progress first).
int ScheduleFiles(const Options& options, const std::vector<std::string>& paths, std::string state_path,
                  const std::string& inventory_flag, const std::string& journal) {
  std::vector<faultline::ctl::ScheduleFile> schedules;
  std::string names;
  for (const std::string& path : paths) {
    auto loaded = faultline::ctl::LoadSchedule(path);
    if (!loaded.ok()) {
      std::fprintf(stderr, "faultctl: %s\n", std::string(loaded.status().message()).c_str());
      return kExitUsage;
    }
    names += (names.empty() ? "" : "+") + loaded->metadata.name;
    schedules.push_back(*std::move(loaded));
  }
  if (state_path.empty()) state_path = Cat("/var/lib/faultline/schedule-", names, ".json");
  faultline::ctl::SchedulerOptions scheduler_options;
  scheduler_options.state_path = state_path;
  scheduler_options.journal = journal;
  scheduler_options.observe = [](const faultline::ctl::RunEvent& event) {
    std::printf("%s\n", faultline::ctl::EventLine(event).c_str());
    std::fflush(stdout);
  };
  scheduler_options.launch = [&](const faultline::ctl::ScheduledRun& run, const std::atomic<bool>& abort) {
    return LaunchScheduled(options, run, inventory_flag, journal, abort);
  };
  auto scheduler = faultline::ctl::Scheduler::Open(std::move(schedules), std::move(scheduler_options));
  if (!scheduler.ok()) {
    std::fprintf(stderr, "faultctl: %s\n", std::string(scheduler.status().message()).c_str());
    return kExitUsage;
  }
  (*scheduler)->Run(interrupted);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultctl: run faultline experiments against faultlined agents"};
  app.require_subcommand(1);
  Options options;
  app.add_option("--agent", options.agent,
                 "unix:PATH or HOST:PORT (default: $FAULTLINE_AGENT, else "
                 "unix:/run/faultline/faultlined.sock)");
  app.add_option("--tls-cert", options.tls.cert, "client certificate (PEM) for an agent's --listen")
      ->envname("FAULTLINE_TLS_CERT");
  app.add_option("--tls-key", options.tls.key, "its private key (PEM)")->envname("FAULTLINE_TLS_KEY");
  app.add_option("--ca", options.tls.ca, "CA certificate(s) (PEM) that sign the agents' certificates")
      ->envname("FAULTLINE_CA");
  app.add_flag("--json", options.json, "print machine-readable JSON");
  app.add_option("--timeout", options.timeout, "how long to wait for the agent")->capture_default_str();

  CLI::App* caps = app.add_subcommand("caps", "what the agent and its kernel can do");
  CLI::App* inject = app.add_subcommand("inject", "start an experiment with one fault");
  inject->require_subcommand(1);
  InjectFlags inject_flags;
  std::string inject_kind;
  AddInjectCommand(inject, "partition", "drop every matching packet", inject_flags, inject_kind);
  AddInjectCommand(inject, "loss", "drop a share of matching packets at random", inject_flags, inject_kind);
  AddInjectCommand(inject, "delay", "delay matching packets (netem)", inject_flags, inject_kind);
  AddInjectCommand(inject, "duplicate", "duplicate a share of matching packets (netem)", inject_flags,
                   inject_kind);
  AddInjectCommand(inject, "corrupt", "corrupt a share of matching packets (netem)", inject_flags,
                   inject_kind);
  AddInjectCommand(inject, "reorder", "send a share of packets ahead of delayed ones (netem)", inject_flags,
                   inject_kind);
  AddInjectCommand(inject, "bandwidth", "limit the rate of matching packets", inject_flags, inject_kind);
  AddInjectCommand(inject, "cpu", "load CPUs to a share of their time", inject_flags, inject_kind);
  AddInjectCommand(inject, "memory", "take memory and hold it", inject_flags, inject_kind);
  CLI::App* list = app.add_subcommand("list", "experiments the agent knows");
  std::vector<std::string> list_states;
  list->add_option("--state", list_states, "only these states (active, reverted, expired, ...)");
  std::string id;
  std::string reason;
  CLI::App* get = app.add_subcommand("get", "one experiment, with its kernel objects and counters");
  get->add_option("id", id, "experiment id")->required();
  CLI::App* revert = app.add_subcommand("revert", "revert one experiment now");
  revert->add_option("id", id, "experiment id")->required();
  revert->add_option("--reason", reason, "recorded with the revert");
  CLI::App* halt = app.add_subcommand("halt", "revert every experiment on the agent now");
  halt->add_option("--reason", reason, "recorded with the halt");
  CLI::App* watch = app.add_subcommand("watch", "stream state changes (of one experiment, or all)");
  watch->add_option("id", id, "experiment id");
  CLI::App* run =
      app.add_subcommand("run", "run an experiment file: steady state, faults, revert, steady state");
  RunFlags run_flags;
  run->add_option("file", run_flags.file, "an Experiment file (docs/experiments.md)")->required();
  AddRunFlags(run, run_flags);
  CLI::App* gameday = app.add_subcommand("gameday", "game days: experiments in order");
  gameday->require_subcommand(1);
  CLI::App* gameday_run = gameday->add_subcommand("run", "run a GameDay file's experiments in order");
  gameday_run->add_option("file", run_flags.file, "a GameDay file (docs/experiments.md)")->required();
  AddRunFlags(gameday_run, run_flags);
  gameday_run->add_option("--pause", run_flags.pause, "this pause between steps in place of the file's");
  CLI::App* schedule = app.add_subcommand(
      "schedule", "run the experiments of Schedule files at their cron times, until SIGINT/SIGTERM");
  std::vector<std::string> schedule_files;
  std::string schedule_state, schedule_inventory, schedule_journal;
  schedule->add_option("file", schedule_files, "Schedule files (docs/experiments.md)")->required();
  schedule->add_option("--state", schedule_state,
                       "the scheduler's state, kept across restarts (default "
                       "/var/lib/faultline/schedule-NAME.json)");
  schedule->add_option("--inventory", schedule_inventory,
                       "the agents of schedules without spec.inventory; default: the agent of --agent");
  schedule->add_option("--journal", schedule_journal,
                       "append every event, of the schedule and its runs, as JSON lines");
  CLI::App* validate =
      app.add_subcommand("validate", "check experiment, game day, inventory and schedule files offline");
  std::vector<std::string> files;
  validate->add_option("file", files, "YAML files (docs/experiments.md)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }

  struct sigaction action {};
  action.sa_handler = [](int) { interrupted = true; };
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  if (validate->parsed()) return ValidateFiles(files);
  if (run->parsed()) return RunFile(options, run_flags);
  if (gameday_run->parsed()) return RunGameDayFile(options, run_flags);
  if (schedule->parsed())
    return ScheduleFiles(options, schedule_files, schedule_state, schedule_inventory, schedule_journal);
  try {
    Agent agent(options);
    if (caps->parsed()) {
      return agent.Call(&v1::Agent::Stub::Capabilities, v1::CapabilitiesRequest(),
                        faultline::ctl::FormatCapabilities);
    }
    if (inject->parsed()) {
      v1::InjectRequest request;
      *request.mutable_experiment() = BuildExperiment(inject_flags, inject_kind);
      v1::InjectResponse response;
      grpc::Status status = agent.stub().Inject(agent.Context().get(), request, &response);
      if (!status.ok()) return agent.Failed(status);
      agent.Print(response, faultline::ctl::FormatStatus(response.status()));
      if (!inject_flags.wait) return 0;
      std::thread renewer;
      std::atomic<bool> renewing{request.experiment().has_lease()};
      if (renewing) {
        // Renew at a third of the TTL, so one lost renewal does not lose the lease.
        auto ttl = request.experiment().lease().ttl();
        auto period = (std::chrono::seconds(ttl.seconds()) + std::chrono::nanoseconds(ttl.nanos())) / 3;
        renewer = std::thread([&, period] {
          while (renewing) {
            for (auto slept = std::chrono::nanoseconds(0); renewing && slept < period;
                 slept += std::chrono::milliseconds(20)) {
              std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            if (!renewing) break;
            v1::RenewLeaseRequest renew;
            renew.set_id(response.status().experiment().id());
            v1::RenewLeaseResponse renewed;
            (void)agent.stub().RenewLease(agent.Context().get(), renew, &renewed);
          }
        });
      }
      int code = WaitForEnd(agent, response.status().experiment().id());
      renewing = false;
      if (renewer.joinable()) renewer.join();
      return code;
    }
    if (list->parsed()) {
      v1::ListRequest request;
      for (const auto& state : list_states) {
        std::string name = "STATE_";
        for (char c : state) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        v1::ExperimentState value;
        if (!v1::ExperimentState_Parse(name, &value))
          throw UsageError{Cat("--state: \"", state, "\" is not a state")};
        request.add_states(value);
      }
      return agent.Call(&v1::Agent::Stub::List, request, faultline::ctl::FormatList);
    }
    if (get->parsed()) {
      v1::GetRequest request;
      request.set_id(id);
      return agent.Call(&v1::Agent::Stub::Get, request, faultline::ctl::FormatStatus);
    }
    if (revert->parsed()) {
      v1::RevertRequest request;
      request.set_id(id);
      request.set_reason(reason);
      return agent.Call(&v1::Agent::Stub::Revert, request, faultline::ctl::FormatStatus);
    }
    if (halt->parsed()) {
      v1::HaltRequest request;
      request.set_reason(reason);
      return agent.Call(&v1::Agent::Stub::Halt, request, [](const v1::HaltResponse& response) {
        std::string human = Cat("halted ", response.reverted_size(), " experiment(s)\n");
        for (const auto& status : response.reverted()) human += faultline::ctl::FormatStatus(status);
        return human;
      });
    }
    if (watch->parsed()) {
      grpc::ClientContext context;
      v1::WatchRequest request;
      request.set_id(id);
      auto stream = agent.stub().Watch(&context, request);
      std::thread canceller([&] {
        while (!interrupted) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        context.TryCancel();
      });
      canceller.detach();
      v1::ExperimentEvent event;
      while (stream->Read(&event)) agent.Print(event, faultline::ctl::FormatEvent(event));
      grpc::Status status = stream->Finish();
      if (interrupted) return 0;
      return status.ok() ? 0 : agent.Failed(status);
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "faultctl: %s\n", e.message.c_str());
    return kExitUsage;
  }
  return kExitUsage;
}

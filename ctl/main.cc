// faultctl: the faultline controller CLI. Exit codes: 0 success; 1 the agent refused or failed the
// request (its message on stderr); 2 bad command line or experiment (checked before sending);
// 3 the agent could not be reached or did not answer in time; 130 `inject --wait` was interrupted
// (the experiment was reverted).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "agent_client.h"
#include "faultline/api/cat.h"
#include "faultline/api/units.h"
#include "faultline/api/validate.h"
#include "format.h"

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

// What `inject` builds a Fault's Target from.
struct TargetFlags {
  std::string netns;
  uint32_t pid = 0;
  std::string interface;
  std::string direction = "both";
  std::vector<std::string> peers;
  std::vector<std::string> excluded;
  std::vector<std::string> ports;
  std::string protocol = "all";
};

struct InjectFlags {
  std::string id;
  std::string duration;
  std::string lease;
  std::vector<std::string> labels;
  bool wait = false;
  TargetFlags target;
  std::string percent;
  std::string correlation = "0";
  std::string model = "ebpf";
  double ge_p = 0, ge_r = 0, ge_h = 0, ge_k = 0;  // --model gilbert-elliott
  uint32_t gap = 0;                               // reorder
  std::string latency;
  std::string jitter = "0s";
  std::string distribution = "uniform";
  bool keep_order = false;
  std::string rate;
  std::string burst;
  std::string limit;
  std::string shaper = "tbf";
  uint32_t load = 0;  // cpu
  uint32_t workers = 0;
  std::vector<uint32_t> cpus;
  int32_t nice = 0;
  std::string cgroup;  // cpu, memory
  std::string size;    // memory
  std::string grow;
};

bool IsStress(const std::string& kind) { return kind == "cpu" || kind == "memory"; }

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

v1::Direction ParseDirection(const std::string& text) {
  if (text == "egress") return v1::DIRECTION_EGRESS;
  if (text == "ingress") return v1::DIRECTION_INGRESS;
  if (text == "both") return v1::DIRECTION_BOTH;
  throw UsageError{Cat("--direction: \"", text, "\" is not egress, ingress or both")};
}

v1::Protocol ParseProtocol(const std::string& text) {
  if (text == "all") return v1::PROTOCOL_ALL;
  if (text == "tcp") return v1::PROTOCOL_TCP;
  if (text == "udp") return v1::PROTOCOL_UDP;
  if (text == "icmp") return v1::PROTOCOL_ICMP;
  throw UsageError{Cat("--protocol: \"", text, "\" is not tcp, udp, icmp or all")};
}

template <typename T>
T OrUsage(absl::StatusOr<T> value, const std::string& flag) {
  if (!value.ok()) throw UsageError{Cat(flag, ": ", value.status().message())};
  return *std::move(value);
}

v1::Target BuildTarget(const TargetFlags& flags) {
  v1::Target target;
  if (!flags.netns.empty()) target.set_netns_path(flags.netns);
  if (flags.pid != 0) target.set_pid(flags.pid);
  target.set_interface(flags.interface);
  target.set_direction(ParseDirection(flags.direction));
  target.set_protocol(ParseProtocol(flags.protocol));
  for (const auto& peer : flags.peers) target.add_peers(peer);
  for (const auto& peer : flags.excluded) target.add_excluded_peers(peer);
  for (const auto& port : flags.ports)
    *target.add_ports() = OrUsage(faultline::api::ParsePortRange(port), "--port");
  return target;
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
  v1::Fault* fault = experiment.add_faults();
  if (!IsStress(kind)) *fault->mutable_target() = BuildTarget(flags.target);
  auto percent = [&] {
    if (flags.percent.empty()) throw UsageError{"--percent: required, e.g. --percent 10"};
    return OrUsage(faultline::api::ParsePercent(flags.percent), "--percent");
  };
  auto correlation = [&] {
    return OrUsage(faultline::api::ParsePercent(flags.correlation), "--correlation");
  };
  if (kind == "partition") {
    fault->mutable_partition();
  } else if (kind == "loss") {
    v1::Loss* loss = fault->mutable_loss();
    if (flags.model == "gilbert-elliott") {
      loss->set_model(v1::Loss::MODEL_GILBERT_ELLIOTT);
      v1::Loss::GilbertElliott* ge = loss->mutable_gilbert_elliott();
      ge->set_p(flags.ge_p);
      ge->set_r(flags.ge_r);
      ge->set_h(flags.ge_h);
      ge->set_k(flags.ge_k);
    } else if (flags.model == "ebpf" || flags.model == "netem") {
      loss->set_model(flags.model == "ebpf" ? v1::Loss::MODEL_EBPF : v1::Loss::MODEL_NETEM_RANDOM);
      loss->set_percent(percent());
      loss->set_correlation(correlation());
    } else {
      throw UsageError{Cat("--model: \"", flags.model, "\" is not ebpf, netem or gilbert-elliott")};
    }
  } else if (kind == "delay" || kind == "reorder") {
    // netem reorders by sending some packets at once while it delays the rest: reorder needs a delay
    // of the same packets, so `inject reorder` sends both.
    v1::Delay* delay = fault->mutable_delay();
    *delay->mutable_latency() = OrUsage(faultline::api::ParseDuration(flags.latency), "--latency");
    *delay->mutable_jitter() = OrUsage(faultline::api::ParseDuration(flags.jitter), "--jitter");
    if (kind == "delay") delay->set_correlation(correlation());
    std::string name = "DISTRIBUTION_";
    for (char c : flags.distribution) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    v1::Delay::Distribution distribution;
    if (!v1::Delay::Distribution_Parse(name, &distribution)) {
      throw UsageError{
          Cat("--distribution: \"", flags.distribution, "\" is not uniform, normal, pareto or paretonormal")};
    }
    delay->set_distribution(distribution);
    delay->set_keep_order(flags.keep_order);
    if (kind == "reorder") {
      v1::Fault* reorder = experiment.add_faults();
      *reorder->mutable_target() = fault->target();
      reorder->mutable_reorder()->set_percent(percent());
      reorder->mutable_reorder()->set_correlation(correlation());
      reorder->mutable_reorder()->set_gap(flags.gap);
    }
  } else if (kind == "duplicate") {
    fault->mutable_duplicate()->set_percent(percent());
    fault->mutable_duplicate()->set_correlation(correlation());
  } else if (kind == "corrupt") {
    fault->mutable_corrupt()->set_percent(percent());
    fault->mutable_corrupt()->set_correlation(correlation());
  } else if (kind == "cpu") {
    v1::Cpu* cpu = fault->mutable_cpu();
    cpu->set_load_percent(flags.load);
    // One worker unless told otherwise; a list of CPUs puts one on each.
    cpu->set_workers(flags.cpus.empty() && flags.workers == 0 ? 1 : flags.workers);
    for (uint32_t n : flags.cpus) cpu->add_cpus(n);
    cpu->set_nice(flags.nice);
    cpu->set_cgroup(flags.cgroup);
  } else if (kind == "memory") {
    v1::Memory* memory = fault->mutable_memory();
    if (flags.size.ends_with('%')) {
      memory->set_percent_of_total(OrUsage(faultline::api::ParsePercent(flags.size), "--size"));
    } else {
      memory->set_bytes(OrUsage(faultline::api::ParseSize(flags.size), "--size"));
    }
    if (!flags.grow.empty()) {
      std::string per_second =
          flags.grow.ends_with("/s") ? flags.grow.substr(0, flags.grow.size() - 2) : flags.grow;
      memory->set_grow_bytes_per_second(OrUsage(faultline::api::ParseSize(per_second), "--grow"));
    }
    memory->set_cgroup(flags.cgroup);
  } else {
    v1::Bandwidth* bandwidth = fault->mutable_bandwidth();
    bandwidth->set_rate_bits_per_second(OrUsage(faultline::api::ParseRate(flags.rate), "--rate"));
    if (!flags.burst.empty()) {
      bandwidth->set_burst_bytes(
          static_cast<uint32_t>(OrUsage(faultline::api::ParseSize(flags.burst), "--burst")));
    }
    if (!flags.limit.empty()) {
      bandwidth->set_limit_bytes(
          static_cast<uint32_t>(OrUsage(faultline::api::ParseSize(flags.limit), "--limit")));
    }
    if (flags.shaper != "tbf" && flags.shaper != "htb" && flags.shaper != "netem") {
      throw UsageError{Cat("--shaper: \"", flags.shaper, "\" is not tbf, htb or netem")};
    }
    bandwidth->set_shaper(flags.shaper == "tbf"   ? v1::Bandwidth::SHAPER_TBF
                          : flags.shaper == "htb" ? v1::Bandwidth::SHAPER_HTB
                                                  : v1::Bandwidth::SHAPER_NETEM);
  }
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

void AddTargetFlags(CLI::App* command, TargetFlags& flags) {
  command->add_option("--netns", flags.netns, "network namespace path: /proc/PID/ns/net or /run/netns/NAME");
  command->add_option("--pid", flags.pid, "fault the network namespace of this process");
  command->add_option("--iface", flags.interface, "interface to fault")->required();
  command->add_option("--direction", flags.direction, "egress, ingress or both")->capture_default_str();
  command->add_option("--peer", flags.peers, "peer CIDR (repeatable); none: every peer");
  command->add_option("--exclude", flags.excluded, "CIDR never faulted (repeatable)");
  command->add_option("--port", flags.ports, "port or range N-M, source or destination (repeatable)");
  command->add_option("--protocol", flags.protocol, "tcp, udp, icmp or all")->capture_default_str();
}

void AddInjectCommand(CLI::App* inject, const std::string& kind, const std::string& what, InjectFlags& flags,
                      std::string& chosen) {
  CLI::App* command = inject->add_subcommand(kind, what);
  if (kind == "loss" || kind == "duplicate" || kind == "corrupt" || kind == "reorder") {
    command->add_option("--percent", flags.percent, "share of packets, 0-100");
    command->add_option("--correlation", flags.correlation, "percent of the previous draw kept (netem)");
  }
  if (kind == "loss") {
    command->add_option("--model", flags.model, "ebpf, netem or gilbert-elliott")->capture_default_str();
    command->add_option("--p", flags.ge_p, "gilbert-elliott: percent chance of going from good to bad");
    command->add_option("--r", flags.ge_r, "gilbert-elliott: percent chance of going from bad to good");
    command->add_option("--h", flags.ge_h, "gilbert-elliott: percent of packets kept in the bad state");
    command->add_option("--k", flags.ge_k, "gilbert-elliott: percent of packets lost in the good state");
  }
  if (kind == "delay" || kind == "reorder") {
    command->add_option("--latency", flags.latency, "added delay, e.g. 50ms")->required();
    command->add_option("--jitter", flags.jitter, "spread around the latency, e.g. 10ms");
    command->add_option("--distribution", flags.distribution, "uniform, normal, pareto or paretonormal")
        ->capture_default_str();
  }
  if (kind == "delay") {
    command->add_option("--correlation", flags.correlation, "percent of the previous delay kept");
    command->add_flag("--keep-order", flags.keep_order, "never reorder packets under jitter");
  }
  if (kind == "reorder") command->add_option("--gap", flags.gap, "send every Nth packet at once (netem gap)");
  if (kind == "bandwidth") {
    command->add_option("--rate", flags.rate, "e.g. 10mbit, 1gbit, 500kbps")->required();
    command->add_option("--burst", flags.burst, "bucket size, e.g. 32k (default: 10 ms at the rate)");
    command->add_option("--limit", flags.limit,
                        "bytes that may queue, e.g. 64k (default: 50 ms at the rate)");
    command->add_option("--shaper", flags.shaper, "tbf, htb or netem")->capture_default_str();
  }
  if (kind == "cpu") {
    command->add_option("--load", flags.load, "percent of each CPU's time, 1-100")->required();
    command->add_option("--workers", flags.workers, "threads, each loading one CPU (default 1)");
    command->add_option("--cpus", flags.cpus, "pin one worker to each of these CPUs, e.g. --cpus 0,2")
        ->delimiter(',');
    command->add_option("--nice", flags.nice, "the workers' nice level, -20..19");
  }
  if (kind == "memory") {
    command->add_option("--size", flags.size, "e.g. 512MiB, 2GiB, or 10% of MemTotal")->required();
    command->add_option("--grow", flags.grow, "reach the size at this rate, e.g. 64MiB/s (default: at once)");
  }
  if (IsStress(kind)) {
    command->add_option("--cgroup", flags.cgroup,
                        "cgroup v2 path (absolute, or under the cgroup2 mount) the workers join");
  } else {
    AddTargetFlags(command, flags.target);
  }
  command->add_option("--duration", flags.duration, "how long the fault lasts, e.g. 30s, 5m")->required();
  command->add_option("--id", flags.id, "experiment id (default: generated); the same id again is a no-op");
  command->add_option("--lease", flags.lease,
                      "revert unless renewed within this time (renewed while --wait runs)");
  command->add_option("--label", flags.labels, "KEY=VALUE label (repeatable)");
  command->add_flag("--wait", flags.wait, "stay until the experiment ends; Ctrl-C reverts it");
  command->callback([&chosen, kind] { chosen = kind; });
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

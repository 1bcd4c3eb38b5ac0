// Crash safety: a faultlined killed with SIGKILL, while an experiment is active or at any step of
// applying one, leaves nothing behind once an agent starts again on its state directory: the journal
// replay puts the host interface (its qdiscs with every option, classes, filters on both clsact hooks,
// ifb devices) back as it was within 1 s of the start, and logs each change it undid. Asserted on the
// kernel's state as tc and ip report it.
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <thread>

#include "faultline/api/cat.h"
#include "kernel/capabilities.h"
#include "kernel/journal.pb.h"
#include "sandbox.h"

namespace faultline::test {
namespace {

using api::Cat;
using std::chrono::milliseconds;
namespace v1 = faultline::v1;

const kernel::KernelFeatures& Features() {
  static const kernel::KernelFeatures features = kernel::ProbeKernelFeatures();
  return features;
}

// How soon after its start an agent must have undone a crashed one's changes: 1 s, or 10 s on a CPU
// that qemu emulates (TCG, the VM suite), which runs the same code about ten times slower.
milliseconds CleanWithin() { return CpuIsEmulated() ? milliseconds(10'000) : milliseconds(1'000); }

// The log lines of one event, parsed.
std::vector<google::protobuf::Struct> Events(const std::string& log, const std::string& event) {
  std::vector<google::protobuf::Struct> events;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    google::protobuf::Struct parsed;
    if (!google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) continue;
    auto name = parsed.fields().find("event");
    if (name != parsed.fields().end() && name->second.string_value() == event) events.push_back(parsed);
  }
  return events;
}

std::string Field(const google::protobuf::Struct& event, const std::string& key) {
  auto it = event.fields().find(key);
  if (it == event.fields().end()) return "";
  return it->second.has_string_value() ? it->second.string_value() : Cat(it->second.number_value());
}

class CrashSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = MissingPrivileges(); !missing.empty()) GTEST_SKIP() << missing;
    for (const char* feature : {"bpf", "clsact", "cls_bpf", "ifb", "mirred", "tbf"}) {
      if (!Features().Has(feature)) GTEST_SKIP() << "the kernel lacks " << feature;
    }
    if (!Features().Has("htb") && !Features().Has("prio")) GTEST_SKIP() << "the kernel lacks htb and prio";
    sandbox_ = std::make_unique<Sandbox>();
    char dir_template[] = "/tmp/faultline-crash-XXXXXX";
    state_dir_ = mkdtemp(dir_template);
    clean_ = HostState();
  }
  void TearDown() override {
    agent_.reset();
    if (!state_dir_.empty()) std::filesystem::remove_all(state_dir_);
  }

  std::string HostNetnsName() const { return sandbox_->host_netns().substr(strlen("/run/netns/")); }

  // Everything a fault could leave in the host namespace: every device's qdiscs with their options,
  // the interface's classes and filters, ifb devices.
  // One shell for every command: the state is polled while an agent starts.
  std::string HostState() const {
    std::string script;
    for (const std::string& command :
         {Cat("tc -n ", HostNetnsName(), " -d qdisc show"),
          Cat("tc -n ", HostNetnsName(), " -d class show dev ", Sandbox::kHostInterface),
          Cat("tc -n ", HostNetnsName(), " filter show ingress dev ", Sandbox::kHostInterface),
          Cat("tc -n ", HostNetnsName(), " filter show egress dev ", Sandbox::kHostInterface),
          Cat("ip -n ", HostNetnsName(), " -o link show type ifb")}) {
      script += Cat("echo '# ", command, "' && ", command, " && ");
    }
    return Shell(script + "true");
  }

  // A partition, an eBPF loss and a bandwidth limit (with a netem delay where the kernel has netem) on
  // the host interface, at egress and (through an ifb device) at ingress.
  v1::Experiment FullExperiment(const std::string& id) const {
    v1::Experiment experiment = NewExperiment(id);
    AddFault(experiment, "198.18.0.3/32")->mutable_partition();
    v1::Loss* loss = AddFault(experiment, "198.18.0.2/32")->mutable_loss();
    loss->set_percent(30);
    loss->set_model(v1::Loss::MODEL_EBPF);
    AddFault(experiment, "2001:db8::2/128")->mutable_bandwidth()->set_rate_bits_per_second(10'000'000);
    if (Features().Has("netem")) {
      // The same target as the bandwidth limit: one class, netem under it.
      AddFault(experiment, "2001:db8::2/128")->mutable_delay()->mutable_latency()->set_nanos(20'000'000);
    }
    return experiment;
  }

  static v1::Experiment NewExperiment(const std::string& id) {
    v1::Experiment experiment;
    experiment.set_id(id);
    experiment.mutable_duration()->set_seconds(600);
    return experiment;
  }

  v1::Fault* AddFault(v1::Experiment& experiment, const std::string& peer,
                      v1::Direction direction = v1::DIRECTION_BOTH) const {
    v1::Fault* fault = experiment.add_faults();
    v1::Target* target = fault->mutable_target();
    target->set_netns_path(sandbox_->host_netns());
    target->set_interface(Sandbox::kHostInterface);
    target->set_direction(direction);
    target->add_peers(peer);
    return fault;
  }

  grpc::Status Inject(const v1::Experiment& experiment) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::InjectRequest request;
    *request.mutable_experiment() = experiment;
    v1::InjectResponse response;
    return agent_->stub().Inject(&context, request, &response);
  }

  void StartAgent(std::vector<std::string> args = {}) {
    agent_ = std::make_unique<AgentProcess>(std::move(args), state_dir_);
  }

  // SIGKILL, as an OOM killer or a crash would end the agent: nothing of it runs after.
  void KillAgent() {
    int status = agent_->Signal(SIGKILL);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "wait status " << status;
  }

  // The `what` of every change the journal holds open, oldest first.
  std::vector<std::string> OpenChanges() const {
    std::ifstream in(Cat(state_dir_, "/journal"));
    std::map<uint64_t, std::string> open;
    std::string text;
    while (std::getline(in, text)) {
      journal::Line line;
      if (!google::protobuf::util::JsonStringToMessage(text, &line).ok()) continue;
      if (line.has_change()) {
        open[line.id()] = line.change().what();
      } else {
        open.erase(line.id());
      }
    }
    std::vector<std::string> whats;
    for (auto& [id, what] : open) whats.push_back(what);
    return whats;
  }

  // Starts an agent on the state directory and expects the host back as it was before the
  // experiment within 1 s of the start (CleanWithin), and each of the journal's open changes logged by
  // the replay.
  // Returns how long the host took to be clean, as tc saw it.
  milliseconds RestartAndExpectClean(const std::vector<std::string>& open_changes) {
    agent_ = std::make_unique<AgentProcess>(std::vector<std::string>{}, state_dir_, false);
    std::string state;
    milliseconds took{0};
    do {
      state = HostState();
      took =
          std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - agent_->started_at());
    } while (state != clean_ && took < CleanWithin());
    EXPECT_EQ(state, clean_) << "the host was not as before " << CleanWithin().count()
                             << " ms after the agent started:\n"
                             << agent_->Log();
    EXPECT_TRUE(agent_->WaitUntilReady());
    EXPECT_EQ(HostState(), clean_);

    std::string log = agent_->Log();
    std::vector<std::string> replayed;
    for (const char* event : {"journal.undone", "journal.nothing_to_undo", "journal.undo_failed"}) {
      for (const auto& line : Events(log, event)) replayed.push_back(Field(line, "what"));
    }
    std::vector<std::string> expected = open_changes;
    std::sort(expected.begin(), expected.end());
    std::sort(replayed.begin(), replayed.end());
    EXPECT_EQ(replayed, expected) << "the replay did not log each open change once:\n" << log;
    EXPECT_TRUE(Events(log, "journal.undo_failed").empty()) << log;
    auto summary = Events(log, "journal.replayed");
    EXPECT_EQ(summary.size(), 1u) << log;
    if (!summary.empty()) {
      EXPECT_EQ(Field(summary[0], "entries"), Cat(open_changes.size()));
      replay_ms_ = std::max(replay_ms_, std::stod(Field(summary[0], "took_ms")));
    }
    EXPECT_TRUE(OpenChanges().empty()) << "the journal still holds open changes after the replay";
    return took;
  }

  void Measured(const std::string& what, double value) {
    std::cout << "[ MEASURED ] " << what << " = " << value << std::endl;
    RecordProperty(what, Cat(value));
  }

  std::unique_ptr<Sandbox> sandbox_;
  std::string state_dir_;
  std::unique_ptr<AgentProcess> agent_;
  std::string clean_;
  double replay_ms_ = 0;  // the longest replay the agents logged
};

TEST_F(CrashSafetyTest, AnAgentKilledDuringAnExperimentIsCleanedUpByTheNextOne) {
  StartAgent();
  grpc::Status status = Inject(FullExperiment("full"));
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << agent_->Log();
  ASSERT_NE(HostState(), clean_) << "the experiment changed nothing";
  KillAgent();
  EXPECT_NE(HostState(), clean_) << "tc objects outlive the agent; the replay must remove them";
  std::vector<std::string> open = OpenChanges();
  // clsact, 2 partition filters, 2 loss filters, and per side a root, a class and a filter (an htb
  // root brings a default class; the ingress side an ifb device).
  EXPECT_GE(open.size(), 11u);

  milliseconds took = RestartAndExpectClean(open);
  std::string log = agent_->Log();
  auto undone = Events(log, "journal.undone");
  EXPECT_EQ(undone.size(), open.size()) << "every change was there to undo:\n" << log;
  for (const char* kind :
       {"clsact qdisc on", "cls_bpf egress", "cls_bpf ingress", " root on ", "ifb device"}) {
    EXPECT_TRUE(
        std::any_of(undone.begin(), undone.end(),
                    [&](const auto& event) { return Field(event, "what").find(kind) != std::string::npos; }))
        << "no " << kind << " was undone:\n"
        << log;
  }
  Measured("clean_after_restart_ms", static_cast<double>(took.count()));
  Measured("replay_ms", replay_ms_);

  // The agent works on after the replay: the same experiment applies and reverts cleanly.
  ASSERT_TRUE(Inject(FullExperiment("again")).ok());
  agent_->Signal(SIGTERM);
  EXPECT_EQ(HostState(), clean_);
  EXPECT_TRUE(OpenChanges().empty()) << "an agent that reverted everything left open entries";
  EXPECT_EQ(std::filesystem::file_size(Cat(state_dir_, "/journal")), 0u) << "the journal was not compacted";
}

TEST_F(CrashSafetyTest, AnAgentKilledAtAnyStepOfApplyingIsCleanedUpByTheNextOne) {
  int writes = 0;
  milliseconds slowest{0};
  for (int crash_after = 1; crash_after <= 60; crash_after++) {
    SCOPED_TRACE(Cat("crash after journal write ", crash_after));
    StartAgent({"--test-crash-after-journal-writes", Cat(crash_after)});
    grpc::Status status = Inject(FullExperiment(Cat("step-", crash_after)));
    if (status.ok()) {
      writes = crash_after - 1;  // every write was made without reaching the crash point
      agent_->Signal(SIGTERM);
      EXPECT_EQ(HostState(), clean_);
      break;
    }
    int exit = agent_->WaitForExit();
    ASSERT_TRUE(WIFSIGNALED(exit) && WTERMSIG(exit) == SIGKILL)
        << "the agent did not crash at the crash point: " << status.error_message() << "\n"
        << agent_->Log();
    std::vector<std::string> open = OpenChanges();
    ASSERT_EQ(open.size(), static_cast<size_t>(crash_after)) << "every write so far opened an entry";
    slowest = std::max(slowest, RestartAndExpectClean(open));
    agent_->Signal(SIGTERM);
    if (HasFailure()) break;
  }
  EXPECT_GE(writes, 11) << "the experiment applied after fewer journal writes than it has changes";
  Measured("journal_writes_per_experiment", writes);
  Measured("slowest_clean_after_restart_ms", static_cast<double>(slowest.count()));
  Measured("slowest_replay_ms", replay_ms_);
}

TEST_F(CrashSafetyTest, AReplacedCustomRootIsPutBackWithItsParameters) {
  const std::string tc = Cat("tc -n ", HostNetnsName(), " ");
  Shell(Cat(tc, "qdisc add dev ", Sandbox::kHostInterface,
            " root handle 5: tbf rate 800mbit burst 256kb limit 2mb peakrate 1gbit mtu 2kb"));
  clean_ = HostState();
  ASSERT_NE(clean_.find("tbf"), std::string::npos);
  auto experiment = [&](const std::string& id) {
    v1::Experiment limited = NewExperiment(id);
    AddFault(limited, "198.18.0.2/32", v1::DIRECTION_EGRESS)
        ->mutable_bandwidth()
        ->set_rate_bits_per_second(5'000'000);
    return limited;
  };
  // Killed with the experiment active, and at each step of applying it.
  StartAgent();
  ASSERT_TRUE(Inject(experiment("active")).ok());
  EXPECT_EQ(HostState().find("tbf rate 800Mbit"), std::string::npos) << "the tbf root was not replaced";
  KillAgent();
  RestartAndExpectClean(OpenChanges());
  agent_->Signal(SIGTERM);
  for (int crash_after = 1; crash_after <= 20; crash_after++) {
    SCOPED_TRACE(Cat("crash after journal write ", crash_after));
    StartAgent({"--test-crash-after-journal-writes", Cat(crash_after)});
    if (Inject(experiment(Cat("step-", crash_after))).ok()) break;
    agent_->WaitForExit();
    RestartAndExpectClean(OpenChanges());
    agent_->Signal(SIGTERM);
    if (HasFailure()) break;
  }
}

TEST_F(CrashSafetyTest, NamespacesGoneWhileTheAgentWasDownAreSkipped) {
  StartAgent();
  v1::Experiment experiment = FullExperiment("gone");
  // Also a partition in the peers' namespace, which is deleted outright below.
  v1::Fault* peers = experiment.add_faults();
  peers->mutable_partition();
  peers->mutable_target()->set_netns_path(sandbox_->peers_netns());
  peers->mutable_target()->set_interface(Sandbox::kPeersInterface);
  ASSERT_TRUE(Inject(experiment).ok()) << agent_->Log();
  KillAgent();
  std::vector<std::string> open = OpenChanges();

  // The host namespace's path now leads to a new namespace, whose device of the same name carries a
  // clsact and a root of its own: none of it may be touched.
  const std::string host = HostNetnsName();
  const std::string peers_name = sandbox_->peers_netns().substr(strlen("/run/netns/"));
  Shell(Cat("ip netns del ", peers_name));
  Shell(Cat("ip netns del ", host));
  Shell(Cat("ip netns add ", host));
  Shell(Cat("ip -n ", host, " link add ", Sandbox::kHostInterface, " type veth peer name fl-other"));
  Shell(Cat("tc -n ", host, " qdisc add dev ", Sandbox::kHostInterface, " clsact"));
  Shell(Cat("tc -n ", host, " qdisc add dev ", Sandbox::kHostInterface, " root handle fa17: htb default 1"));
  Shell(Cat("ip -n ", host, " link add ifb-fl-host type ifb"));
  clean_ = HostState();

  RestartAndExpectClean(open);
  std::string log = agent_->Log();
  auto skipped = Events(log, "journal.nothing_to_undo");
  EXPECT_EQ(skipped.size(), open.size()) << log;
  bool path_reused = false;
  bool gone = false;
  for (const auto& event : skipped) {
    path_reused |= Field(event, "why").find("is another namespace now") != std::string::npos;
    gone |= Field(event, "why").find(Cat(sandbox_->peers_netns(), " is gone")) != std::string::npos;
  }
  EXPECT_TRUE(path_reused) << log;
  EXPECT_TRUE(gone) << log;
  EXPECT_TRUE(Events(log, "journal.undone").empty()) << log;
}

}  // namespace
}  // namespace faultline::test

// `faultctl run` with an experiment file against a real agent and the sandbox: the steady state (a
// ping from the host namespace to a peer, as a command probe) decides the exit code, and every way a
// run ends leaves the host interface as it was.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent_fixture.h"
#include "faultline/api/cat.h"

namespace faultline::test {
namespace {

using api::Cat;
using std::chrono::milliseconds;
namespace v1 = faultline::v1;

class RunTest : public AgentInSandboxTest {
 protected:
  void SetUp() override {
    AgentInSandboxTest::SetUp();
    char pattern[] = "/tmp/fltest-run-XXXXXX";
    directory_ = mkdtemp(pattern);
  }
  void TearDown() override {
    AgentInSandboxTest::TearDown();
    std::filesystem::remove_all(directory_);
  }

  // An experiment file: a partition of the host interface toward `peer`, and a probe pinging `probed`
  // from the host namespace.
  std::string Experiment(const std::string& peer, const std::string& probed, const std::string& duration,
                         const std::string& lease = "2s") {
    const std::string path = directory_ + "/experiment.yaml";
    std::ofstream(path) << Cat(R"(apiVersion: faultline/v1
kind: Experiment
metadata: {name: run-test}
spec:
  duration: )",
                               duration, "\n  lease: ", lease, R"(
  faults:
    - partition: {}
      target: {netns: )",
                               sandbox_->host_netns(), ", interface: ", Sandbox::kHostInterface,
                               ", direction: both, peers: [", peer, R"(/32]}
  steadyState:
    probes:
      - name: peer-answers
        command: {run: [ip, netns, exec, )",
                               HostNetnsName(), ", ping, -c1, -W1, ", probed, R"(]}
        timeout: 3s
    during: {interval: 500ms, failuresToAbort: 2}
    after: {within: 5s}
)");
    return path;
  }
  std::string HostNetnsName() const { return sandbox_->host_netns().substr(std::strlen("/run/netns/")); }

  CommandResult Run(const std::string& file) {
    return RunCommand(Cat(FAULTCTL_PATH, " --agent unix:", agent_->socket_path(), " run ", file,
                          " --journal ", directory_, "/journal.jsonl"));
  }
  std::string Journal() const {
    std::ifstream in(directory_ + "/journal.jsonl");
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  std::string directory_;
};

TEST_F(RunTest, AHypothesisThatHoldsExitsZeroAndRevertsAtTheEnd) {
  // The partition cuts 198.18.0.3; the probe pings 198.18.0.2, which stays reachable.
  CommandResult run = Run(Experiment("198.18.0.3", "198.18.0.2", "3s"));
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("inject active agent=local"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("revert reverted agent=local"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("after held"), std::string::npos) << run.output;
  EXPECT_NE(Journal().find("\"phase\":\"during\",\"event\":\"probe\""), std::string::npos) << Journal();
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

TEST_F(RunTest, AProbeThatFailsDuringTheFaultAbortsTheRunAsDeviated) {
  const auto start = std::chrono::steady_clock::now();
  CommandResult run = Run(Experiment("198.18.0.2", "198.18.0.2", "60s"));
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(run.exit_code, 5) << run.output;
  EXPECT_NE(run.output.find("during deviated failed-rounds=2"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("after recovered"), std::string::npos) << run.output;
  EXPECT_LT(took, std::chrono::seconds(20)) << "the run went on after the probe failed";
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

TEST_F(RunTest, NothingIsInjectedWhenTheSteadyStateDoesNotHoldFirst) {
  CommandResult run = Run(Experiment("198.18.0.2", "198.18.0.99", "60s"));
  EXPECT_EQ(run.exit_code, 4) << run.output;
  EXPECT_EQ(run.output.find(" inject "), std::string::npos) << run.output;
  grpc::ClientContext context;
  v1::ListResponse listed;
  ASSERT_TRUE(agent_->stub().List(&context, {}, &listed).ok());
  EXPECT_EQ(listed.experiments_size(), 0);
}

TEST_F(RunTest, AKilledFaultctlLeavesTheRevertToTheLease) {
  const std::string file = Experiment("198.18.0.3", "198.18.0.2", "60s", "2s");
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    const std::string agent = "unix:" + agent_->socket_path();
    execl(FAULTCTL_PATH, FAULTCTL_PATH, "--agent", agent.c_str(), "run", file.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 1000 && sandbox_->HostTcState() == clean_state_; i++)
    std::this_thread::sleep_for(milliseconds(10));
  ASSERT_NE(sandbox_->HostTcState(), clean_state_) << "faultctl run never injected";
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  const auto killed = std::chrono::steady_clock::now();
  while (sandbox_->HostTcState() != clean_state_ &&
         std::chrono::steady_clock::now() - killed < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(milliseconds(50));
  }
  const auto reverted_after =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - killed);
  std::printf("[ MEASURED ] reverted %lld ms after faultctl was killed (lease 2 s)\n",
              static_cast<long long>(reverted_after.count()));
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
  EXPECT_LT(reverted_after, milliseconds(3000)) << "not within the lease and a second";
}

// Three nodes, each a namespace with its own agent (its own process and socket), joined by a bridge
// in a fourth: 198.18.1.1, .2 and .3 on eth0.
class ThreeNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = MissingPrivileges(); !missing.empty()) GTEST_SKIP() << missing;
    prefix_ = Cat("flit3-", getpid());
    Shell(Cat("ip netns add ", prefix_, "-hub"));
    made_.push_back(prefix_ + "-hub");
    Shell(Cat("ip -n ", prefix_, "-hub link add br0 type bridge && ip -n ", prefix_, "-hub link set br0 up"));
    char pattern[] = "/tmp/fltest-run3-XXXXXX";
    directory_ = mkdtemp(pattern);
    std::string inventory = "apiVersion: faultline/v1\nkind: Inventory\nagents:\n";
    for (int n = 1; n <= 3; n++) {
      const std::string ns = Node(n);
      Shell(Cat("ip netns add ", ns));
      made_.push_back(ns);
      Shell(Cat("ip -n ", ns, " link add eth0 type veth peer name port", n, " netns ", prefix_, "-hub"));
      Shell(Cat("ip -n ", ns, " addr add 198.18.1.", n, "/24 dev eth0 && ip -n ", ns, " link set eth0 up"));
      Shell(Cat("ip -n ", prefix_, "-hub link set port", n, " master br0 && ip -n ", prefix_,
                "-hub link set port", n, " up"));
      agents_.push_back(
          std::make_unique<AgentProcess>(std::vector<std::string>{}, "", true, "/run/netns/" + ns));
      inventory += Cat("  - {name: node-", n, ", address: 'unix:", agents_.back()->socket_path(),
                       "', labels: {role: node}, interface: eth0}\n");
    }
    std::ofstream(directory_ + "/inventory.yaml") << inventory;
  }
  void TearDown() override {
    agents_.clear();
    for (const auto& ns : made_) RunCommand(Cat("ip netns del ", ns));
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }

  std::string Node(int n) const { return Cat(prefix_, "-", n); }
  bool Pings(int from, int to) const {
    return RunCommand(Cat("ip netns exec ", Node(from), " ping -c1 -W1 198.18.1.", to)).exit_code == 0;
  }
  std::string TcOf(int n) const { return RunCommand(Cat("tc -n ", Node(n), " qdisc show dev eth0")).output; }
  int ActiveOn(int n) const {
    grpc::ClientContext context;
    v1::ListRequest request;
    request.add_states(v1::STATE_ACTIVE);
    v1::ListResponse listed;
    return agents_[static_cast<size_t>(n - 1)]->stub().List(&context, request, &listed).ok()
               ? listed.experiments_size()
               : -1;
  }

  // A partition of all three toward 198.18.1.99, which no node has: a real fault that nothing notices.
  std::string QuietPartition(const std::string& duration) const {
    const std::string file = directory_ + "/quiet.yaml";
    std::ofstream(file) << Cat(R"(apiVersion: faultline/v1
kind: Experiment
metadata: {name: quiet-partition}
spec:
  duration: )",
                               duration, R"(
  faults:
    - partition: {}
      target: {interface: placeholder, direction: both, peers: [198.18.1.99/32]}
)");
    return file;
  }

  // `faultctl run FILE --inventory` of the three nodes, in the background, its output discarded.
  pid_t StartRun(const std::string& file) const {
    pid_t pid = fork();
    if (pid == 0) {
      int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      dup2(null, STDERR_FILENO);
      const std::string inventory = directory_ + "/inventory.yaml";
      execl(FAULTCTL_PATH, FAULTCTL_PATH, "run", file.c_str(), "--inventory", inventory.c_str(), nullptr);
      _exit(127);
    }
    return pid;
  }

  std::string prefix_;
  std::string directory_;
  std::vector<std::string> made_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

TEST_F(ThreeNodesTest, APartitionOfOneNodeHoldsOnAllThreeUntilTheProbeNoticesAndIsReverted) {
  ASSERT_TRUE(Pings(2, 1) && Pings(2, 3) && Pings(3, 1)) << "the three nodes do not reach each other";
  const std::string clean[] = {TcOf(1), TcOf(2), TcOf(3)};
  const std::string file = directory_ + "/partition.yaml";
  // On every node: nothing to or from node 1. Node 1's own filter matches nothing of its own; nodes 2
  // and 3 cut it off, and still reach each other.
  std::ofstream(file) << Cat(R"(apiVersion: faultline/v1
kind: Experiment
metadata: {name: isolate-node-1}
spec:
  duration: 60s
  lease: 5s
  agents: {labels: {role: node}}
  faults:
    - partition: {}
      target: {interface: placeholder, direction: both, peers: [198.18.1.1/32]}
  steadyState:
    probes:
      - name: node-2-reaches-node-1
        command: {run: [ip, netns, exec, )",
                             Node(2), R"(, ping, -c1, -W1, 198.18.1.1]}
    during: {interval: 1s, failuresToAbort: 3}
    after: {within: 10s}
)");
  pid_t pid = StartRun(file);
  bool all_active = false;
  for (int i = 0; i < 500 && !all_active; i++) {
    all_active = ActiveOn(1) == 1 && ActiveOn(2) == 1 && ActiveOn(3) == 1;
    if (!all_active) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(all_active) << "the experiment is not active on all three agents";
  EXPECT_FALSE(Pings(2, 1)) << "node 2 still reaches node 1";
  EXPECT_FALSE(Pings(3, 1)) << "node 3 still reaches node 1";
  EXPECT_TRUE(Pings(2, 3)) << "nodes 2 and 3 must still reach each other";
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 5) << "the probe's failures must end the run as deviated";
  for (int n = 1; n <= 3; n++) {
    EXPECT_EQ(ActiveOn(n), 0) << "node " << n;
    EXPECT_EQ(TcOf(n), clean[n - 1]) << "node " << n << " was not put back";
  }
  EXPECT_TRUE(Pings(2, 1)) << "node 1 is still cut off after the revert";
}

// The agents of a wave are injected at once: node 1's agent, stopped, holds up its own call only.
TEST_F(ThreeNodesTest, AStoppedAgentDoesNotHoldUpTheOthersOfItsWave) {
  const std::string clean[] = {TcOf(1), TcOf(2), TcOf(3)};
  const std::string file = QuietPartition("3s");
  agents_[0]->Signal(SIGSTOP);
  pid_t pid = StartRun(file);
  // One after the other, nodes 2 and 3 would wait for node 1's call to time out (10 s), and then not be
  // injected at all.
  bool others_active = false;
  for (int i = 0; i < 500 && !others_active; i++) {
    others_active = ActiveOn(2) == 1 && ActiveOn(3) == 1;
    if (!others_active) std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(others_active) << "nodes 2 and 3 waited for the stopped node 1";
  EXPECT_NE(TcOf(2), clean[1]);
  EXPECT_NE(TcOf(3), clean[2]);
  // Resumed well within its call's deadline, node 1 takes the fault too, and the run holds.
  agents_[0]->Signal(SIGCONT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (int n = 1; n <= 3; n++) {
    EXPECT_EQ(ActiveOn(n), 0) << "node " << n;
    EXPECT_EQ(TcOf(n), clean[n - 1]) << "node " << n << " was not put back";
  }
}

TEST_F(ThreeNodesTest, AnAgentThatRefusesHasEveryAgentOfItsWaveReverted) {
  const std::string clean[] = {TcOf(1), TcOf(2), TcOf(3)};
  // Node 1, first in the inventory, is aimed at an interface it does not have.
  const std::string inventory = directory_ + "/refusing.yaml";
  std::string agents;
  for (int n = 1; n <= 3; n++) {
    agents +=
        Cat("  - {name: node-", n, ", address: 'unix:", agents_[static_cast<size_t>(n - 1)]->socket_path(),
            "', interface: ", n == 1 ? "fl-absent" : "eth0", "}\n");
  }
  std::ofstream(inventory) << "apiVersion: faultline/v1\nkind: Inventory\nagents:\n" << agents;
  CommandResult run = RunCommand(
      Cat(FAULTCTL_PATH, " run ", QuietPartition("60s"), " --inventory ", inventory, " --no-progress"));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("inject failed agent=node-1 error="), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("fl-absent: no such device"), std::string::npos) << run.output;
  // The others of the wave were asked at the same time as node 1, took the fault, and gave it back.
  for (int n = 2; n <= 3; n++) {
    EXPECT_NE(run.output.find(Cat("inject active agent=node-", n)), std::string::npos) << run.output;
    EXPECT_NE(run.output.find(Cat("revert reverted agent=node-", n, " state=REVERTED")), std::string::npos)
        << run.output;
  }
  for (int n = 1; n <= 3; n++) {
    EXPECT_EQ(ActiveOn(n), 0) << "node " << n;
    EXPECT_EQ(TcOf(n), clean[n - 1]) << "node " << n << " was not put back";
  }
}

}  // namespace
}  // namespace faultline::test

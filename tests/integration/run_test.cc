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
#include <string>
#include <thread>

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
  EXPECT_EQ(run.output.find("inject"), std::string::npos) << run.output;
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

}  // namespace
}  // namespace faultline::test

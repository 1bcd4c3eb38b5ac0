// faultctl as users run it: the real binary against a real agent, checking output, exit codes and the
// kernel state it leaves.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "faultline/api/cat.h"
#include "sandbox.h"

namespace faultline::test {
namespace {

using api::Cat;

using Result = CommandResult;

Result Faultctl(const std::string& socket, const std::string& arguments) {
  return RunCommand(Cat(FAULTCTL_PATH, " --agent unix:", socket, " ", arguments));
}

class FaultctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = MissingPrivileges(); !missing.empty()) GTEST_SKIP() << missing;
    sandbox_ = std::make_unique<Sandbox>();
    agent_ = std::make_unique<AgentProcess>();
    target_ = Cat("--netns ", sandbox_->host_netns(), " --iface ", Sandbox::kHostInterface);
  }
  Result Run(const std::string& arguments) { return Faultctl(agent_->socket_path(), arguments); }

  std::unique_ptr<Sandbox> sandbox_;
  std::unique_ptr<AgentProcess> agent_;
  std::string target_;
};

TEST_F(FaultctlTest, TheSocketIsPrivateToTheAgentsUser) {
  struct stat st {};
  ASSERT_EQ(stat(agent_->socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(FaultctlTest, InjectListGetRevert) {
  std::string clean = sandbox_->HostTcState();
  Result injected =
      Run(Cat("inject partition ", target_, " --peer 198.18.0.2/32 --direction egress --protocol udp ",
              "--port 53 --port 8000-8100 --duration 30s --id cli-partition --label team=sre"));
  ASSERT_EQ(injected.exit_code, 0) << injected.output;
  EXPECT_NE(injected.output.find("experiment cli-partition ACTIVE"), std::string::npos) << injected.output;
  EXPECT_NE(sandbox_->HostTcState(), clean);

  Result listed = Run("list");
  EXPECT_EQ(listed.exit_code, 0);
  EXPECT_NE(listed.output.find("cli-partition"), std::string::npos) << listed.output;

  Result json = Run("--json get cli-partition");
  EXPECT_EQ(json.exit_code, 0);
  EXPECT_NE(json.output.find("\"state\":\"STATE_ACTIVE\""), std::string::npos) << json.output;
  EXPECT_NE(json.output.find("\"team\":\"sre\""), std::string::npos) << json.output;

  Result reverted = Run("revert cli-partition");
  EXPECT_EQ(reverted.exit_code, 0) << reverted.output;
  EXPECT_NE(reverted.output.find("REVERTED"), std::string::npos) << reverted.output;
  EXPECT_EQ(sandbox_->HostTcState(), clean);
}

TEST_F(FaultctlTest, LossWithWaitEndsWhenTheDurationEnds) {
  std::string clean = sandbox_->HostTcState();
  Result waited = Run(Cat("inject loss --percent 12.5 ", target_, " --duration 1s --wait --id cli-loss"));
  EXPECT_EQ(waited.exit_code, 0) << waited.output;
  EXPECT_NE(waited.output.find("cli-loss EXPIRED (duration 1s ended)"), std::string::npos) << waited.output;
  EXPECT_EQ(sandbox_->HostTcState(), clean);
}

TEST_F(FaultctlTest, CtrlCDuringWaitRevertsAndExits130) {
  std::string clean = sandbox_->HostTcState();
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    std::string agent = "unix:" + agent_->socket_path();
    std::string netns = sandbox_->host_netns();
    execl(FAULTCTL_PATH, FAULTCTL_PATH, "--agent", agent.c_str(), "inject", "partition", "--netns",
          netns.c_str(), "--iface", Sandbox::kHostInterface, "--duration", "60s", "--id", "interrupted",
          "--wait", nullptr);
    _exit(127);
  }
  // Wait until the partition is in the kernel, then interrupt as a terminal's Ctrl-C would.
  for (int i = 0; i < 500 && sandbox_->HostTcState() == clean; i++) usleep(10'000);
  ASSERT_NE(sandbox_->HostTcState(), clean) << "faultctl never injected";
  kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_EQ(sandbox_->HostTcState(), clean);
  Result got = Run("--json get interrupted");
  EXPECT_NE(got.output.find("\"state\":\"STATE_REVERTED\""), std::string::npos) << got.output;
}

TEST_F(FaultctlTest, HaltRevertsEverything) {
  std::string clean = sandbox_->HostTcState();
  ASSERT_EQ(Run(Cat("inject partition ", target_, " --duration 30s --id h1")).exit_code, 0);
  ASSERT_EQ(Run(Cat("inject loss --percent 5 ", target_, " --duration 30s --id h2")).exit_code, 0);
  Result halted = Run("halt --reason drill");
  EXPECT_EQ(halted.exit_code, 0);
  EXPECT_NE(halted.output.find("halted 2 experiment(s)"), std::string::npos) << halted.output;
  EXPECT_EQ(sandbox_->HostTcState(), clean);
}

TEST_F(FaultctlTest, ExitCodesTellWhatWentWrong) {
  std::string clean = sandbox_->HostTcState();
  // 2: the command line names a bad value; nothing is sent.
  Result bad_peer = Run(Cat("inject partition ", target_, " --peer 10.0.0.0/33 --duration 30s"));
  EXPECT_EQ(bad_peer.exit_code, 2);
  EXPECT_NE(bad_peer.output.find("faults[0].target.peers[0]: \"10.0.0.0/33\" is not a CIDR"),
            std::string::npos)
      << bad_peer.output;
  EXPECT_EQ(Run(Cat("inject loss --percent 120 ", target_, " --duration 30s")).exit_code, 2);
  EXPECT_EQ(Run(Cat("inject partition ", target_)).exit_code, 2) << "--duration is required";
  // 1: the agent refused: over its maximum duration, or an interface it cannot find.
  Result too_long = Run(Cat("inject partition ", target_, " --duration 2h"));
  EXPECT_EQ(too_long.exit_code, 1);
  EXPECT_NE(too_long.output.find("duration: 2h is over the agent's maximum of 1h"), std::string::npos)
      << too_long.output;
  Result no_device =
      Run(Cat("inject partition --netns ", sandbox_->host_netns(), " --iface nope0 --duration 5s"));
  EXPECT_EQ(no_device.exit_code, 1);
  EXPECT_NE(no_device.output.find("interface nope0: no such device"), std::string::npos) << no_device.output;
  EXPECT_EQ(Run("get no-such-experiment").exit_code, 1);
  EXPECT_EQ(sandbox_->HostTcState(), clean);
  // 3: nobody listens.
  Result unreachable = Faultctl("/nonexistent/faultlined.sock", "--timeout 1s list");
  EXPECT_EQ(unreachable.exit_code, 3) << unreachable.output;
}

// Each netem command puts the netem it names on the interface (tc prints what the kernel holds).
TEST_F(FaultctlTest, NetemCommandsPutTheirParametersInTheKernel) {
  grpc::ClientContext context;
  faultline::v1::CapabilitiesResponse caps;
  ASSERT_TRUE(agent_->stub().Capabilities(&context, {}, &caps).ok());
  for (const auto& feature : caps.features()) {
    if (feature.name() == "netem" && !feature.available()) GTEST_SKIP() << "the kernel lacks netem";
  }
  std::string clean = sandbox_->HostTcState();
  const std::pair<std::string, std::string> cases[] = {
      {"delay --latency 40ms --jitter 5ms --distribution normal", "delay 40ms"},
      {"reorder --percent 25 --gap 5 --latency 10ms", "reorder 25% gap 5"},
      {"loss --model gilbert-elliott --p 5 --r 40 --h 10 --k 1", "loss gemodel p 5% r 40%"},
      {"loss --model netem --percent 7 --correlation 20", "loss 7% 20%"},
      {"duplicate --percent 3", "duplicate 3%"},
      {"corrupt --percent 4", "corrupt 4%"},
      {"bandwidth --rate 10mbit --shaper netem", "rate 10Mbit"},
  };
  int n = 0;
  for (const auto& [command, shown] : cases) {
    SCOPED_TRACE(command);
    std::string id = Cat("netem-", n++);
    Result injected =
        Run(Cat("inject ", command, " ", target_, " --peer 198.18.0.2/32 --duration 30s --id ", id));
    ASSERT_EQ(injected.exit_code, 0) << injected.output;
    std::string qdiscs =
        Shell(Cat("tc -n ", sandbox_->host_netns().substr(11), " qdisc show dev ", Sandbox::kHostInterface));
    EXPECT_NE(qdiscs.find(shown), std::string::npos) << qdiscs;
    EXPECT_EQ(Run(Cat("revert ", id)).exit_code, 0);
    EXPECT_EQ(sandbox_->HostTcState(), clean);
  }
}

}  // namespace
}  // namespace faultline::test

// `faultctl schedule` as a process against a real agent: a slot every 3 s runs a 1 s experiment (a
// partition toward one peer, a ping probe toward the other), a blackout window skips a slot, SIGTERM
// reverts the run in progress, and a second faultctl on the same state file resumes the plan without
// running a handled slot again.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>
#include <thread>

#include "agent_fixture.h"
#include "faultline/api/cat.h"
#include "report.h"

namespace faultline::test {
namespace {

using api::Cat;
using namespace std::chrono_literals;
using Seconds = std::chrono::sys_seconds;
namespace v1 = faultline::v1;

// A `faultctl schedule` process, its output in a file; killed with the object if still running.
class ScheduleProcess {
 public:
  ScheduleProcess(const std::string& agent_socket, const std::string& schedule, const std::string& state,
                  const std::string& output)
      : output_(output) {
    pid_ = fork();
    if (pid_ == 0) {
      int out = open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      const std::string agent = "unix:" + agent_socket;
      execl(FAULTCTL_PATH, FAULTCTL_PATH, "--agent", agent.c_str(), "schedule", schedule.c_str(), "--state",
            state.c_str(), nullptr);
      _exit(127);
    }
  }
  ~ScheduleProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  std::string Output() const {
    std::ifstream in(output_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  // The first line of the output holding every one of `parts`, waiting up to `timeout`; "" if none.
  std::string WaitForLine(std::initializer_list<std::string> parts, std::chrono::seconds timeout) const {
    const auto end = std::chrono::steady_clock::now() + timeout;
    do {
      std::istringstream lines(Output());
      for (std::string line; std::getline(lines, line);) {
        if (std::all_of(parts.begin(), parts.end(),
                        [&](const std::string& p) { return line.find(p) != line.npos; }))
          return line;
      }
      std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < end);
    return "";
  }
  // SIGTERM, then its exit code (-1 if it had to be killed after 10 s).
  int Terminate() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200; i++) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }

 private:
  std::string output_;
  pid_t pid_ = -1;
};

class ScheduleTest : public AgentInSandboxTest {
 protected:
  void SetUp() override {
    AgentInSandboxTest::SetUp();
    if (IsSkipped()) return;
    char pattern[] = "/tmp/fltest-schedule-XXXXXX";
    directory_ = mkdtemp(pattern);
  }
  void TearDown() override {
    AgentInSandboxTest::TearDown();
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }

  // 2026-01-15T12:00:03Z, as a schedule's fixed window takes it.
  static std::string WindowTime(Seconds time) { return ctl::FormatTime(time).substr(0, 19) + "Z"; }
  static std::string Slot(Seconds time) { return "slot=" + ctl::FormatTime(time); }

  // A schedule running a 1 s partition toward 198.18.0.3 every 3 s (the probe pings 198.18.0.2), with
  // no run starting in [blackout_from, blackout_to).
  std::string Schedule(Seconds blackout_from, Seconds blackout_to) {
    const std::string netns_name = sandbox_->host_netns().substr(std::strlen("/run/netns/"));
    std::ofstream(directory_ + "/experiment.yaml")
        << Cat(R"(apiVersion: faultline/v1
kind: Experiment
metadata: {name: scheduled}
spec:
  duration: 1s
  faults:
    - partition: {}
      target: {netns: )",
               sandbox_->host_netns(), ", interface: ", Sandbox::kHostInterface,
               R"(, direction: both, peers: [198.18.0.3/32]}
  steadyState:
    probes:
      - name: peer-answers
        command: {run: [ip, netns, exec, )",
               netns_name, R"(, ping, -c1, -W1, 198.18.0.2]}
    during: {interval: 500ms}
    after: {within: 3s}
)");
    const std::string path = directory_ + "/schedule.yaml";
    std::ofstream(path) << Cat(R"(apiVersion: faultline/v1
kind: Schedule
metadata: {name: every-three-seconds}
spec:
  runs:
    - {file: experiment.yaml, cron: "*/3 * * * * *"}
  blackouts:
    - {from: ")",
                               WindowTime(blackout_from), "\", to: \"", WindowTime(blackout_to), "\"}\n");
    return path;
  }

  int Reverted() {
    grpc::ClientContext context;
    v1::ListRequest request;
    request.add_states(v1::STATE_REVERTED);
    v1::ListResponse listed;
    return agent_->stub().List(&context, request, &listed).ok() ? listed.experiments_size() : -1;
  }

  std::string directory_;
};

TEST_F(ScheduleTest, ADueSlotRunsABlackedOutOneIsSkippedAndARestartResumesThePlan) {
  const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  // The first slot at least 2 s away (a multiple of 3 s); the next one is blacked out.
  Seconds first = now + 2s;
  while (first.time_since_epoch().count() % 3 != 0) first += 1s;
  const std::string schedule = Schedule(first + 3s, first + 5s);
  const std::string state = directory_ + "/state.json";

  ScheduleProcess scheduler(agent_->socket_path(), schedule, state, directory_ + "/first.log");
  EXPECT_NE(scheduler.WaitForLine({"schedule finished", "exit=0", Slot(first)}, 10s), "")
      << scheduler.Output();
  EXPECT_NE(scheduler.WaitForLine({"inject active agent=local", "experiment=scheduled"}, 1s), "")
      << scheduler.Output();
  EXPECT_GE(Reverted(), 1) << "the agent saw the run's experiment and its revert";
  EXPECT_NE(scheduler.WaitForLine({"schedule skipped-blackout", Slot(first + 3s)}, 5s), "")
      << scheduler.Output();
  // SIGTERM during the next run: it is aborted and reverted before faultctl exits.
  ASSERT_NE(scheduler.WaitForLine({"schedule started", Slot(first + 6s)}, 5s), "") << scheduler.Output();
  EXPECT_EQ(scheduler.Terminate(), 0) << scheduler.Output();
  EXPECT_NE(scheduler.WaitForLine({"schedule finished", "aborted=stopping", Slot(first + 6s)}, 0s), "")
      << scheduler.Output();
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the run in progress was not reverted";

  // The same state: the slot handled before the restart is not run again; the next one is.
  ScheduleProcess resumed(agent_->socket_path(), schedule, state, directory_ + "/second.log");
  EXPECT_NE(resumed.WaitForLine({"schedule finished", "exit=0", Slot(first + 9s)}, 10s), "")
      << resumed.Output();
  EXPECT_EQ(resumed.WaitForLine({"schedule started", Slot(first + 6s)}, 0s), "") << resumed.Output();
  EXPECT_EQ(resumed.WaitForLine({"interrupted"}, 0s), "") << "a clean stop leaves nothing interrupted";
  EXPECT_EQ(resumed.Terminate(), 0) << resumed.Output();
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_);
}

}  // namespace
}  // namespace faultline::test

// Every runnable file in experiments/, run by faultctl as a user would, against the sandbox: the
// service (faultline-demo-service) on 198.18.0.1:8080 in the host namespace, its database on
// 198.18.0.2:8081 in the peers namespace, and the agent. An inventory aims each file's faults at the
// sandbox's host interface through its overrides. faultctl runs in the host namespace, where the
// files' probes find the service. Each run must end with the exit code the file's comment promises,
// a JUnit report that agrees, and the host interface as it was.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "agent_fixture.h"
#include "faultline/api/cat.h"
#include "probe.h"

namespace faultline::test {
namespace {

using api::Cat;

// A faultline-demo-service in a namespace, stopped when destroyed.
class ServiceProcess {
 public:
  ServiceProcess(const std::string& netns, std::vector<std::string> args) {
    args.insert(args.begin(),
                {"ip", "netns", "exec", netns.substr(std::strlen("/run/netns/")), DEMO_SERVICE_PATH});
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      int null = open("/dev/null", O_WRONLY);
      dup2(null, STDOUT_FILENO);
      std::vector<char*> argv;
      for (auto& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execvp("ip", argv.data());
      _exit(127);
    }
  }
  ~ServiceProcess() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
  ServiceProcess(const ServiceProcess&) = delete;
  ServiceProcess& operator=(const ServiceProcess&) = delete;

 private:
  pid_t pid_;
};

// Takes `probe` from inside `netns`, on a thread of its own (setns moves only the calling thread).
ctl::ProbeResult ProbeIn(const std::string& netns, const ctl::Probe& probe) {
  ctl::ProbeResult result;
  std::thread([&] {
    int fd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      result.observed = Cat("cannot enter ", netns, ": ", std::strerror(errno));
    } else {
      result = ctl::RunProbe(probe);
    }
    if (fd >= 0) close(fd);
  }).join();
  return result;
}

struct Runnable {
  const char* file;      // in experiments/
  int exit_code;         // what the file's comment says a run ends with
  const char* duration;  // --duration for a short run ("" keeps the file's)
  const char* needs;     // a kernel feature (faultctl caps), or ""
};

class ExperimentsTest : public AgentInSandboxTest, public ::testing::WithParamInterface<Runnable> {
 protected:
  void SetUp() override {
    AgentInSandboxTest::SetUp();
    if (IsSkipped()) return;
    if (std::string lacks = *GetParam().needs ? Lacks(GetParam().needs) : ""; !lacks.empty())
      GTEST_SKIP() << GetParam().file << " needs " << GetParam().needs << ": " << lacks;
    char pattern[] = "/tmp/fltest-experiments-XXXXXX";
    directory_ = mkdtemp(pattern);
    database_ = std::make_unique<ServiceProcess>(sandbox_->peers_netns(),
                                                 std::vector<std::string>{"--listen", "198.18.0.2:8081"});
    service_ = std::make_unique<ServiceProcess>(
        sandbox_->host_netns(),
        std::vector<std::string>{"--listen", "198.18.0.1:8080", "--dependency", "198.18.0.2:8081"});
    ctl::Probe checkout;
    checkout.url = "http://198.18.0.1:8080/checkout";
    checkout.timeout = std::chrono::milliseconds(500);
    bool up = false;
    for (int i = 0; i < 50 && !up; i++) {
      up = ProbeIn(sandbox_->host_netns(), checkout).healthy;
      if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(up) << "the sandbox's service did not answer /checkout within 5 s";
    // One agent under two names, so that files selecting role=app and role=node both find it.
    std::ofstream(directory_ + "/inventory.yaml") << Cat(R"(apiVersion: faultline/v1
kind: Inventory
agents:
)",
                                                         InventoryAgent("app"), InventoryAgent("node"));
  }
  void TearDown() override {
    service_.reset();
    database_.reset();
    AgentInSandboxTest::TearDown();
    if (!directory_.empty()) std::filesystem::remove_all(directory_);
  }

  std::string InventoryAgent(const std::string& role) const {
    return Cat("  - name: ", role, "\n    address: unix:", agent_->socket_path(),
               "\n    labels: {role: ", role, "}\n    interface: ", Sandbox::kHostInterface,
               "\n    netns: ", sandbox_->host_netns(), "\n");
  }

  std::string directory_;
  std::unique_ptr<ServiceProcess> database_;
  std::unique_ptr<ServiceProcess> service_;
};

TEST_P(ExperimentsTest, RunsAgainstTheSandboxAsItsCommentSays) {
  const Runnable& runnable = GetParam();
  const std::string file = Cat(FAULTLINE_SOURCE_DIR, "/experiments/", runnable.file);
  const bool game_day = std::string(runnable.file) == "gameday.yaml";
  const std::string host = sandbox_->host_netns().substr(std::strlen("/run/netns/"));
  const std::string junit = directory_ + "/junit.xml";
  CommandResult run = RunCommand(Cat(
      "ip netns exec ", host, " ", FAULTCTL_PATH, game_day ? " gameday" : "", " run ", file, " --inventory ",
      directory_, "/inventory.yaml --junit ", junit, " --html ", directory_, "/report.html",
      *runnable.duration ? Cat(" --duration ", runnable.duration) : "", game_day ? " --pause 1s" : ""));
  EXPECT_EQ(run.exit_code, runnable.exit_code) << run.output;
  EXPECT_NE(run.output.find("revert reverted agent="), std::string::npos) << run.output;

  std::ifstream in(junit);
  const std::string report((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_NE(report.find("<testsuites"), std::string::npos) << "no JUnit report at " << junit;
  const bool failures = report.find("<failure") != std::string::npos;
  EXPECT_EQ(failures, runnable.exit_code != 0) << report;
  EXPECT_EQ(report.find("<error"), std::string::npos) << report;

  // The HTML report's timeline has one fault window per step's agent.
  std::ifstream html_in(directory_ + "/report.html");
  const std::string html((std::istreambuf_iterator<char>(html_in)), std::istreambuf_iterator<char>());
  int windows = 0;
  for (size_t at = html.find("<rect class=\"fault-window\""); at != std::string::npos;
       at = html.find("<rect class=\"fault-window\"", at + 1))
    windows++;
  EXPECT_EQ(windows, game_day ? 5 : 1) << "fault windows in the HTML report's timeline";
}

INSTANTIATE_TEST_SUITE_P(Files, ExperimentsTest,
                         ::testing::Values(Runnable{"demo.yaml", 5, "", ""},
                                           Runnable{"latency-to-dependency.yaml", 0, "4s", "netem"},
                                           Runnable{"lossy-link.yaml", 0, "4s", ""},
                                           Runnable{"slow-link.yaml", 0, "4s", "htb"},
                                           Runnable{"partition-one-node.yaml", 0, "4s", ""},
                                           Runnable{"cpu-saturation.yaml", 0, "4s", ""},
                                           Runnable{"gameday.yaml", 0, "3s", "netem"}),
                         [](const ::testing::TestParamInfo<Runnable>& info) {
                           std::string name = info.param.file;
                           name.resize(name.find('.'));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace faultline::test

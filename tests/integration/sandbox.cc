#include "sandbox.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent_client.h"
#include "faultline/api/cat.h"

namespace faultline::test {

using api::Cat;

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run: " << command;
    return result;
  }
  std::array<char, 4096> buffer;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool CpuIsEmulated() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string text((std::istreambuf_iterator<char>(cpuinfo)), std::istreambuf_iterator<char>());
  return text.find("QEMU TCG CPU") != std::string::npos;
}

std::string Shell(const std::string& command) {
  CommandResult result = RunCommand(command);
  EXPECT_EQ(result.exit_code, 0) << command << "\n" << result.output;
  return result.output;
}

std::string MissingPrivileges() {
  if (geteuid() != 0) return "needs root (network namespaces, tc, BPF)";
  if (std::system("ip netns list >/dev/null 2>&1") != 0) return "needs iproute2's ip command";
  return "";
}

Sandbox::Sandbox() {
  static int counter = 0;
  std::string base = Cat("flit-", getpid(), "-", counter++);
  host_ = base + "-h";
  peers_ = base + "-p";
  Shell(Cat("ip netns add ", host_));
  Shell(Cat("ip netns add ", peers_));
  // Duplicate address detection keeps new IPv6 addresses (link-local ones too) tentative for a while.
  for (const std::string& ns : {host_, peers_}) {
    Shell(Cat("ip netns exec ", ns,
              " sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"));
  }
  Shell(Cat("ip -n ", host_, " link add ", kHostInterface, " type veth peer name ", kPeersInterface,
            " netns ", peers_));
  Shell(Cat("ip -n ", host_, " addr add 198.18.0.1/24 dev ", kHostInterface));
  Shell(Cat("ip -n ", host_, " addr add 2001:db8::1/64 dev ", kHostInterface, " nodad"));
  for (const char* address : {"198.18.0.2/24", "198.18.0.3/24"}) {
    Shell(Cat("ip -n ", peers_, " addr add ", address, " dev ", kPeersInterface));
  }
  for (const char* address : {"2001:db8::2/64", "2001:db8::3/64"}) {
    Shell(Cat("ip -n ", peers_, " addr add ", address, " dev ", kPeersInterface, " nodad"));
  }
  for (const std::string& ns : {host_, peers_}) {
    Shell(Cat("ip -n ", ns, " link set lo up"));
    Shell(Cat("ip -n ", ns, " link set ", ns == host_ ? kHostInterface : kPeersInterface, " up"));
  }
  // Resolve every neighbour now: the first neighbour solicitation on a new link is often lost, and the
  // kernel retries only after a second, while a test's packets would wait in its short queue.
  for (const char* peer : {"198.18.0.2", "198.18.0.3", "2001:db8::2", "2001:db8::3"}) {
    Shell(Cat("ip netns exec ", host_, " ping -c 1 -W 5 ", peer, " >/dev/null"));
  }
}

Sandbox::~Sandbox() {
  // Deleting the namespaces removes the veth pair and everything attached to it.
  for (const std::string& ns : {host_, peers_}) std::system(Cat("ip netns del ", ns, " 2>/dev/null").c_str());
}

std::string Sandbox::HostTcState() const {
  std::string state;
  for (const char* what : {"qdisc show dev", "filter show ingress dev", "filter show egress dev"}) {
    state += Cat("# tc ", what, "\n", Shell(Cat("tc -n ", host_, " ", what, " ", kHostInterface)));
  }
  return state;
}

AgentProcess::AgentProcess(std::vector<std::string> extra_args, const std::string& state_dir,
                           bool wait_until_ready, const std::string& netns) {
  char dir_template[] = "/tmp/faultline-it-XXXXXX";
  dir_ = mkdtemp(dir_template);
  socket_ = dir_ + "/faultlined.sock";
  std::vector<std::string> args = {FAULTLINED_PATH, "--socket", socket_, "--state-dir",
                                   state_dir.empty() ? dir_ + "/state" : state_dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  started_at_ = std::chrono::steady_clock::now();
  // Opened before fork: the child only makes system calls.
  const int netns_fd = netns.empty() ? -1 : open(netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (!netns.empty() && netns_fd < 0) ADD_FAILURE() << "cannot open " << netns;
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // A test binary killed by a timeout must not leave its agent running: SIGTERM (the agent reverts
    // what it holds) when the forking thread ends.
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent) _exit(125);
    if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0) _exit(126);
    int log = open((dir_ + "/agent.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (netns_fd >= 0) close(netns_fd);
  stub_ = *ctl::ConnectAgent("unix:" + socket_);
  if (wait_until_ready) WaitUntilReady();
}

bool AgentProcess::WaitUntilReady(std::chrono::seconds timeout) {
  // One call that waits for the agent to listen, rather than failing fast while it starts.
  grpc::ClientContext context;
  context.set_wait_for_ready(true);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  faultline::v1::CapabilitiesResponse caps;
  if (stub_->Capabilities(&context, {}, &caps).ok()) return true;
  ADD_FAILURE() << "faultlined did not answer within " << timeout.count() << " s:\n" << Log();
  return false;
}

int AgentProcess::WaitForExit(std::chrono::seconds timeout) {
  int status = 0;
  for (auto end = std::chrono::steady_clock::now() + timeout; running();) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    if (std::chrono::steady_clock::now() > end) {
      ADD_FAILURE() << "faultlined did not exit within " << timeout.count() << " s";
      return Signal(SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

AgentProcess::~AgentProcess() {
  if (running()) Signal(SIGTERM);
  std::filesystem::remove_all(dir_);
}

int AgentProcess::Signal(int signal) {
  if (!running()) return -1;
  if (signal == SIGTERM) kill(pid_, SIGCONT);  // a stopped agent must be able to take the SIGTERM
  kill(pid_, signal);
  if (signal != SIGTERM && signal != SIGKILL) return 0;
  int status = 0;
  for (int i = 0; i < 500; i++) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "faultlined did not exit within 5 s of signal " << signal;
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

std::string AgentProcess::ReadyField(const std::string& key) const {
  const std::string needle = Cat("\"", key, "\":\"");
  for (int i = 0; i < 200; i++) {
    std::string log = Log();
    size_t ready = log.find("\"event\":\"agent.ready\"");
    size_t start = ready == std::string::npos ? std::string::npos : log.find(needle, ready);
    if (start != std::string::npos) {
      start += needle.size();
      return log.substr(start, log.find('"', start) - start);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "no " << key << " in agent.ready:\n" << Log();
  return "";
}

std::string AgentProcess::Log() const {
  std::ifstream in(dir_ + "/agent.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace faultline::test

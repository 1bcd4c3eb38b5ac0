// The integration tests' world: two network namespaces joined by a veth pair, a faultlined process on
// a private socket, and traffic between them. Everything is removed by destructors, also on failure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "faultline/v1/agent.grpc.pb.h"

namespace faultline::test {

// "host" (198.18.0.1, 2001:db8::1) -- veth -- "peers" (198.18.0.2 and .3, 2001:db8::2 and ::3).
class Sandbox {
 public:
  Sandbox();
  ~Sandbox();
  Sandbox(const Sandbox&) = delete;
  Sandbox& operator=(const Sandbox&) = delete;

  std::string host_netns() const { return "/run/netns/" + host_; }
  std::string peers_netns() const { return "/run/netns/" + peers_; }
  static constexpr const char* kHostInterface = "fl-host";
  static constexpr const char* kPeersInterface = "fl-peers";

  // What tc reports for the host interface: qdiscs and filters on both clsact hooks.
  std::string HostTcState() const;

 private:
  std::string host_;
  std::string peers_;
};

// The faultlined binary, started on a socket in a private directory. Stopped (SIGTERM, then SIGKILL)
// when destroyed.
class AgentProcess {
 public:
  // `state_dir`: the agent's --state-dir, kept when the agent is destroyed (so that another agent can
  // start on it); by default a private one, removed with the agent. Unless `wait_until_ready` is
  // false, the constructor returns once the agent answers. `netns`: a namespace path to run the
  // agent in (its TCP listeners then live there); by default the test's own.
  explicit AgentProcess(std::vector<std::string> extra_args = {}, const std::string& state_dir = "",
                        bool wait_until_ready = true, const std::string& netns = "");
  ~AgentProcess();
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  faultline::v1::Agent::Stub& stub() { return *stub_; }
  pid_t pid() const { return pid_; }
  const std::string& socket_path() const { return socket_; }
  // Sends `signal` and, for SIGTERM/SIGKILL, waits for the process to end. Returns the exit status.
  int Signal(int signal);
  bool running() const { return pid_ > 0; }
  std::string Log() const;
  // Waits up to `timeout` for the agent to answer; false (and a test failure) when it does not.
  bool WaitUntilReady(std::chrono::seconds timeout = std::chrono::seconds(10));
  // Waits for a process that ends by itself (a crash point) and returns its wait status.
  int WaitForExit(std::chrono::seconds timeout = std::chrono::seconds(10));
  std::chrono::steady_clock::time_point started_at() const { return started_at_; }
  // The value of `key` in the agent's agent.ready log line ("listen", "metrics_listen"), waiting up to
  // 2 s for the line; "" (and a test failure) without it.
  std::string ReadyField(const std::string& key) const;

 private:
  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
  std::chrono::steady_clock::time_point started_at_;
  std::unique_ptr<faultline::v1::Agent::Stub> stub_;
};

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;  // standard output and error together
};

// Runs a shell command and returns what it printed and its exit code.
CommandResult RunCommand(const std::string& command);

// Runs a shell command; returns its output. Fails the test on a non-zero exit.
std::string Shell(const std::string& command);

// Whether qemu emulates this CPU (TCG, the VM suite): the same code runs about ten times slower there.
bool CpuIsEmulated();

// Whether the tests can do what they need: root, and network namespaces.
std::string MissingPrivileges();

}  // namespace faultline::test

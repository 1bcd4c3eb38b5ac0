// Running iproute2 and other commands from the kernel-layer tests, which compare what the code made
// with what the kernel reports through them.
#pragma once

#include <string>
#include <vector>

namespace faultline::kernel::test {

struct CommandResult {
  int exit_code = -1;  // -1 when the command could not run or did not exit normally
  std::string output;  // stdout and stderr
};

// Runs `command` through /bin/sh, its stderr merged into its stdout.
CommandResult Shell(const std::string& command);

// Two scratch network namespaces, `name` and `name`-peer, joined by a veth pair: fl-a (198.18.0.1/30)
// in the first, fl-b (198.18.0.2/30) in the second. Both namespaces are deleted with the object,
// whatever was made of them.
class VethPair {
 public:
  explicit VethPair(const std::string& name);
  ~VethPair();
  VethPair(const VethPair&) = delete;
  VethPair& operator=(const VethPair&) = delete;

  // Empty when everything was made; else the command that failed, with its output.
  const std::string& error() const { return error_; }
  const std::string& ns() const { return ns_; }
  const std::string& peer_ns() const { return peer_ns_; }

 private:
  std::string ns_;
  std::string peer_ns_;
  std::vector<std::string> made_;
  std::string error_;
};

}  // namespace faultline::kernel::test

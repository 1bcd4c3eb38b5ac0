// Running iproute2 and other commands from the kernel-layer tests, which compare what the code made
// with what the kernel reports through them.
#pragma once

#include <string>

namespace faultline::kernel::test {

struct CommandResult {
  int exit_code = -1;  // -1 when the command could not run or did not exit normally
  std::string output;  // stdout and stderr
};

// Runs `command` through /bin/sh, its stderr merged into its stdout.
CommandResult Shell(const std::string& command);

}  // namespace faultline::kernel::test

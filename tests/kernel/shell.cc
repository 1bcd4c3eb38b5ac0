#include "shell.h"

#include <sys/wait.h>

#include <cstdio>

#include "faultline/api/cat.h"

namespace faultline::kernel::test {

CommandResult Shell(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen(api::Cat(command, " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace faultline::kernel::test

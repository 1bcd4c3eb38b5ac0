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

VethPair::VethPair(const std::string& name) : ns_(name), peer_ns_(api::Cat(name, "-peer")) {
  using api::Cat;
  for (const std::string& netns : {ns_, peer_ns_}) {
    CommandResult added = Shell(Cat("ip netns add ", netns));
    if (added.exit_code != 0) {
      error_ = Cat("ip netns add ", netns, ": ", added.output);
      return;
    }
    made_.push_back(netns);
  }
  for (const std::string& command :
       {Cat("ip -n ", ns_, " link add fl-a type veth peer name fl-b netns ", peer_ns_),
        Cat("ip -n ", ns_, " addr add 198.18.0.1/30 dev fl-a"), Cat("ip -n ", ns_, " link set fl-a up"),
        Cat("ip -n ", peer_ns_, " addr add 198.18.0.2/30 dev fl-b"),
        Cat("ip -n ", peer_ns_, " link set fl-b up")}) {
    CommandResult result = Shell(command);
    if (result.exit_code != 0) {
      error_ = Cat(command, ": ", result.output);
      return;
    }
  }
}

VethPair::~VethPair() {
  for (const std::string& netns : made_) Shell(api::Cat("ip netns del ", netns));
}

}  // namespace faultline::kernel::test

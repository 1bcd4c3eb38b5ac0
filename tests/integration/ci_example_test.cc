// docs/ci/github-actions.yml, run as GitHub would run it: each `run` step of the job in order in
// bash, with the job's environment, in a workspace holding the checkout's scripts/ and experiments/,
// a step without `if: always()` only while all before it succeeded. The build step is left out: the
// test uses its own build (FAULTLINE_BUILD_DIR), and `uses` steps are GitHub's. The example's
// promise is checked: the demo's service deviates, so the experiment step fails with exit 5 and
// the JUnit report shows the failed probe; the stop step leaves nothing behind.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "faultline/api/cat.h"
#include "sandbox.h"

namespace faultline::test {
namespace {

using api::Cat;
namespace fs = std::filesystem;

std::string ShellQuote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class CiExampleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string missing = MissingPrivileges(); !missing.empty()) GTEST_SKIP() << missing;
    if (!fs::exists(Cat(FAULTLINE_SOURCE_DIR, "/scripts/sandbox")) || !fs::exists("/bin/bash"))
      GTEST_SKIP() << "needs bash and the source tree's scripts/ (the host suite runs this, not the VMs)";
    char pattern[] = "/tmp/fltest-ci-XXXXXX";
    workspace_ = mkdtemp(pattern);
    for (const char* dir : {"scripts", "experiments"})
      fs::create_directory_symlink(Cat(FAULTLINE_SOURCE_DIR, "/", dir), Cat(workspace_, "/", dir));
    fs::create_directory(workspace_ + "/runner-temp");
  }
  void TearDown() override {
    if (workspace_.empty()) return;
    // A failed test may have stopped before the job's own stop step.
    if (fs::exists(workspace_ + "/runner-temp/sandbox/env"))
      RunCommand(Cat("cd ", workspace_, " && FAULTLINE_BUILD_DIR=", BuildDir(),
                     " scripts/sandbox down runner-temp/sandbox"));
    fs::remove_all(workspace_);
  }

  static std::string BuildDir() { return fs::path(FAULTCTL_PATH).parent_path().parent_path().string(); }

  std::string workspace_;
};

TEST_F(CiExampleTest, TheGithubActionsJobFailsOnTheDeviationAndPublishesItsJunitReport) {
  YAML::Node workflow = YAML::LoadFile(Cat(FAULTLINE_SOURCE_DIR, "/docs/ci/github-actions.yml"));
  YAML::Node job = workflow["jobs"]["resilience"];
  ASSERT_TRUE(job.IsMap()) << "no jobs.resilience in docs/ci/github-actions.yml";
  std::string environment = Cat("RUNNER_TEMP=", ShellQuote(workspace_ + "/runner-temp"));
  for (const auto& variable : job["env"]) {
    const std::string name = variable.first.as<std::string>();
    environment +=
        Cat(" ", name, "=",
            ShellQuote(name == "FAULTLINE_BUILD_DIR" ? BuildDir() : variable.second.as<std::string>()));
  }

  std::map<std::string, CommandResult> results;
  std::string netns;  // the sandbox's, once it is up
  bool failed = false;
  for (const auto& step : job["steps"]) {
    if (!step["run"]) continue;
    const std::string name = step["name"].as<std::string>();
    const std::string script = step["run"].as<std::string>();
    if (script.starts_with("scripts/build")) continue;
    if (failed && !(step["if"] && step["if"].as<std::string>() == "always()")) continue;
    const std::string command = Cat("cd ", ShellQuote(workspace_), " && env ", environment,
                                    " bash -eo pipefail -c ", ShellQuote(script));
    CommandResult result = RunCommand(command);
    std::printf("[ STEP     ] %s: exit %d\n", name.c_str(), result.exit_code);
    failed |= result.exit_code != 0;
    results[name] = result;
    const std::string env = Read(workspace_ + "/runner-temp/sandbox/env");
    if (size_t at = env.find("SANDBOX_NETNS="); at != std::string::npos)
      netns = env.substr(at + 14, env.find('\n', at) - at - 14);
  }

  ASSERT_TRUE(results.contains("Start the agent and the service under test"));
  EXPECT_EQ(results["Start the agent and the service under test"].exit_code, 0)
      << results["Start the agent and the service under test"].output;
  ASSERT_TRUE(results.contains("Run the experiment"));
  const CommandResult& run = results["Run the experiment"];
  EXPECT_EQ(run.exit_code, 5) << "the demo's checkout should deviate without its database\n" << run.output;
  EXPECT_NE(run.output.find("during deviated"), std::string::npos) << run.output;

  const std::string junit = Read(workspace_ + "/resilience.xml");
  ASSERT_NE(junit.find("<testsuites"), std::string::npos) << "no resilience.xml";
  const size_t during = junit.find("name=\"steady state during\"");
  ASSERT_NE(during, std::string::npos) << junit;
  EXPECT_EQ(junit.find("<failure message=\"checkout: 503", during), junit.find("<failure", during)) << junit;
  EXPECT_NE(junit.find("<failure", during), std::string::npos) << junit;

  EXPECT_NE(Read(workspace_ + "/resilience.html").find("<rect class=\"fault-window\""), std::string::npos)
      << "no resilience.html with the fault's window";

  ASSERT_TRUE(results.contains("Stop the agent and the service"));
  EXPECT_EQ(results["Stop the agent and the service"].exit_code, 0)
      << results["Stop the agent and the service"].output;
  EXPECT_FALSE(fs::exists(workspace_ + "/runner-temp/sandbox"))
      << "the stop step left the sandbox's directory";
  ASSERT_FALSE(netns.empty());
  EXPECT_FALSE(fs::exists("/run/netns/" + netns)) << "the stop step left namespace " << netns;
}

}  // namespace
}  // namespace faultline::test

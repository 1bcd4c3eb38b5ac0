// What faultctl makes of a run's record: the JUnit XML a CI system reads, the live view a terminal
// shows, and the helpers both use.
#include "report.h"

#include <gtest/gtest.h>

#include <regex>

#include "junit_report.h"
#include "live_view.h"

namespace faultline::ctl {
namespace {

using std::chrono::seconds;

const SystemTime kStart = std::chrono::sys_days(
    std::chrono::year_month_day(std::chrono::year(2026), std::chrono::month(11), std::chrono::day(26)));

// A record of a run on two agents, built the way the runner builds one.
class Recorder {
 public:
  explicit Recorder(std::string name) {
    run_.experiment = std::move(name);
    run_.path = "experiments/x.yaml";
    run_.duration = seconds(30);
    run_.probes = {"checkout"};
    run_.started = kStart;
  }
  Recorder& At(int second, std::string phase, std::string event,
               std::map<std::string, std::string> fields = {}) {
    run_.events.push_back({kStart + seconds(second), std::move(phase), std::move(event), std::move(fields)});
    return *this;
  }
  Recorder& Probe(int second, const std::string& phase, bool healthy) {
    return At(second, phase, "probe",
              {{"probe", "checkout"},
               {"healthy", healthy ? "true" : "false"},
               {"observed", healthy ? "200" : "503"}});
  }
  RunRecord Done(int exit_code, int second) {
    run_.exit_code = exit_code;
    run_.finished = kStart + seconds(second);
    return run_;
  }

 private:
  RunRecord run_;
};

Recorder Injected(const std::string& name) {
  Recorder recorder(name);
  recorder.At(0, "select", "agents", {{"agents", "node-a,node-b"}})
      .Probe(1, "before", true)
      .At(2, "inject", "active", {{"agent", "node-a"}})
      .At(2, "inject", "active", {{"agent", "node-b"}});
  return recorder;
}

// The <testcase> element named `name`, with its content.
std::string TestCase(const std::string& xml, const std::string& name) {
  const size_t at = xml.find("name=\"" + name + "\"");
  if (at == std::string::npos) return "";
  return xml.substr(at, xml.find("</testcase>", at) - at);
}

int Count(const std::string& text, const std::string& what) {
  int count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) count++;
  return count;
}

TEST(JunitReport, AHeldRunIsAllPassingCases) {
  RunRecord run = Injected("latency")
                      .Probe(12, "during", true)
                      .At(32, "revert", "reverted", {{"agent", "node-a"}})
                      .At(32, "revert", "reverted", {{"agent", "node-b"}})
                      .Probe(33, "after", true)
                      .At(33, "after", "held")
                      .Done(kRunHeld, 33);
  const std::string xml = JunitReport("latency", {run});
  EXPECT_NE(xml.find("<testsuites name=\"latency\" tests=\"6\" failures=\"0\" errors=\"0\" skipped=\"0\""),
            std::string::npos)
      << xml;
  EXPECT_NE(xml.find("timestamp=\"2026-11-26T00:00:00\""), std::string::npos) << xml;
  EXPECT_NE(xml.find("<property name=\"exit-code\" value=\"0\"/>"), std::string::npos) << xml;
  const std::string agent = TestCase(xml, "inject and revert on node-b");
  EXPECT_NE(agent.find("time=\"30.000\""), std::string::npos) << agent;
  EXPECT_NE(agent.find("revert reverted agent=node-b"), std::string::npos) << agent;
}

TEST(JunitReport, ADeviationFailsTheDuringCaseWithTheProbesOutput) {
  RunRecord run = Injected("latency")
                      .Probe(7, "during", false)
                      .At(7, "during", "deviated", {{"failed-rounds", "1"}})
                      .At(8, "revert", "reverted", {{"agent", "node-a"}})
                      .At(8, "revert", "reverted", {{"agent", "node-b"}})
                      .Probe(9, "after", true)
                      .At(9, "after", "recovered")
                      .Done(kRunDeviated, 9);
  const std::string xml = JunitReport("latency", {run});
  EXPECT_NE(xml.find("tests=\"6\" failures=\"1\" errors=\"0\""), std::string::npos) << xml;
  EXPECT_NE(TestCase(xml, "steady state during").find("<failure message=\"checkout: 503; deviated\"/>"),
            std::string::npos)
      << xml;
  EXPECT_EQ(TestCase(xml, "steady state after").find("<failure"), std::string::npos) << xml;
}

TEST(JunitReport, WhatNeverRanIsSkippedWithTheReason) {
  Recorder recorder("latency");
  recorder.At(0, "select", "agents", {{"agents", "node-a"}})
      .Probe(1, "before", false)
      .At(1, "before", "not-steady");
  const std::string xml = JunitReport("latency", {recorder.Done(kRunNotSteady, 1)});
  EXPECT_NE(xml.find("tests=\"5\" failures=\"1\" errors=\"0\" skipped=\"3\""), std::string::npos) << xml;
  EXPECT_NE(TestCase(xml, "steady state during")
                .find("<skipped message=\"the run ended before this (not-steady, exit 4)\""),
            std::string::npos)
      << xml;
  EXPECT_NE(TestCase(xml, "inject and revert on node-a").find("<skipped message=\"not injected"),
            std::string::npos)
      << xml;
}

TEST(JunitReport, AnAgentThatFailedIsAFailureAndAnInterruptionAnError) {
  RunRecord failed = Injected("one")
                         .At(3, "inject", "failed", {{"agent", "node-c"}, {"error", "no such device"}})
                         .Done(kRunError, 3);
  failed.events[0].fields["agents"] = "node-a,node-b,node-c";
  RunRecord interrupted = Injected("two").At(5, "during", "interrupted").Done(kRunAborted, 5);
  const std::string xml = JunitReport("game-day", {failed, interrupted});
  EXPECT_EQ(Count(xml, "<testsuite "), 2);
  EXPECT_NE(TestCase(xml, "inject and revert on node-c").find("<failure"), std::string::npos) << xml;
  EXPECT_NE(xml.find("<error message=\"interrupted\"/>"), std::string::npos) << xml;
}

TEST(JunitReport, EveryNameAndOutputIsEscaped) {
  RunRecord run = Injected("<b>&\"x\"</b>").Probe(4, "during", false).Done(kRunDeviated, 4);
  const std::string xml = JunitReport("n", {run});
  EXPECT_EQ(xml.find("<b>"), std::string::npos) << xml;
  EXPECT_NE(xml.find("name=\"&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;\""), std::string::npos) << xml;
}

TEST(Report, MarkupEscapeLeavesNoMarkupAndNoControlCharacters) {
  EXPECT_EQ(MarkupEscape("a<b>&'\"\x01\n"), "a&lt;b&gt;&amp;&#39;&quot;?\n");
}

TEST(Report, EventLinesAndJsonCarryEveryNonEmptyField) {
  RunEvent event{
      kStart + std::chrono::milliseconds(1500), "during", "probe", {{"probe", "p\"1"}, {"value", "12"}}};
  EXPECT_EQ(EventLine(event), "2026-11-26T00:00:01.500Z during probe probe=p\"1 value=12");
  EXPECT_EQ(
      EventJson("x", event),
      "{\"time\":\"2026-11-26T00:00:01.500Z\",\"experiment\":\"x\",\"phase\":\"during\",\"event\":\"probe\","
      "\"probe\":\"p\\\"1\",\"value\":\"12\"}");
}

TEST(LiveView, ShowsThePhaseTheTimeLeftEachAgentAndEachProbe) {
  RunRecord run = Injected("latency").Probe(12, "during", false).Done(kRunHeld, 0);
  const std::vector<std::string> lines = ProgressLines(run, kStart + seconds(12));
  ASSERT_GE(lines.size(), 4u);
  EXPECT_EQ(lines[0], "latency  phase during  10s of 30s, 20s left");
  EXPECT_TRUE(std::regex_search(lines[1], std::regex("agent node-a +ACTIVE"))) << lines[1];
  EXPECT_TRUE(std::regex_search(lines[2], std::regex("agent node-b +ACTIVE"))) << lines[2];
  EXPECT_TRUE(std::regex_search(lines[3], std::regex("probe checkout +FAILING 503  \\(during\\)")))
      << lines[3];
  EXPECT_NE(lines.back().find("during probe"), std::string::npos) << lines.back();
}

TEST(LiveView, AgentsAreWaitingUntilInjectedAndRevertedAfter) {
  Recorder recorder("latency");
  recorder.At(0, "select", "agents", {{"agents", "node-a"}});
  std::vector<std::string> lines = ProgressLines(recorder.Done(0, 0), kStart + seconds(1));
  EXPECT_EQ(lines[0], "latency  phase select  1s since the start");
  EXPECT_TRUE(std::regex_search(lines[1], std::regex("agent node-a +waiting"))) << lines[1];
  EXPECT_TRUE(std::regex_search(lines[2], std::regex("probe checkout +not run yet"))) << lines[2];
  recorder.At(2, "inject", "active", {{"agent", "node-a"}})
      .At(9, "revert", "reverted", {{"agent", "node-a"}});
  lines = ProgressLines(recorder.Done(0, 0), kStart + seconds(9));
  EXPECT_TRUE(std::regex_search(lines[1], std::regex("agent node-a +reverted"))) << lines[1];
}

}  // namespace
}  // namespace faultline::ctl

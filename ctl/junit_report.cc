#include "junit_report.h"

#include <algorithm>

#include "faultline/api/cat.h"

namespace faultline::ctl {
namespace {

using api::Cat;

struct Case {
  enum class Verdict { kPassed, kFailed, kError, kSkipped };
  std::string classname;
  std::string name;
  double seconds = 0;
  Verdict verdict = Verdict::kPassed;
  std::string message;  // why it failed, erred or was skipped
  std::string output;   // the events it is made of, one line each
};

double Seconds(SystemTime from, SystemTime to) { return std::chrono::duration<double>(to - from).count(); }

bool Has(const std::vector<const RunEvent*>& events, std::string_view name) {
  return std::any_of(events.begin(), events.end(),
                     [name](const RunEvent* event) { return event->event == name; });
}

// The case made of `events`: passed unless one of them is a failure or an error.
Case Judge(std::string classname, std::string name, const std::vector<const RunEvent*>& events,
           const std::vector<std::string_view>& failures, const std::vector<std::string_view>& errors) {
  Case judged;
  judged.classname = std::move(classname);
  judged.name = std::move(name);
  if (events.empty()) return judged;
  judged.seconds = Seconds(events.front()->time, events.back()->time);
  std::vector<std::string> reasons;
  for (const RunEvent* event : events) {
    judged.output += EventLine(*event) + "\n";
    const bool failure = std::find(failures.begin(), failures.end(), event->event) != failures.end();
    const bool error = std::find(errors.begin(), errors.end(), event->event) != errors.end();
    if (event->event == "probe" && event->Field("healthy") == "false")
      reasons.push_back(Cat(event->Field("probe"), ": ", event->Field("observed")));
    if (failure || error) {
      const std::string agent = event->Field("agent"), why = event->Field("error");
      reasons.push_back(
          Cat(event->event, agent.empty() ? "" : " on " + agent, why.empty() ? "" : ": " + why));
    }
    if (failure) judged.verdict = Case::Verdict::kFailed;
    if (error && judged.verdict != Case::Verdict::kFailed) judged.verdict = Case::Verdict::kError;
  }
  // A probe that failed once and then recovered in time leaves a passed case without a message.
  if (judged.verdict != Case::Verdict::kPassed) {
    for (const std::string& reason : reasons) judged.message += (judged.message.empty() ? "" : "; ") + reason;
  }
  return judged;
}

std::vector<Case> Cases(const RunRecord& run) {
  std::vector<Case> cases;
  const std::string skipped_because =
      Cat("the run ended before this (", run.events.empty() ? "" : run.events.back().event + ", ", "exit ",
          run.exit_code, ")");
  struct Phase {
    std::string_view phase;
    std::string name;
    std::vector<std::string_view> failures;
    std::vector<std::string_view> errors;
  };
  const std::vector<Phase> phases = {
      {"select", "select agents", {"failed"}, {}},
      {"before", "steady state before", {"not-steady", "failed"}, {"interrupted"}},
      {"during", "steady state during", {"deviated"}, {"interrupted", "agent-ended"}},
      {"after", "steady state after", {"not-recovered"}, {"interrupted"}},
  };
  for (const Phase& phase : phases) {
    std::vector<const RunEvent*> events;
    // A dry run's "ready" belongs to the agent's case.
    for (const RunEvent& event : run.events) {
      if (event.phase == phase.phase && event.event != "ready") events.push_back(&event);
    }
    Case judged = Judge(Cat(run.experiment, ".run"), phase.name, events, phase.failures, phase.errors);
    if (events.empty()) {
      judged.verdict = Case::Verdict::kSkipped;
      judged.message = skipped_because;
    }
    cases.push_back(std::move(judged));
  }
  for (const std::string& agent : SelectedAgents(run)) {
    std::vector<const RunEvent*> events;
    for (const RunEvent& event : run.events) {
      if (event.Field("agent") == agent) events.push_back(&event);
    }
    Case judged = Judge(Cat(run.experiment, ".agent"), Cat("inject and revert on ", agent), events,
                        {"failed"}, {"agent-ended", "revert-failed"});
    if (judged.verdict == Case::Verdict::kPassed && !Has(events, "active") && !Has(events, "ready")) {
      judged.verdict = Case::Verdict::kSkipped;
      judged.message = Cat("not injected: ", skipped_because);
    }
    cases.push_back(std::move(judged));
  }
  return cases;
}

std::string Attribute(const std::string& name, const std::string& value) {
  return Cat(" ", name, "=\"", MarkupEscape(value), "\"");
}

std::string Seconds3(double seconds) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f", seconds);
  return text;
}

}  // namespace

std::string JunitReport(const std::string& name, const std::vector<RunRecord>& runs) {
  std::string suites;
  int all_tests = 0, all_failures = 0, all_errors = 0, all_skipped = 0;
  double all_seconds = 0;
  for (const RunRecord& run : runs) {
    const std::vector<Case> cases = Cases(run);
    auto count = [&cases](Case::Verdict verdict) {
      return static_cast<int>(std::count_if(cases.begin(), cases.end(),
                                            [verdict](const Case& c) { return c.verdict == verdict; }));
    };
    const int failures = count(Case::Verdict::kFailed), errors = count(Case::Verdict::kError),
              skipped = count(Case::Verdict::kSkipped);
    const double seconds = Seconds(run.started, run.finished);
    all_tests += static_cast<int>(cases.size());
    all_failures += failures;
    all_errors += errors;
    all_skipped += skipped;
    all_seconds += seconds;
    std::string timestamp = FormatTime(run.started);
    timestamp.resize(timestamp.find('.'));  // JUnit's timestamp has neither fraction nor zone
    suites += Cat("  <testsuite", Attribute("name", run.experiment), Attribute("tests", Cat(cases.size())),
                  Attribute("failures", Cat(failures)), Attribute("errors", Cat(errors)),
                  Attribute("skipped", Cat(skipped)), Attribute("time", Seconds3(seconds)),
                  Attribute("timestamp", timestamp), ">\n    <properties>\n", "      <property",
                  Attribute("name", "file"), Attribute("value", run.path), "/>\n", "      <property",
                  Attribute("name", "exit-code"), Attribute("value", Cat(run.exit_code)),
                  "/>\n    </properties>\n");
    for (const Case& c : cases) {
      suites += Cat("    <testcase", Attribute("classname", c.classname), Attribute("name", c.name),
                    Attribute("time", Seconds3(c.seconds)), ">\n");
      switch (c.verdict) {
        case Case::Verdict::kPassed:
          break;
        case Case::Verdict::kFailed:
          suites += Cat("      <failure", Attribute("message", c.message), "/>\n");
          break;
        case Case::Verdict::kError:
          suites += Cat("      <error", Attribute("message", c.message), "/>\n");
          break;
        case Case::Verdict::kSkipped:
          suites += Cat("      <skipped", Attribute("message", c.message), "/>\n");
          break;
      }
      if (!c.output.empty()) suites += Cat("      <system-out>", MarkupEscape(c.output), "</system-out>\n");
      suites += "    </testcase>\n";
    }
    suites += "  </testsuite>\n";
  }
  return Cat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", Attribute("name", name),
             Attribute("tests", Cat(all_tests)), Attribute("failures", Cat(all_failures)),
             Attribute("errors", Cat(all_errors)), Attribute("skipped", Cat(all_skipped)),
             Attribute("time", Seconds3(all_seconds)), ">\n", suites, "</testsuites>\n");
}

}  // namespace faultline::ctl

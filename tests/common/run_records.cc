#include "run_records.h"

#include <algorithm>

#include "runner.h"

namespace faultline::test {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

RunRecordBuilder::RunRecordBuilder(std::string experiment, milliseconds length) {
  record_.experiment = std::move(experiment);
  record_.path = "experiments/" + record_.experiment + ".yaml";
  record_.description = "a run built by hand";
  record_.started = ctl::SystemTime(std::chrono::seconds(1'795'000'000));
  record_.finished = record_.started + length;
}

RunRecordBuilder& RunRecordBuilder::Add(milliseconds at, std::string phase, std::string event,
                                        std::map<std::string, std::string> fields) {
  record_.events.push_back({record_.started + at, std::move(phase), std::move(event), std::move(fields)});
  return *this;
}

RunRecordBuilder& RunRecordBuilder::Window(const std::string& agent, milliseconds from, milliseconds to) {
  Add(from, "inject", "active", {{"agent", agent}, {"id", record_.experiment + "-1795000000"}});
  return Add(to, "revert", "reverted", {{"agent", agent}, {"state", "REVERTED"}});
}

RunRecordBuilder& RunRecordBuilder::Probe(milliseconds at, const std::string& phase, const std::string& probe,
                                          bool healthy, const std::string& value) {
  if (std::ranges::find(record_.probes, probe) == record_.probes.end()) record_.probes.push_back(probe);
  std::map<std::string, std::string> fields = {{"probe", probe},
                                               {"healthy", healthy ? "true" : "false"},
                                               {"observed", healthy ? "HTTP 200" : "timed out"}};
  if (!value.empty()) fields["value"] = value;
  return Add(at, phase, "probe", std::move(fields));
}

ctl::RunRecord RunRecordBuilder::Build(int exit_code) const {
  ctl::RunRecord record = record_;
  record.exit_code = exit_code;
  std::ranges::stable_sort(record.events, {}, &ctl::RunEvent::time);
  return record;
}

ctl::RunRecord ThreeWindowsOnTwoAgents() {
  RunRecordBuilder run("three-windows", 20s);
  run.Add(100ms, "select", "agents", {{"agents", "app-1,app-2"}, {"seed", "7"}})
      .Probe(500ms, "before", "latency", true, "12")
      .Window("app-1", 2s, 6s)
      .Window("app-2", 3s, 12s)
      .Window("app-1", 10s, 14s);
  for (int second = 4; second <= 11; ++second) {
    bool healthy = second != 8 && second != 9;
    run.Probe(std::chrono::seconds(second), "during", "latency", healthy,
              second == 9 ? "" : std::to_string(healthy ? 100 + second : 650));
  }
  run.Add(9500ms, "during", "deviated", {{"failed-rounds", "2"}});
  run.Probe(16s, "after", "latency", true, "14").Add(16100ms, "after", "recovered");
  ctl::RunRecord record = run.Build(ctl::kRunDeviated);
  record.duration = 12s;
  return record;
}

ctl::RunRecord OneWindowNeverReverted() {
  RunRecordBuilder run("never-reverted", 20s);
  run.Add(100ms, "select", "agents", {{"agents", "app-1,app-2"}, {"seed", "7"}})
      .Window("app-1", 2s, 6s)
      .Add(3s, "inject", "active", {{"agent", "app-2"}, {"id", "never-reverted-1795000000"}})
      .Add(15s, "revert", "revert-failed", {{"agent", "app-2"}, {"error", "connection refused"}});
  return run.Build(ctl::kRunError);
}

ctl::RunRecord RefusedBeforeActive() {
  RunRecordBuilder run("refused", 3s);
  run.Add(100ms, "select", "agents", {{"agents", "app-1"}, {"seed", "7"}})
      .Probe(500ms, "before", "latency", true, "11")
      .Add(1s, "inject", "failed", {{"agent", "app-1"}, {"error", "netem: no such qdisc kind"}});
  return run.Build(ctl::kRunError);
}

}  // namespace faultline::test

// faultctl run's records built by hand, for the tests of what is made from them (the HTML report): the
// same events the runner emits, at times given as offsets from the run's start.
#pragma once

#include <chrono>
#include <map>
#include <string>

#include "report.h"

namespace faultline::test {

class RunRecordBuilder {
 public:
  // A run of `experiment`, started at a fixed time, finished `length` later, with no events yet.
  RunRecordBuilder(std::string experiment, std::chrono::milliseconds length);

  RunRecordBuilder& Add(std::chrono::milliseconds at, std::string phase, std::string event,
                        std::map<std::string, std::string> fields = {});
  // An `active` of `agent` at `from` and its `reverted` at `to`: one fault window.
  RunRecordBuilder& Window(const std::string& agent, std::chrono::milliseconds from,
                           std::chrono::milliseconds to);
  // A probe sample; `value` "" for one without a value.
  RunRecordBuilder& Probe(std::chrono::milliseconds at, const std::string& phase, const std::string& probe,
                          bool healthy, const std::string& value);
  // The record with its events in time order.
  ctl::RunRecord Build(int exit_code) const;

 private:
  ctl::RunRecord record_;
};

// 20 s across app-1 and app-2: three fault windows (app-1 2-6 s and 10-14 s, app-2 3-12 s), a latency
// probe with two failed samples (one without a value), a deviation during the faults, recovered after.
ctl::RunRecord ThreeWindowsOnTwoAgents();
// 20 s across app-1 and app-2: app-1's window is 2-6 s; app-2's fault goes active at 3 s and its revert
// fails, so its window lasts to the run's end.
ctl::RunRecord OneWindowNeverReverted();
// app-1 refuses the fault: nothing ever goes active.
ctl::RunRecord RefusedBeforeActive();

}  // namespace faultline::test

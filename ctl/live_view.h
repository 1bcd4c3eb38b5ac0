// `faultctl run` on a terminal: where the run stands, redrawn in place twice a second: the phase,
// the time the faults have left, each agent's state, each probe's last result, and the latest events.
// Not on a terminal, faultctl prints one line per event instead (report.h's EventLine).
#pragma once

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "report.h"

namespace faultline::ctl {

// The view of `run` as it stands at `now`, one string per line, without terminal controls.
std::vector<std::string> ProgressLines(const RunRecord& run, SystemTime now);

class LiveView {
 public:
  explicit LiveView(std::FILE* terminal);
  ~LiveView();  // draws the last frame and leaves it on the screen
  LiveView(const LiveView&) = delete;
  LiveView& operator=(const LiveView&) = delete;

  // The run so far, after its latest event.
  void Observe(const RunRecord& run);

 private:
  void DrawLocked();

  std::FILE* terminal_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  RunRecord run_;
  size_t drawn_lines_ = 0;
  std::thread ticker_;
};

}  // namespace faultline::ctl

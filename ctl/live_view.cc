#include "live_view.h"

#include <sys/ioctl.h>

#include <algorithm>
#include <map>

#include "faultline/api/cat.h"

namespace faultline::ctl {
namespace {

using api::Cat;
using std::chrono::duration_cast;
using std::chrono::seconds;

constexpr size_t kRecentEvents = 4;

std::string Padded(std::string text, size_t width) {
  if (text.size() < width) text.resize(width, ' ');
  return text;
}

// An agent's state, as its latest event says.
std::string AgentState(const RunEvent& event) {
  if (event.event == "active") return "ACTIVE";
  if (event.event == "reverted") return "reverted";
  if (event.event == "ready") return Cat("ready (kernel ", event.Field("kernel"), ")");
  if (event.event == "lease-renewal-failed")
    return Cat("ACTIVE, lease renewal failed: ", event.Field("error"));
  return Cat(event.event, ": ", event.Field("error"), event.Field("state"));
}

}  // namespace

std::vector<std::string> ProgressLines(const RunRecord& run, SystemTime now) {
  const RunEvent* first_active = nullptr;
  std::map<std::string, std::string> agents;
  std::map<std::string, const RunEvent*> probes;
  for (const std::string& agent : SelectedAgents(run)) agents[agent] = "waiting";
  for (const RunEvent& event : run.events) {
    if (event.event == "active" && first_active == nullptr) first_active = &event;
    if (event.event == "probe") probes[event.Field("probe")] = &event;
    const std::string agent = event.Field("agent");
    if (!agent.empty()) agents[agent] = AgentState(event);
  }
  const std::string phase = run.events.empty() ? "starting" : run.events.back().phase;
  std::string clock = Cat(duration_cast<seconds>(now - run.started).count(), "s since the start");
  if (first_active != nullptr && (phase == "inject" || phase == "during")) {
    const auto faulted = duration_cast<seconds>(now - first_active->time);
    const auto left = std::max(seconds(0), duration_cast<seconds>(run.duration) - faulted);
    clock = Cat(faulted.count(), "s of ", duration_cast<seconds>(run.duration).count(), "s, ", left.count(),
                "s left");
  }
  std::vector<std::string> lines = {Cat(run.experiment, "  phase ", phase, "  ", clock)};
  for (const auto& [name, state] : agents) lines.push_back(Cat("  agent ", Padded(name, 16), " ", state));
  for (const std::string& name : run.probes) {
    auto latest = probes.find(name);
    const std::string result =
        latest == probes.end() ? "not run yet"
                               : Cat(latest->second->Field("healthy") == "true" ? "ok      " : "FAILING ",
                                     latest->second->Field("observed"), "  (", latest->second->phase, ")");
    lines.push_back(Cat("  probe ", Padded(name, 16), " ", result));
  }
  const size_t shown = std::min(kRecentEvents, run.events.size());
  for (size_t i = run.events.size() - shown; i < run.events.size(); i++)
    lines.push_back(Cat("  | ", EventLine(run.events[i])));
  return lines;
}

LiveView::LiveView(std::FILE* terminal)
    : terminal_(terminal), ticker_([this] {
        std::unique_lock lock(mutex_);
        while (!wake_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stop_; })) DrawLocked();
      }) {}

LiveView::~LiveView() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
    DrawLocked();
  }
  wake_.notify_all();
  ticker_.join();
}

void LiveView::Observe(const RunRecord& run) {
  std::lock_guard lock(mutex_);
  if (!run_.experiment.empty() && run.started != run_.started) drawn_lines_ = 0;  // a new run: a new frame
  run_ = run;
  DrawLocked();
}

void LiveView::DrawLocked() {
  if (run_.experiment.empty()) return;
  std::string frame;
  // Back to the first line of the previous frame (ESC [ n F), and erase it all (ESC [ J).
  if (drawn_lines_ > 0) frame += Cat("\x1b[", drawn_lines_, "F");
  frame += "\x1b[J";
  // A line wider than the terminal would wrap, and the next frame would start too low.
  winsize size{};
  const size_t width =
      ioctl(fileno(terminal_), TIOCGWINSZ, &size) == 0 && size.ws_col > 1 ? size.ws_col - 1 : 200;
  const std::vector<std::string> lines = ProgressLines(run_, std::chrono::system_clock::now());
  for (const std::string& line : lines) frame += line.substr(0, width) + "\n";
  drawn_lines_ = lines.size();
  std::fputs(frame.c_str(), terminal_);
  std::fflush(terminal_);
}

}  // namespace faultline::ctl

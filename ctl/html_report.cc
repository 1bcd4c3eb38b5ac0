#include "html_report.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "faultline/api/cat.h"
#include "runner.h"

namespace faultline::ctl {
namespace {

using api::Cat;

// Colours. Nothing but a fault window is filled with kFaultWindowFill: a screenshot finds the windows by
// it (tests/browser).
constexpr std::string_view kFaultWindowFill = "#f76707";
constexpr std::string_view kHealthyColour = "#2b8a3e";
constexpr std::string_view kFailedColour = "#e03131";
constexpr std::string_view kInkColour = "#495057";   // labels and ticks
constexpr std::string_view kRuleColour = "#dee2e6";  // grid lines, frames, lane baselines
constexpr std::string_view kValueLineColour = "#868e96";

// The timeline's geometry, in SVG user units (CSS pixels).
constexpr double kTimelineWidth = 960;
constexpr double kLabelWidth = 170;  // left of the plotting area: agent names and probe values
constexpr double kPlotWidth = kTimelineWidth - kLabelWidth - 24;
constexpr double kAxisHeight = 30;
constexpr double kLaneHeight = 26;
constexpr double kWindowHeight = 18;
constexpr double kMinWindowWidth = 2;  // a window of a few milliseconds must still show
constexpr double kPlotTitleHeight = 22;
constexpr double kPlotHeight = 90;
constexpr double kPlotPadding = 8;
constexpr int kMarkerLabelRows = 3;  // labels of markers close in time are staggered over these rows
constexpr double kMarkerRowHeight = 14;

constexpr std::array<std::string_view, 6> kVerdictEvents = {"deviated", "not-steady", "not-recovered",
                                                            "held",     "recovered",  "interrupted"};
constexpr std::array<std::string_view, 4> kFailureEvents = {"failed", "agent-ended", "revert-failed",
                                                            "lease-renewal-failed"};

std::string Printf(const char* format, double value) {
  char text[48];
  std::snprintf(text, sizeof(text), format, value);
  return text;
}

// SVG coordinates: one decimal, never an exponent.
std::string Coordinate(double value) { return Printf("%.1f", value); }
std::string SecondsText(double seconds) { return Printf("%.1f s", seconds); }

// --- what the record says ---------------------------------------------------------------------------

bool IsVerdict(const RunEvent& event) {
  return std::ranges::find(kVerdictEvents, event.event) != kVerdictEvents.end();
}
bool IsFailure(const RunEvent& event) {
  return std::ranges::find(kFailureEvents, event.event) != kFailureEvents.end();
}
// "held" and "recovered" say the hypothesis held; every other verdict, and every failure, that it did not.
bool IsGood(const RunEvent& event) { return event.event == "held" || event.event == "recovered"; }

void AddOnce(std::vector<std::string>& names, const std::string& name) {
  if (!name.empty() && std::ranges::find(names, name) == names.end()) names.push_back(name);
}

// The agents the run selected, then any other an event names, in order.
std::vector<std::string> AgentsOf(const RunRecord& run) {
  std::vector<std::string> agents = SelectedAgents(run);
  for (const RunEvent& event : run.events) AddOnce(agents, event.Field("agent"));
  return agents;
}

// The steady state's probes in file order, then any other a probe event names.
std::vector<std::string> ProbesOf(const RunRecord& run) {
  std::vector<std::string> probes;
  for (const std::string& probe : run.probes) AddOnce(probes, probe);
  for (const RunEvent& event : run.events) {
    if (event.event == "probe") AddOnce(probes, event.Field("probe"));
  }
  return probes;
}

struct FaultWindow {
  SystemTime from;
  SystemTime to;
  bool reverted = false;  // false: still in force when the run ended
};

// From each `active` of the agent to its next `reverted`, or to the run's end.
std::vector<FaultWindow> FaultWindowsOf(const RunRecord& run, const std::string& agent) {
  std::vector<FaultWindow> windows;
  const RunEvent* opened = nullptr;  // the `active` of the window not yet reverted
  for (const RunEvent& event : run.events) {
    if (event.Field("agent") != agent) continue;
    if (event.event == "active" && opened == nullptr) opened = &event;
    if (event.event == "reverted" && opened != nullptr) {
      windows.push_back({opened->time, event.time, true});
      opened = nullptr;
    }
  }
  if (opened != nullptr) windows.push_back({opened->time, std::max(opened->time, run.finished), false});
  return windows;
}

struct ProbeSample {
  const RunEvent* event;
  bool healthy = false;
  std::optional<double> value;  // absent when the probe measured nothing a plot can show
};

std::optional<double> ParseValue(const std::string& text) {
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !std::isfinite(value)) return std::nullopt;
  return value;
}

std::vector<ProbeSample> SamplesOf(const RunRecord& run, const std::string& probe) {
  std::vector<ProbeSample> samples;
  for (const RunEvent& event : run.events) {
    if (event.event != "probe" || event.Field("probe") != probe) continue;
    samples.push_back({&event, event.Field("healthy") == "true", ParseValue(event.Field("value"))});
  }
  return samples;
}

// --- the timeline -----------------------------------------------------------------------------------

// A time in the run as an x coordinate: the run's start at the left of the plotting area, its finish at
// the right.
class TimeScale {
 public:
  explicit TimeScale(const RunRecord& run)
      : start_(run.started),
        span_(std::max(std::chrono::duration<double>(run.finished - run.started).count(), 0.001)) {}

  double span() const { return span_; }
  double Seconds(SystemTime time) const { return std::chrono::duration<double>(time - start_).count(); }
  double XAt(double seconds) const {
    return kLabelWidth + std::clamp(seconds / span_, 0.0, 1.0) * kPlotWidth;
  }
  double X(SystemTime time) const { return XAt(Seconds(time)); }
  std::string Offset(SystemTime time) const { return Printf("+%.2f s", Seconds(time)); }

 private:
  SystemTime start_;
  double span_;
};

// 0.1, 0.2, 0.5, 1, 2, 5, 10 ... seconds: the first that cuts the axis into at most ten steps.
double TickStep(double span) {
  double step = 0.1;
  for (int i = 0; span / step > 10; ++i) step *= (i % 3 == 1) ? 2.5 : 2;
  return step;
}

// Tick labels in seconds along the top, each with a grid line down to `bottom`.
std::string TimeAxis(const TimeScale& scale, double bottom) {
  std::string svg = "<g class=\"axis\">";
  double step = TickStep(scale.span());
  for (int i = 0; i * step <= scale.span() + 1e-9; ++i) {
    std::string x = Coordinate(scale.XAt(i * step));
    svg += Cat("<line x1=\"", x, "\" y1=\"", kAxisHeight - 10, "\" x2=\"", x, "\" y2=\"", Coordinate(bottom),
               "\" stroke=\"", kRuleColour, "\"/><text x=\"", x, "\" y=\"14\" text-anchor=\"middle\" fill=\"",
               kInkColour, "\">", Printf("%gs", i * step), "</text>");
  }
  return svg + "</g>";
}

// A vertical line at each verdict and failure, labelled below the plots; the label's tooltip is the
// whole event.
std::string EventMarkers(const RunRecord& run, const TimeScale& scale, double bottom) {
  std::string svg = "<g class=\"markers\">";
  int row = 0;
  for (const RunEvent& event : run.events) {
    if (!IsVerdict(event) && !IsFailure(event)) continue;
    double x = scale.X(event.time);
    std::string_view colour = IsGood(event) ? kHealthyColour : kFailedColour;
    std::string label =
        MarkupEscape(Cat(event.event, event.Field("agent").empty() ? "" : " ", event.Field("agent")));
    double label_y = bottom + kMarkerRowHeight * (row++ % kMarkerLabelRows + 1);
    svg += Cat("<g class=\"marker ", IsFailure(event) ? "failure" : "verdict", "\"><title>",
               MarkupEscape(EventLine(event)), "</title><line x1=\"", Coordinate(x), "\" y1=\"",
               kAxisHeight - 10, "\" x2=\"", Coordinate(x), "\" y2=\"", Coordinate(label_y - 10),
               "\" stroke=\"", colour, "\"", IsFailure(event) ? " stroke-dasharray=\"4 3\"" : "",
               "/><text x=\"", Coordinate(x), "\" y=\"", Coordinate(label_y), "\" text-anchor=\"",
               x > kLabelWidth + kPlotWidth / 2 ? "end" : "start", "\" fill=\"", colour, "\">", label,
               "</text></g>");
  }
  return svg + "</g>";
}

std::string FaultWindowRect(const std::string& agent, const FaultWindow& window, const TimeScale& scale,
                            double top) {
  double x = scale.X(window.from);
  double width = std::max(scale.X(window.to) - x, kMinWindowWidth);
  std::string title =
      Cat(agent, ": fault window from ", scale.Offset(window.from), " to ", scale.Offset(window.to),
          window.reverted ? "" : ", not reverted by the end of the run");
  return Cat("<rect class=\"fault-window\" x=\"", Coordinate(x), "\" y=\"",
             Coordinate(top + (kLaneHeight - kWindowHeight) / 2), "\" width=\"", Coordinate(width),
             "\" height=\"", kWindowHeight, "\" fill=\"", kFaultWindowFill, "\"><title>", MarkupEscape(title),
             "</title></rect>");
}

// The agent's name left of its lane, a baseline, and its fault windows.
std::string AgentLane(const std::string& agent, const std::vector<FaultWindow>& windows,
                      const TimeScale& scale, double top) {
  std::string bottom = Coordinate(top + kLaneHeight - 1);
  std::string svg =
      Cat("<g class=\"lane\"><text x=\"", kLabelWidth - 8, "\" y=\"", Coordinate(top + kLaneHeight / 2 + 4),
          "\" text-anchor=\"end\" fill=\"", kInkColour, "\">", MarkupEscape(agent), "</text><line x1=\"",
          kLabelWidth, "\" y1=\"", bottom, "\" x2=\"", kLabelWidth + kPlotWidth, "\" y2=\"", bottom,
          "\" stroke=\"", kRuleColour, "\"/>");
  for (const FaultWindow& window : windows) svg += FaultWindowRect(agent, window, scale, top);
  return svg + "</g>";
}

// The interval a probe's plot shows: from zero (or below, for negative values) to the largest value.
struct ValueRange {
  double low = 0;
  double high = 1;
};

ValueRange RangeOf(const std::vector<ProbeSample>& samples) {
  std::optional<ValueRange> range;
  for (const ProbeSample& sample : samples) {
    if (!sample.value) continue;
    if (!range) range = ValueRange{std::min(0.0, *sample.value), *sample.value};
    range->low = std::min(range->low, *sample.value);
    range->high = std::max(range->high, *sample.value);
  }
  if (!range || range->high <= range->low)
    return ValueRange{range ? range->low : 0, (range ? range->low : 0) + 1};
  return *range;
}

// A sample as a dot: green healthy, red failed; hollow at the bottom of the plot when it has no value.
std::string SampleDot(const ProbeSample& sample, const TimeScale& scale, double y) {
  std::string_view colour = sample.healthy ? kHealthyColour : kFailedColour;
  std::string title = Cat(sample.event->phase, " ", scale.Offset(sample.event->time), ": ",
                          sample.healthy ? "healthy" : "failed", ", ", sample.event->Field("observed"));
  return Cat("<circle class=\"sample ", sample.healthy ? "healthy" : "failed", "\" cx=\"",
             Coordinate(scale.X(sample.event->time)), "\" cy=\"", Coordinate(y), "\" r=\"3.5\" fill=\"",
             sample.value ? colour : "#ffffff", "\" stroke=\"", colour, "\"><title>", MarkupEscape(title),
             "</title></circle>");
}

// The probe's name, a frame with its value range on the left, its values joined by a line, and a dot
// for every sample.
std::string ProbePlot(const std::string& probe, const std::vector<ProbeSample>& samples,
                      const TimeScale& scale, double top) {
  double frame_top = top + kPlotTitleHeight;
  double frame_bottom = frame_top + kPlotHeight;
  ValueRange range = RangeOf(samples);
  auto y_of = [&](double value) {
    return frame_bottom - kPlotPadding -
           (value - range.low) / (range.high - range.low) * (kPlotHeight - 2 * kPlotPadding);
  };
  std::string svg =
      Cat("<g class=\"probe\"><text x=\"", kLabelWidth, "\" y=\"", Coordinate(top + 15), "\" fill=\"",
          kInkColour, "\" font-weight=\"bold\">probe ", MarkupEscape(probe), "</text><rect x=\"", kLabelWidth,
          "\" y=\"", Coordinate(frame_top), "\" width=\"", kPlotWidth, "\" height=\"", kPlotHeight,
          "\" fill=\"none\" stroke=\"", kRuleColour, "\"/>");
  for (double value : {range.high, range.low}) {
    svg += Cat("<text x=\"", kLabelWidth - 8, "\" y=\"", Coordinate(y_of(value) + 4),
               "\" text-anchor=\"end\" fill=\"", kInkColour, "\">", Printf("%g", value), "</text>");
  }
  std::string points;
  for (const ProbeSample& sample : samples) {
    if (sample.value)
      points += Cat(Coordinate(scale.X(sample.event->time)), ",", Coordinate(y_of(*sample.value)), " ");
  }
  if (!points.empty()) {
    svg += Cat("<polyline points=\"", points, "\" fill=\"none\" stroke=\"", kValueLineColour, "\"/>");
  }
  for (const ProbeSample& sample : samples) {
    svg += SampleDot(sample, scale, sample.value ? y_of(*sample.value) : frame_bottom - kPlotPadding);
  }
  return svg + "</g>";
}

// Axis, markers, one lane per agent, one plot per probe, marker labels at the bottom. The markers are
// drawn first so that the fault windows cover them: a window stays one unbroken bar.
std::string Timeline(const RunRecord& run) {
  TimeScale scale(run);
  std::vector<std::string> agents = AgentsOf(run);
  std::vector<std::string> probes = ProbesOf(run);
  double plots_top = kAxisHeight + static_cast<double>(agents.size()) * kLaneHeight;
  double plots_bottom = plots_top + static_cast<double>(probes.size()) * (kPlotTitleHeight + kPlotHeight);
  double height = plots_bottom + kMarkerLabelRows * kMarkerRowHeight + 8;
  std::string svg =
      Cat("<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"", kTimelineWidth,
          "\" height=\"", Coordinate(height), "\" viewBox=\"0 0 ", kTimelineWidth, " ", Coordinate(height),
          "\" role=\"img\" aria-label=\"timeline of ", MarkupEscape(run.experiment), "\">");
  svg += TimeAxis(scale, plots_bottom);
  svg += EventMarkers(run, scale, plots_bottom);
  for (size_t i = 0; i < agents.size(); ++i) {
    svg += AgentLane(agents[i], FaultWindowsOf(run, agents[i]), scale,
                     kAxisHeight + static_cast<double>(i) * kLaneHeight);
  }
  for (size_t i = 0; i < probes.size(); ++i) {
    svg += ProbePlot(probes[i], SamplesOf(run, probes[i]), scale,
                     plots_top + static_cast<double>(i) * (kPlotTitleHeight + kPlotHeight));
  }
  return svg + "</svg>";
}

// --- the tables -------------------------------------------------------------------------------------

std::string VerdictClass(int exit_code) { return exit_code == kRunHeld ? "verdict-good" : "verdict-bad"; }

std::string Summary(const RunRecord& run) {
  auto row = [](std::string_view term, const std::string& html) {
    return Cat("<dt>", term, "</dt><dd>", html, "</dd>");
  };
  double took = std::chrono::duration<double>(run.finished - run.started).count();
  return Cat("<dl class=\"summary\">", row("description", MarkupEscape(run.description)),
             row("file", MarkupEscape(run.path)),
             row("verdict", Cat("<span class=\"", VerdictClass(run.exit_code), "\">", Verdict(run.exit_code),
                                " (exit ", run.exit_code, ")</span>")),
             row("started", FormatTime(run.started)), row("finished", FormatTime(run.finished)),
             row("took", SecondsText(took)),
             row("faults to hold", SecondsText(std::chrono::duration<double>(run.duration).count())),
             "</dl>");
}

std::string WindowsText(const std::vector<FaultWindow>& windows, const TimeScale& scale) {
  if (windows.empty()) return "none";
  std::string text;
  for (const FaultWindow& window : windows) {
    text += Cat(text.empty() ? "" : "<br>", scale.Offset(window.from), " to ",
                window.reverted ? scale.Offset(window.to) : "the run's end, not reverted", " (",
                SecondsText(std::chrono::duration<double>(window.to - window.from).count()), ")");
  }
  return text;
}

std::string ProblemsText(const RunRecord& run, const std::string& agent) {
  std::string text;
  for (const RunEvent& event : run.events) {
    if (!IsFailure(event) || event.Field("agent") != agent) continue;
    text += Cat(text.empty() ? "" : "<br>", event.event, ": ", MarkupEscape(event.Field("error")));
  }
  return text;
}

std::string AgentTable(const RunRecord& run, const TimeScale& scale) {
  std::vector<std::string> agents = AgentsOf(run);
  if (agents.empty()) return "<p>No agent was selected.</p>";
  std::string html = "<table class=\"agents\"><tr><th>agent</th><th>fault windows</th><th>problems</th></tr>";
  for (const std::string& agent : agents) {
    html += Cat("<tr><td>", MarkupEscape(agent), "</td><td>", WindowsText(FaultWindowsOf(run, agent), scale),
                "</td><td>", ProblemsText(run, agent), "</td></tr>");
  }
  return html + "</table>";
}

std::string EventRowClass(const RunEvent& event) {
  if (IsFailure(event)) return "failure";
  if (IsVerdict(event)) return IsGood(event) ? "verdict-good" : "verdict-bad";
  return "";
}

std::string EventTable(const RunRecord& run, const TimeScale& scale) {
  if (run.events.empty()) return "<p>No events were recorded.</p>";
  std::string html =
      "<table class=\"events\"><tr><th>time</th><th>since "
      "start</th><th>phase</th><th>event</th><th>details</th></tr>";
  for (const RunEvent& event : run.events) {
    std::string details;
    for (const auto& [key, value] : event.fields) details += Cat(details.empty() ? "" : " ", key, "=", value);
    html +=
        Cat("<tr class=\"", EventRowClass(event), "\"><td>", FormatTime(event.time), "</td><td>",
            scale.Offset(event.time), "</td><td>", MarkupEscape(event.phase), "</td><td>",
            MarkupEscape(event.event), "</td><td class=\"details\">", MarkupEscape(details), "</td></tr>");
  }
  return html + "</table>";
}

// --- the page ---------------------------------------------------------------------------------------

constexpr std::string_view kStyle = R"(
body { font: 14px/1.4 system-ui, sans-serif; color: #212529; margin: 24px; max-width: 1000px; }
h1 { font-size: 22px; }
h2 { font-size: 18px; margin-top: 32px; padding-top: 16px; border-top: 1px solid #dee2e6; }
h3 { font-size: 15px; margin-bottom: 4px; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; }
dt { color: #495057; }
dd { margin: 0; }
.verdict-good { color: #2b8a3e; font-weight: 600; }
.verdict-bad { color: #e03131; font-weight: 600; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #dee2e6; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f8f9fa; }
tr.failure td, tr.verdict-bad td { background: #fff5f5; }
tr.verdict-good td { background: #ebfbee; }
td.details { font-family: ui-monospace, monospace; word-break: break-all; }
figure { margin: 8px 0; }
svg.timeline { display: block; font: 11px system-ui, sans-serif; }
figcaption { color: #495057; font-size: 12px; }
)";

constexpr std::string_view kTimelineCaption =
    "Orange bars: each agent's fault windows, from active to reverted (or to the run's end). Dots: probe "
    "samples, green healthy, red failed, hollow without a value. Vertical lines: verdicts (green held, red "
    "not) and failures (dashed).";

std::string RunSection(const RunRecord& run, size_t index) {
  TimeScale scale(run);
  return Cat("<section class=\"run\" id=\"run-", index + 1, "\"><h2>", MarkupEscape(run.experiment), "</h2>",
             Summary(run), "<h3>Timeline</h3><figure>", Timeline(run), "<figcaption>", kTimelineCaption,
             "</figcaption></figure><h3>Agents</h3>", AgentTable(run, scale), "<h3>Events</h3>",
             EventTable(run, scale), "</section>");
}

// A game day's list of runs, each with its verdict, linking to its section.
std::string Contents(const std::vector<RunRecord>& runs) {
  std::string html = "<nav><ol>";
  for (size_t i = 0; i < runs.size(); ++i) {
    html += Cat("<li><a href=\"#run-", i + 1, "\">", MarkupEscape(runs[i].experiment), "</a>: <span class=\"",
                VerdictClass(runs[i].exit_code), "\">", Verdict(runs[i].exit_code), "</span></li>");
  }
  return html + "</ol></nav>";
}

}  // namespace

std::string HtmlReport(const std::string& title, const std::vector<RunRecord>& runs) {
  // The policy forbids every script and every fetch: the page is whole, and a string that escaped
  // escaping still could not run.
  std::string html =
      Cat("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
          "'unsafe-inline'\">"
          "<title>",
          MarkupEscape(title), "</title><style>", kStyle, "</style></head><body><h1>", MarkupEscape(title),
          "</h1>");
  if (runs.empty()) html += "<p>No runs.</p>";
  if (runs.size() > 1) html += Contents(runs);
  for (size_t i = 0; i < runs.size(); ++i) html += RunSection(runs[i], i);
  return html + "</body></html>\n";
}

}  // namespace faultline::ctl

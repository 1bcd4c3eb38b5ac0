// The HTML report's structure, from records built by hand: one rect per fault window, placed in proportion
// to its times, samples and markers by kind, every string escaped, and a whole page even for an empty
// record. What a browser draws of it is tested in tests/browser.
#include "html_report.h"

#include <gtest/gtest.h>

#include <regex>
#include <string>
#include <vector>

#include "common/run_records.h"
#include "runner.h"

namespace faultline::ctl {
namespace {

using test::RunRecordBuilder;
using namespace std::chrono_literals;

int Count(const std::string& html, const std::string& needle) {
  int count = 0;
  for (size_t at = html.find(needle); at != std::string::npos; at = html.find(needle, at + needle.size()))
    ++count;
  return count;
}

struct Rect {
  double x;
  double width;
};

std::vector<Rect> FaultWindowRects(const std::string& html) {
  static const std::regex kRect(
      R"re(<rect class="fault-window" x="([0-9.]+)" y="[0-9.]+" width="([0-9.]+)")re");
  std::vector<Rect> rects;
  for (auto match = std::sregex_iterator(html.begin(), html.end(), kRect); match != std::sregex_iterator();
       ++match) {
    rects.push_back({std::stod((*match)[1]), std::stod((*match)[2])});
  }
  return rects;
}

// Every element that is opened is closed, in order: the page parses as the tree it was written as.
void ExpectWellNested(const std::string& html) {
  std::vector<std::string> open;
  for (size_t at = html.find('<'); at != std::string::npos; at = html.find('<', at + 1)) {
    size_t end = html.find('>', at);
    ASSERT_NE(end, std::string::npos) << "a tag is not closed at " << at;
    std::string tag = html.substr(at + 1, end - at - 1);
    if (tag.starts_with("!")) continue;
    std::string name = tag.substr(tag.starts_with("/") ? 1 : 0);
    name = name.substr(0, name.find_first_of(" /"));
    if (tag.starts_with("/")) {
      ASSERT_FALSE(open.empty()) << "</" << name << "> closes nothing";
      ASSERT_EQ(open.back(), name) << "</" << name << "> at " << at << " closes <" << open.back() << ">";
      open.pop_back();
    } else if (!tag.ends_with("/") && name != "meta" && name != "br") {
      open.push_back(name);
    }
  }
  EXPECT_TRUE(open.empty()) << "<" << open.back() << "> is never closed";
}

TEST(HtmlReport, DrawsOneRectPerFaultWindow) {
  std::string html = HtmlReport("report", {test::ThreeWindowsOnTwoAgents()});
  EXPECT_EQ(FaultWindowRects(html).size(), 3u);
  EXPECT_EQ(Count(html, "class=\"fault-window\""), 3);
  // A lane per agent, named.
  EXPECT_EQ(Count(html, "<g class=\"lane\">"), 2);
  EXPECT_NE(html.find(">app-1</text>"), std::string::npos);
  EXPECT_NE(html.find(">app-2</text>"), std::string::npos);
  ExpectWellNested(html);
}

// Lanes draw app-1's windows (2-6 s, 10-14 s), then app-2's (3-12 s): every window has the same pixels per
// second and starts at the same left edge plus its start times that many pixels.
TEST(HtmlReport, PlacesWindowsInProportionToTheirTimes) {
  std::vector<Rect> rects = FaultWindowRects(HtmlReport("report", {test::ThreeWindowsOnTwoAgents()}));
  ASSERT_EQ(rects.size(), 3u);
  const double from[] = {2, 10, 3};
  const double to[] = {6, 14, 12};
  double per_second = rects[0].width / (to[0] - from[0]);
  double left = rects[0].x - from[0] * per_second;
  EXPECT_GT(per_second, 10);
  for (size_t i = 0; i < rects.size(); ++i) {
    EXPECT_NEAR(rects[i].width, (to[i] - from[i]) * per_second, 0.2) << "window " << i;
    EXPECT_NEAR(rects[i].x, left + from[i] * per_second, 0.2) << "window " << i;
  }
}

TEST(HtmlReport, AWindowNeverRevertedLastsToTheRunsEnd) {
  std::string html = HtmlReport("report", {test::OneWindowNeverReverted()});
  std::vector<Rect> rects = FaultWindowRects(html);
  ASSERT_EQ(rects.size(), 2u);
  // app-1: 2-6 s, reverted; app-2: from 3 s to the run's end at 20 s.
  double per_second = rects[0].width / 4;
  double left = rects[0].x - 2 * per_second;
  EXPECT_NEAR(rects[1].x, left + 3 * per_second, 0.2);
  EXPECT_NEAR(rects[1].x + rects[1].width, left + 20 * per_second, 0.2);
  EXPECT_NE(html.find("+3.00 s to the run's end, not reverted"), std::string::npos);
  EXPECT_NE(html.find("revert-failed: connection refused"), std::string::npos);
  EXPECT_EQ(Count(html, "class=\"marker failure\""), 1);
  ExpectWellNested(html);
}

TEST(HtmlReport, DrawsNoWindowForAFaultThatNeverWentActive) {
  std::string html = HtmlReport("report", {test::RefusedBeforeActive()});
  EXPECT_EQ(Count(html, "fault-window"), 0);
  EXPECT_EQ(Count(html, "<g class=\"lane\">"), 1);
  EXPECT_NE(html.find("failed: netem: no such qdisc kind"), std::string::npos);
  EXPECT_NE(html.find("error (exit 1)"), std::string::npos);
}

TEST(HtmlReport, PlotsEverySampleByItsHealth) {
  std::string html = HtmlReport("report", {test::ThreeWindowsOnTwoAgents()});
  // before 1, during 8 (4-11 s, 8 and 9 failed), after 1.
  EXPECT_EQ(Count(html, "<circle class=\"sample healthy\""), 8);
  EXPECT_EQ(Count(html, "<circle class=\"sample failed\""), 2);
  EXPECT_EQ(Count(html, "<g class=\"probe\">"), 1);
  // The 9 samples with a value are joined by one line; the one without is a hollow dot.
  EXPECT_EQ(Count(html, "<polyline"), 1);
  EXPECT_EQ(Count(html, "fill=\"#ffffff\" stroke=\"#e03131\""), 1);
  EXPECT_NE(html.find(">650</text>"), std::string::npos) << "the largest value labels the plot's top";
}

TEST(HtmlReport, MarksVerdictsAndFailures) {
  std::string html = HtmlReport("report", {test::ThreeWindowsOnTwoAgents()});
  EXPECT_EQ(Count(html, "class=\"marker verdict\""), 2);  // deviated, recovered
  EXPECT_EQ(Count(html, "class=\"marker failure\""), 0);
  EXPECT_NE(html.find("deviated (exit 5)"), std::string::npos);
}

TEST(HtmlReport, EscapesEveryStringFromTheRecord) {
  RunRecordBuilder run("<script>alert(1)</script>", 10s);
  run.Add(100ms, "select", "agents", {{"agents", "<b>app</b>"}})
      .Probe(500ms, "before", "p&q", false, "")
      .Add(600ms, "before", "probe",
           {{"probe", "p&q"}, {"healthy", "false"}, {"observed", "</td><script>x()</script>"}})
      .Add(1s, "inject", "failed", {{"agent", "<b>app</b>"}, {"error", "\"quoted\" <img src=x onerror=y()>"}})
      .Add(2s, "before", "not-steady");
  ctl::RunRecord record = run.Build(kRunNotSteady);
  record.description = "it's <i>fine</i>";
  record.path = "/tmp/<x>.yaml";
  std::string html = HtmlReport("game day <&>", {record});

  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<b>"), std::string::npos);
  EXPECT_EQ(html.find("<i>"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;app&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(html.find("probe p&amp;q"), std::string::npos);
  EXPECT_NE(html.find("&quot;quoted&quot; &lt;img src=x onerror=y()&gt;"), std::string::npos);
  EXPECT_NE(html.find("it&#39;s &lt;i&gt;fine&lt;/i&gt;"), std::string::npos);
  EXPECT_NE(html.find("<title>game day &lt;&amp;&gt;</title>"), std::string::npos);
  ExpectWellNested(html);
}

// Nothing outside the file: no script, no stylesheet or image to fetch.
TEST(HtmlReport, NeedsNothingOutsideTheFile) {
  std::string html = HtmlReport("report", {test::ThreeWindowsOnTwoAgents(), test::OneWindowNeverReverted()});
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("url("), std::string::npos);
  // The one address is the SVG namespace's, a name that is never fetched.
  EXPECT_EQ(Count(html, "http://") + Count(html, "https://"),
            Count(html, "xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
}

// Not steady before: the runner records no event at all if the probes fail to start; the page is still
// whole, with the verdict, an empty timeline and no windows.
TEST(HtmlReport, RendersAnEmptyRecord) {
  RunRecord record;
  record.experiment = "empty";
  record.exit_code = kRunNotSteady;
  std::string html = HtmlReport("report", {record});
  EXPECT_TRUE(html.starts_with("<!DOCTYPE html>\n<html"));
  EXPECT_TRUE(html.ends_with("</html>\n"));
  EXPECT_NE(html.find("not steady before injecting (exit 4)"), std::string::npos);
  EXPECT_EQ(Count(html, "<svg class=\"timeline\""), 1);
  EXPECT_EQ(Count(html, "fault-window"), 0);
  EXPECT_NE(html.find(">0s</text>"), std::string::npos);
  EXPECT_NE(html.find("No agent was selected."), std::string::npos);
  EXPECT_NE(html.find("No events were recorded."), std::string::npos);
  ExpectWellNested(html);
}

TEST(HtmlReport, GivesAGameDayOneSectionPerRun) {
  std::string html = HtmlReport("game day", {test::ThreeWindowsOnTwoAgents(), test::OneWindowNeverReverted(),
                                             test::RefusedBeforeActive()});
  EXPECT_EQ(Count(html, "<section class=\"run\""), 3);
  EXPECT_EQ(Count(html, "<svg class=\"timeline\""), 3);
  EXPECT_EQ(Count(html, "class=\"fault-window\""), 5);
  for (const char* link : {"href=\"#run-1\"", "href=\"#run-2\"", "href=\"#run-3\""}) {
    EXPECT_EQ(Count(html, link), 1) << link;
  }
  EXPECT_EQ(html.find("No runs."), std::string::npos);
  ExpectWellNested(html);
}

TEST(HtmlReport, SaysSoWhenThereIsNoRun) {
  std::string html = HtmlReport("game day", {});
  EXPECT_NE(html.find("<p>No runs.</p>"), std::string::npos);
  EXPECT_EQ(Count(html, "<section"), 0);
  ExpectWellNested(html);
}

// Ticks fall on round seconds, at most ten of them, from 0 to the run's length.
TEST(HtmlReport, LabelsTheTimeAxisInSeconds) {
  std::string html = HtmlReport("report", {test::ThreeWindowsOnTwoAgents()});
  for (const char* tick : {">0s<", ">2s<", ">10s<", ">20s<"})
    EXPECT_NE(html.find(tick), std::string::npos) << tick;
  EXPECT_EQ(html.find(">1s<"), std::string::npos);
  EXPECT_EQ(html.find(">22s<"), std::string::npos);
}

}  // namespace
}  // namespace faultline::ctl

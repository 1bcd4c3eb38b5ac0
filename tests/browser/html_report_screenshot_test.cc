// The HTML report as a browser shows it: the report of hand-built runs is opened in headless Chromium,
// and the fault windows are counted on the screenshot by their fill colour, which nothing else on the page
// uses. Skipped, with the reason, where there is no Chromium (the VMs of tests/vm).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "chromium.h"
#include "common/run_records.h"
#include "html_report.h"
#include "image.h"

namespace faultline::test {
namespace {

namespace fs = std::filesystem;

constexpr Colour kFaultWindowFill = {0xf7, 0x67, 0x07};  // ctl/html_report.cc
constexpr Colour kHealthyColour = {0x2b, 0x8a, 0x3e};
// Exact colours inside a shape; edges blend with what is next to them. A window is at least 2 px wide
// and 18 px high; smaller specks of the colour are edges of something else.
constexpr int kTolerance = 8;
constexpr int kMinPixels = 20;

// Whether any process this one started (or, as a child subreaper, inherited) is still there.
bool AnyChildLeft() { return !(waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD); }

class HtmlReportScreenshot : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<fs::path> found = FindChromium();
    if (!found) {
      GTEST_SKIP() << "no Chromium: none of chromium, chromium-browser, google-chrome is on PATH and "
                      "FAULTLINE_CHROMIUM is not set (scripts/install-deps installs Debian's chromium)";
    }
    chromium_ = *found;
    char pattern[] = "/tmp/fltest-screenshot-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    directory_ = pattern;
  }
  void TearDown() override {
    EXPECT_FALSE(AnyChildLeft()) << "a process Chromium started outlived the screenshot";
    if (!directory_.empty()) fs::remove_all(directory_);
  }

  // The report of `runs` in a window `height` pixels high, as an image.
  Image Screenshot(const std::vector<ctl::RunRecord>& runs, int height) {
    fs::path page = directory_ / "report.html";
    std::ofstream(page) << ctl::HtmlReport("screenshot test", runs);
    ScreenshotRequest request{.chromium = chromium_,
                              .page = page,
                              .png = directory_ / "report.png",
                              .scratch = directory_ / "chromium",
                              .height = height};
    absl::Status taken = TakeScreenshot(request);
    EXPECT_TRUE(taken.ok()) << taken;
    absl::StatusOr<Image> image = ReadPng(request.png);
    EXPECT_TRUE(image.ok()) << image.status();
    if (!image.ok()) return Image{};
    EXPECT_EQ(image->width, request.width);
    EXPECT_EQ(image->height, request.height);
    return *std::move(image);
  }

  fs::path chromium_;
  fs::path directory_;
};

std::vector<Region> FaultWindows(const Image& image) {
  std::vector<Region> windows = RegionsOf(image, kFaultWindowFill, kTolerance, kMinPixels);
  std::cout << "fault windows on the screenshot: " << windows.size() << "\n";
  for (const Region& window : windows) {
    std::cout << "  " << window.width() << "x" << window.height() << " at " << window.left << ","
              << window.top << "\n";
  }
  return windows;
}

// app-1: 2-6 s and 10-14 s in the first lane; app-2: 3-12 s in the second, of a 20 s run.
TEST_F(HtmlReportScreenshot, ShowsEveryFaultWindowOnTheTimeline) {
  std::vector<Region> windows = FaultWindows(Screenshot({ThreeWindowsOnTwoAgents()}, 1000));
  ASSERT_EQ(windows.size(), 3u);
  EXPECT_EQ(windows[0].top, windows[1].top) << "app-1's two windows share a lane";
  EXPECT_GT(windows[2].top, windows[0].top) << "app-2's lane is below app-1's";
  for (const Region& window : windows) EXPECT_NEAR(window.height(), 18, 2);
  // Widths in proportion to the windows' lengths (4 s, 4 s, 9 s); starts to their start times.
  double per_second = windows[0].width() / 4.0;
  EXPECT_NEAR(windows[1].width(), 4 * per_second, 2);
  EXPECT_NEAR(windows[2].width(), 9 * per_second, 3);
  EXPECT_NEAR(windows[1].left - windows[0].left, 8 * per_second, 2);
  EXPECT_NEAR(windows[2].left - windows[0].left, 1 * per_second, 2);
}

TEST_F(HtmlReportScreenshot, ShowsNoWindowForAFaultThatNeverWentActive) {
  Image image = Screenshot({RefusedBeforeActive()}, 1000);
  EXPECT_EQ(FaultWindows(image).size(), 0u);
  // The page was drawn all the same: the probe's healthy sample before the injection is there.
  EXPECT_EQ(RegionsOf(image, kHealthyColour, kTolerance, kMinPixels).size(), 1u);
}

// A game day's report: every run's timeline, one under the other, in a window tall enough for all.
TEST_F(HtmlReportScreenshot, ShowsEveryRunOfAGameDay) {
  Image image =
      Screenshot({ThreeWindowsOnTwoAgents(), RefusedBeforeActive(), OneWindowNeverReverted()}, 4000);
  EXPECT_EQ(FaultWindows(image).size(), 5u);
}

// Chromium is still starting after half a second: it is killed, with its helpers and its crash handler.
TEST_F(HtmlReportScreenshot, KillsEveryChromiumProcessWhenItTakesTooLong) {
  fs::path page = directory_ / "report.html";
  std::ofstream(page) << ctl::HtmlReport("screenshot test", {ThreeWindowsOnTwoAgents()});
  ScreenshotRequest request{.chromium = chromium_,
                            .page = page,
                            .png = directory_ / "report.png",
                            .scratch = directory_ / "chromium",
                            .timeout = std::chrono::milliseconds(500)};
  absl::Status taken = TakeScreenshot(request);
  EXPECT_EQ(taken.code(), absl::StatusCode::kDeadlineExceeded) << taken;
  EXPECT_FALSE(AnyChildLeft());
}

}  // namespace
}  // namespace faultline::test

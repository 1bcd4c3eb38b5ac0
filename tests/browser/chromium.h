// Headless Chromium for tests that check what a browser really draws: a page in, a PNG screenshot out.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/status.h"

namespace faultline::test {

// $FAULTLINE_CHROMIUM, else the first of chromium, chromium-browser, google-chrome on PATH; nullopt when
// there is none (the VMs of tests/vm have none).
std::optional<std::filesystem::path> FindChromium();

struct ScreenshotRequest {
  std::filesystem::path chromium;
  std::filesystem::path page;     // an HTML file, opened as file://
  std::filesystem::path png;      // where the screenshot goes
  std::filesystem::path scratch;  // Chromium's profile, home and log go below it; the caller removes it
  int width = 1200;               // the window, in CSS pixels (the device scale is forced to 1)
  int height = 1000;
  std::chrono::milliseconds timeout{std::chrono::seconds(90)};
};

// Opens the page in headless Chromium and saves what the window shows. Every process Chromium started is
// gone when this returns, whether it succeeded, failed or hung. The error names what failed and ends
// with the last lines Chromium printed.
absl::Status TakeScreenshot(const ScreenshotRequest& request);

}  // namespace faultline::test

#include "report.h"

#include <ctime>

#include "faultline/api/cat.h"
#include "log.h"

namespace faultline::ctl {

using api::Cat;

std::string FormatTime(SystemTime time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  std::strftime(text, sizeof(text), "%FT%T", &utc);
  char fraction[8];
  std::snprintf(fraction, sizeof(fraction), ".%03dZ", static_cast<int>(millis));
  return Cat(text, fraction);
}

std::string EventLine(const RunEvent& event) {
  std::string line = Cat(FormatTime(event.time), " ", event.phase, " ", event.event);
  for (const auto& [key, value] : event.fields) {
    if (!value.empty()) line += Cat(" ", key, "=", value);
  }
  return line;
}

std::string EventJson(const std::string& experiment, const RunEvent& event) {
  std::string json =
      Cat("{\"time\":\"", FormatTime(event.time), "\",\"experiment\":", log::JsonQuote(experiment),
          ",\"phase\":\"", event.phase, "\",\"event\":\"", event.event, "\"");
  for (const auto& [key, value] : event.fields) {
    if (!value.empty()) json += Cat(",", log::JsonQuote(key), ":", log::JsonQuote(value));
  }
  return json + "}";
}

}  // namespace faultline::ctl

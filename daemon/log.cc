#include "log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace faultline::log {
namespace {

std::atomic<Level> minimum_level{Level::kInfo};

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarning:
      return "warning";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

std::string Timestamp(std::chrono::system_clock::time_point time) {
  std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  auto millis = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[40];
  size_t n = std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(buffer + n, sizeof(buffer) - n, ".%03dZ", static_cast<int>(millis));
  return buffer;
}

std::string JsonQuote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

Event::Event(Level level, std::string_view name) {
  if (level < minimum_level.load()) return;
  line_ =
      "{\"time\":\"" + Timestamp() + "\",\"level\":\"" + LevelName(level) + "\",\"event\":" + JsonQuote(name);
}

Event::~Event() {
  if (line_.empty()) return;
  line_ += "}\n";
  // One write per line, so lines from several threads never interleave.
  std::fwrite(line_.data(), 1, line_.size(), stderr);
}

Event& Event::With(std::string_view key, std::string_view value) { return WithRaw(key, JsonQuote(value)); }

Event& Event::With(std::string_view key, bool value) { return WithRaw(key, value ? "true" : "false"); }

Event& Event::WithRaw(std::string_view key, std::string_view json) {
  if (line_.empty()) return *this;
  line_ += ",";
  line_ += JsonQuote(key);
  line_ += ":";
  line_ += json;
  return *this;
}

void SetMinimumLevel(Level level) { minimum_level.store(level); }

}  // namespace faultline::log

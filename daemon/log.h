// Structured logs: one JSON object per line on stderr, one line per event.
//   log::Info("experiment.active").With("id", id).With("faults", 2);
// The line is written when the statement ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace faultline::log {

enum class Level { kDebug, kInfo, kWarning, kError };

class Event {
 public:
  Event(Level level, std::string_view name);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  Event& With(std::string_view key, std::string_view value);
  Event& With(std::string_view key, const char* value) { return With(key, std::string_view(value)); }
  Event& With(std::string_view key, const std::string& value) { return With(key, std::string_view(value)); }
  Event& With(std::string_view key, bool value);
  template <typename Number>
  requires std::is_arithmetic_v<Number> Event& With(std::string_view key, Number value) {
    return WithRaw(key, std::to_string(value));
  }

 private:
  Event& WithRaw(std::string_view key, std::string_view json);
  std::string line_;
};

inline Event Debug(std::string_view name) { return Event(Level::kDebug, name); }
inline Event Info(std::string_view name) { return Event(Level::kInfo, name); }
inline Event Warning(std::string_view name) { return Event(Level::kWarning, name); }
inline Event Error(std::string_view name) { return Event(Level::kError, name); }

// Events below this level are dropped. Default: kInfo.
void SetMinimumLevel(Level level);

// A JSON string literal for `text`, quotes included.
std::string JsonQuote(std::string_view text);

// A time (by default now) as every line carries it: "2026-11-26T07:15:35.689Z" (UTC, milliseconds).
std::string Timestamp(std::chrono::system_clock::time_point time = std::chrono::system_clock::now());

}  // namespace faultline::log

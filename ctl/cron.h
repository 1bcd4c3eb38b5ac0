// Cron expressions for schedules: five fields (minute hour day-of-month month day-of-week), or six with
// seconds first. Each field is `*` or a list of values, ranges `a-b`, and steps `*/n`, `a-b/n`, `a/n`;
// months and weekdays also by name (JAN, MON; any case); weekday 7 is Sunday, like 0. As in Vixie cron:
// when both day fields are restricted (neither starts with `*`), a day matches if either does.
//
// Times are the local times of a TimeZone. Across DST changes:
// - a local time skipped by a spring-forward gap does not fire that day;
// - a local time that happens twice in a fall-back fires once, at its first occurrence.
#pragma once

#include <bitset>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "time_zone.h"

namespace faultline::ctl {

class Cron {
 public:
  // Errors say which field and why: `the hour field "25": 25 is not within 0-23`.
  static absl::StatusOr<Cron> Parse(std::string_view text);

  // The first instant strictly after `after` whose local time in `zone` matches. An error when none
  // does within kSearchYears (an expression like "0 0 30 2 *" is refused by Parse already).
  absl::StatusOr<SysSeconds> Next(SysSeconds after, const TimeZone& zone) const;

  const std::string& text() const { return text_; }

  static constexpr int kSearchYears = 10;  // February 29 on a Monday comes every 28 years or less

 private:
  bool DayMatches(std::chrono::local_days day) const;

  std::string text_;
  std::bitset<60> seconds_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1-31
  std::bitset<13> months_;   // 1-12
  std::bitset<7> weekdays_;  // 0 Sunday
  bool any_day_ = true;      // the day-of-month field starts with *
  bool any_weekday_ = true;  // the day-of-week field starts with *
};

}  // namespace faultline::ctl

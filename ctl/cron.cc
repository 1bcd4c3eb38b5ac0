#include "cron.h"

#include <array>
#include <cctype>
#include <sstream>
#include <vector>

#include "faultline/api/cat.h"

namespace faultline::ctl {
namespace {

using api::Cat;
using std::chrono::days;
using std::chrono::seconds;

struct FieldRange {
  const char* name;
  int min, max;
  std::array<const char*, 13> names;  // names[value - min], or null: numbers only
};

constexpr FieldRange kSecond{"second", 0, 59, {}};
constexpr FieldRange kMinute{"minute", 0, 59, {}};
constexpr FieldRange kHour{"hour", 0, 23, {}};
constexpr FieldRange kDay{"day-of-month", 1, 31, {}};
constexpr FieldRange kMonth{
    "month", 1, 12, {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}};
constexpr FieldRange kWeekday{"day-of-week", 0, 7, {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}};

// Thrown inside Parse, returned as its error.
struct FieldError {
  std::string message;
};

int Value(std::string_view text, const FieldRange& range) {
  if (!text.empty() && std::isalpha(static_cast<unsigned char>(text[0]))) {
    std::string upper;
    for (char c : text) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (size_t i = 0; i < range.names.size() && range.names[i] != nullptr; i++) {
      if (upper == range.names[i]) return range.min + static_cast<int>(i);
    }
    throw FieldError{range.names[0] ? Cat("\"", text, "\" is not a ", range.name, " name or number")
                                    : Cat("\"", text, "\" is not a number")};
  }
  int value = 0;
  if (text.empty() || text.size() > 4) throw FieldError{Cat("\"", text, "\" is not a number")};
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) throw FieldError{Cat("\"", text, "\" is not a number")};
    value = value * 10 + (c - '0');
  }
  if (value < range.min || value > range.max)
    throw FieldError{Cat(value, " is not within ", range.min, "-", range.max)};
  return value;
}

// One field into `bits` (bit N for value N); whether it starts with `*`.
template <size_t N>
bool ParseField(std::string_view field, const FieldRange& range, std::bitset<N>& bits) {
  std::string_view rest = field;
  while (true) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    if (item.empty()) throw FieldError{"an empty item in the list"};
    int step = 1;
    if (size_t slash = item.find('/'); slash != std::string_view::npos) {
      step = Value(item.substr(slash + 1), FieldRange{"step", 1, 9999, {}});
      item = item.substr(0, slash);
    }
    int first = range.min, last = range.max;
    if (item != "*") {
      const size_t dash = item.find('-');
      first = Value(item.substr(0, dash), range);
      if (dash != std::string_view::npos) {
        last = Value(item.substr(dash + 1), range);
        if (last < first) throw FieldError{Cat("the range ", item, " ends before it starts")};
      } else if (step == 1) {
        last = first;  // "a" alone; "a/n" runs from a to the maximum
      }
    }
    for (int value = first; value <= last; value += step) bits.set(static_cast<size_t>(value));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return field.starts_with('*');
}

constexpr int kLongestMonth[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

}  // namespace

absl::StatusOr<Cron> Cron::Parse(std::string_view text) {
  std::vector<std::string> fields;
  std::istringstream words{std::string(text)};
  for (std::string word; words >> word;) fields.push_back(word);
  if (fields.size() != 5 && fields.size() != 6) {
    return absl::InvalidArgumentError(Cat("\"", text, "\" has ", fields.size(),
                                          " fields; a cron expression has 5 (minute hour day-of-month "
                                          "month day-of-week) or 6 (second first)"));
  }
  Cron cron;
  cron.text_ = std::string(text);
  const size_t minute = fields.size() - 5;
  auto parse = [&](size_t index, const FieldRange& range, auto& bits) {
    try {
      return ParseField(fields[index], range, bits);
    } catch (const FieldError& error) {
      throw FieldError{
          Cat("\"", text, "\": the ", range.name, " field \"", fields[index], "\": ", error.message)};
    }
  };
  try {
    if (minute == 1) {
      parse(0, kSecond, cron.seconds_);
    } else {
      cron.seconds_.set(0);
    }
    parse(minute, kMinute, cron.minutes_);
    parse(minute + 1, kHour, cron.hours_);
    cron.any_day_ = parse(minute + 2, kDay, cron.days_);
    parse(minute + 3, kMonth, cron.months_);
    std::bitset<8> weekdays;  // 0-7: 7 is Sunday too
    cron.any_weekday_ = parse(minute + 4, kWeekday, weekdays);
    if (weekdays[7]) weekdays.set(0);
    cron.weekdays_ = std::bitset<7>(weekdays.to_ulong() & 0x7f);
  } catch (const FieldError& error) {
    return absl::InvalidArgumentError(error.message);
  }
  // A day of the month no listed month has (and no weekday to match instead) never comes.
  if (!cron.any_day_ && cron.any_weekday_) {
    bool some = false;
    for (int month = 1; month <= 12; month++) {
      for (int day = 1; day <= kLongestMonth[month]; day++) some |= cron.months_[month] && cron.days_[day];
    }
    if (!some)
      return absl::InvalidArgumentError(
          Cat("\"", text, "\" never matches: no listed month has the listed days"));
  }
  return cron;
}

bool Cron::DayMatches(std::chrono::local_days day) const {
  const std::chrono::year_month_day date(day);
  const bool by_date = days_[static_cast<unsigned>(date.day())];
  const bool by_weekday = weekdays_[std::chrono::weekday(day).c_encoding()];
  // Vixie cron: both restricted, either matches; otherwise the restricted one (a * field is all set).
  if (!any_day_ && !any_weekday_) return by_date || by_weekday;
  return by_date && by_weekday;
}

absl::StatusOr<SysSeconds> Cron::Next(SysSeconds after, const TimeZone& zone) const {
  LocalSeconds local = zone.ToLocal(after) + seconds(1);
  const LocalSeconds limit = local + days(366 * kSearchYears);
  while (local <= limit) {
    const std::chrono::local_days day = std::chrono::floor<days>(local);
    const std::chrono::year_month_day date(day);
    const std::chrono::hh_mm_ss time(local - day);
    const auto hour = static_cast<size_t>(time.hours().count());
    const auto minute = static_cast<size_t>(time.minutes().count());
    const auto second = static_cast<size_t>(time.seconds().count());
    if (!months_[static_cast<unsigned>(date.month())]) {
      local =
          LocalSeconds(std::chrono::local_days((date.year() / date.month() + std::chrono::months(1)) / 1));
      continue;
    }
    if (!DayMatches(day)) {
      local = LocalSeconds(day + days(1));
      continue;
    }
    if (!hours_[hour]) {
      local = LocalSeconds(day) + std::chrono::hours(hour + 1);
      continue;
    }
    if (!minutes_[minute]) {
      local = LocalSeconds(day) + std::chrono::hours(hour) + std::chrono::minutes(minute + 1);
      continue;
    }
    if (!seconds_[second]) {
      size_t next = second + 1;
      while (next < 60 && !seconds_[next]) next++;
      local = LocalSeconds(day) + std::chrono::hours(hour) + std::chrono::minutes(minute) + seconds(next);
      continue;
    }
    // A local time in a gap has no instant; a repeated one fires at its first only.
    const std::vector<SysSeconds> instants = zone.FromLocal(local);
    if (!instants.empty() && instants.front() > after) return instants.front();
    local += seconds(1);
  }
  return absl::InvalidArgumentError(
      Cat("\"", text_, "\" never matches in ", kSearchYears, " years (in ", zone.name(), ")"));
}

}  // namespace faultline::ctl

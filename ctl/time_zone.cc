#include "time_zone.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <regex>
#include <string_view>

#include "faultline/api/cat.h"

namespace faultline::ctl {
namespace {

using api::Cat;
using std::chrono::days;
using std::chrono::seconds;

// A TZif header (RFC 8536 §3.1): the counts that size the data block after it.
struct Header {
  char version = 0;
  uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;
};
constexpr size_t kHeaderSize = 44;

int64_t BigEndian(std::string_view bytes, size_t at, size_t size) {
  uint64_t value = 0;
  for (size_t i = 0; i < size; i++) value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
  if (size == 4) return static_cast<int32_t>(static_cast<uint32_t>(value));
  return static_cast<int64_t>(value);
}

bool ReadHeader(std::string_view bytes, size_t at, Header& header) {
  if (bytes.size() < at + kHeaderSize || bytes.substr(at, 4) != "TZif") return false;
  header.version = bytes[at + 4];
  uint32_t* counts[] = {&header.isutcnt, &header.isstdcnt, &header.leapcnt,
                        &header.timecnt, &header.typecnt,  &header.charcnt};
  for (size_t i = 0; i < 6; i++) *counts[i] = static_cast<uint32_t>(BigEndian(bytes, at + 20 + 4 * i, 4));
  return true;
}

size_t BlockSize(const Header& header, size_t time_size) {
  return header.timecnt * time_size + header.timecnt + header.typecnt * 6 + header.charcnt +
         header.leapcnt * (time_size + 4) + header.isstdcnt + header.isutcnt;
}

// A POSIX TZ string, as in the TZif footer: "CET-1CEST,M3.5.0,M10.5.0/3", "IST-5:30", "EST5EDT,...".
class PosixTz {
 public:
  explicit PosixTz(std::string_view text) : text_(text) {}

  bool Parse(TimeZone::Rule& rule) {
    seconds offset;
    if (!Name() || !Offset(offset, 24)) return false;
    rule.std_offset = -offset;  // POSIX counts west of Greenwich as positive
    if (Done()) return true;
    if (!Name()) return false;
    rule.has_dst = true;
    rule.dst_offset = rule.std_offset + std::chrono::hours(1);
    if (!Done() && Peek() != ',') {
      if (!Offset(offset, 24)) return false;
      rule.dst_offset = -offset;
    }
    // Without dates, POSIX leaves the rule to the implementation: not worth guessing.
    return Eat(',') && Date(rule.start) && Eat(',') && Date(rule.end) && Done();
  }

 private:
  bool Done() const { return at_ == text_.size(); }
  char Peek() const { return Done() ? '\0' : text_[at_]; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    at_++;
    return true;
  }
  bool Name() {
    if (Eat('<')) {
      size_t close = text_.find('>', at_);
      if (close == std::string_view::npos) return false;
      at_ = close + 1;
      return true;
    }
    size_t start = at_;
    while (std::isalpha(static_cast<unsigned char>(Peek()))) at_++;
    return at_ - start >= 3;
  }
  bool Number(int& value) {
    size_t start = at_;
    value = 0;
    while (std::isdigit(static_cast<unsigned char>(Peek())) && at_ - start < 4)
      value = value * 10 + (text_[at_++] - '0');
    return at_ > start;
  }
  // [+-]hh[:mm[:ss]], hours up to max_hours.
  bool Offset(seconds& out, int max_hours) {
    const bool negative = Eat('-');
    if (!negative) Eat('+');
    int hours = 0, minutes = 0, secs = 0;
    if (!Number(hours) || hours > max_hours) return false;
    if (Eat(':') && (!Number(minutes) || minutes > 59)) return false;
    if (Eat(':') && (!Number(secs) || secs > 59)) return false;
    out = seconds(hours * 3600 + minutes * 60 + secs);
    if (negative) out = -out;
    return true;
  }
  bool Date(TimeZone::Rule::Date& date) {
    using Kind = TimeZone::Rule::Date::Kind;
    if (Eat('M')) {
      date.kind = Kind::kMonthWeekDay;
      if (!Number(date.month) || date.month < 1 || date.month > 12 || !Eat('.') || !Number(date.week) ||
          date.week < 1 || date.week > 5 || !Eat('.') || !Number(date.day) || date.day > 6) {
        return false;
      }
    } else if (Eat('J')) {
      date.kind = Kind::kJulianNoLeap;
      if (!Number(date.day) || date.day < 1 || date.day > 365) return false;
    } else {
      date.kind = Kind::kZeroBased;
      if (!Number(date.day) || date.day > 365) return false;
    }
    if (Eat('/')) return Offset(date.time, 167);  // RFC 8536 §3.3.1 extends POSIX's 24 to 167
    return true;
  }

  std::string_view text_;
  size_t at_ = 0;
};

// The instant a rule's date and local time fall on in `year`, with `offset` in force before it.
SysSeconds RuleInstant(const TimeZone::Rule::Date& date, std::chrono::year year, seconds offset) {
  using Kind = TimeZone::Rule::Date::Kind;
  using std::chrono::January;
  std::chrono::sys_days day;
  switch (date.kind) {
    case Kind::kJulianNoLeap:  // Jn: 1-365, February 29 never counted
      day =
          std::chrono::sys_days(year / January / 1) + days(date.day - 1 + (year.is_leap() && date.day >= 60));
      break;
    case Kind::kZeroBased:
      day = std::chrono::sys_days(year / January / 1) + days(date.day);
      break;
    case Kind::kMonthWeekDay: {
      const std::chrono::month month(static_cast<unsigned>(date.month));
      const std::chrono::weekday weekday(static_cast<unsigned>(date.day));
      day = date.week == 5 ? std::chrono::sys_days(year / month / weekday[std::chrono::last])
                           : std::chrono::sys_days(year / month / weekday[static_cast<unsigned>(date.week)]);
      break;
    }
  }
  return SysSeconds(day) + date.time - offset;
}

seconds RuleOffset(const TimeZone::Rule& rule, SysSeconds instant) {
  if (!rule.has_dst) return rule.std_offset;
  const std::chrono::year year =
      std::chrono::year_month_day(std::chrono::floor<days>(instant + rule.std_offset)).year();
  const SysSeconds start = RuleInstant(rule.start, year, rule.std_offset);
  const SysSeconds end = RuleInstant(rule.end, year, rule.dst_offset);
  // Southern zones have DST across the new year: the year's end comes before its start.
  const bool dst = start < end ? instant >= start && instant < end : !(instant >= end && instant < start);
  return dst ? rule.dst_offset : rule.std_offset;
}

}  // namespace

TimeZone::TimeZone() : data_(std::make_shared<Data>()) {}

absl::StatusOr<TimeZone> TimeZone::Load(const std::string& name, const std::string& directory) {
  static const std::regex kName("[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*");
  if (!std::regex_match(name, kName))
    return absl::InvalidArgumentError(Cat("\"", name, "\" is not a time zone name, e.g. Europe/Berlin"));
  if (name == "UTC") return TimeZone();
  const std::string path = Cat(directory, "/", name);
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("\"", name, "\" is not a time zone: no file ", path));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto corrupt = [&](const std::string& why) {
    return absl::InvalidArgumentError(
        Cat("time zone \"", name, "\": ", path, " is not a TZif file (", why, ")"));
  };

  Header v1;
  if (!ReadHeader(bytes, 0, v1)) return corrupt("no TZif header");
  // Version 1 files have only 32-bit times; version 2 and later repeat the data with 64-bit times
  // after the first block, and that is the block read here.
  if (v1.version < '2') return corrupt("version 1 files, with 32-bit times only, are not read");
  const size_t second = kHeaderSize + BlockSize(v1, 4);
  Header header;
  if (!ReadHeader(bytes, second, header)) return corrupt("no second header");
  size_t at = second + kHeaderSize;
  if (bytes.size() < at + BlockSize(header, 8)) return corrupt("truncated");
  if (header.typecnt == 0) return corrupt("no local time types");

  auto data = std::make_shared<Data>();
  std::vector<int64_t> times(header.timecnt);
  for (auto& time : times) {
    time = BigEndian(bytes, at, 8);
    at += 8;
  }
  std::vector<uint8_t> indexes(header.timecnt);
  for (auto& index : indexes) index = static_cast<uint8_t>(bytes[at++]);
  std::vector<seconds> offsets(header.typecnt);
  for (auto& offset : offsets) {
    offset = seconds(BigEndian(bytes, at, 4));
    at += 6;  // utoff, isdst, desigidx
  }
  for (uint32_t i = 0; i < header.timecnt; i++) {
    if (indexes[i] >= header.typecnt) return corrupt("a transition names no local time type");
    data->transitions.push_back({SysSeconds(seconds(times[i])), offsets[indexes[i]]});
  }
  // Leap seconds ("right/" zones) are not applied: schedules count POSIX seconds.
  at += header.charcnt + header.leapcnt * 12 + header.isstdcnt + header.isutcnt;
  data->initial = offsets[0];  // RFC 8536 §3.2: type 0 is the local time before the first transition

  // The footer: "\nTZ\n". When absent or not understood, the last transition's offset stays.
  if (at < bytes.size() && bytes[at] == '\n') {
    const size_t end = bytes.find('\n', at + 1);
    if (end != std::string::npos && end > at + 1) {
      data->has_rule = PosixTz(std::string_view(bytes).substr(at + 1, end - at - 1)).Parse(data->rule);
    }
  }
  TimeZone zone;
  zone.name_ = name;
  zone.data_ = std::move(data);
  return zone;
}

seconds TimeZone::OffsetAt(SysSeconds instant) const {
  const auto& transitions = data_->transitions;
  auto after = std::upper_bound(transitions.begin(), transitions.end(), instant,
                                [](SysSeconds at, const Transition& t) { return at < t.at; });
  if (after == transitions.end() && data_->has_rule) return RuleOffset(data_->rule, instant);
  if (after == transitions.begin()) return data_->initial;
  return std::prev(after)->offset;
}

LocalSeconds TimeZone::ToLocal(SysSeconds instant) const {
  return LocalSeconds((instant + OffsetAt(instant)).time_since_epoch());
}

std::vector<SysSeconds> TimeZone::FromLocal(LocalSeconds local) const {
  // The offsets a day either side: real zones change their offset at most once within two days.
  const SysSeconds as_utc(local.time_since_epoch());
  std::vector<SysSeconds> instants;
  for (seconds offset : {OffsetAt(as_utc - days(1)), OffsetAt(as_utc + days(1))}) {
    const SysSeconds instant = as_utc - offset;
    if (OffsetAt(instant) == offset && std::find(instants.begin(), instants.end(), instant) == instants.end())
      instants.push_back(instant);
  }
  std::sort(instants.begin(), instants.end());
  return instants;
}

SysSeconds TimeZone::FromLocalEarliest(LocalSeconds local) const {
  std::vector<SysSeconds> instants = FromLocal(local);
  if (!instants.empty()) return instants.front();
  const SysSeconds as_utc(local.time_since_epoch());
  return as_utc - OffsetAt(as_utc - days(1));
}

}  // namespace faultline::ctl

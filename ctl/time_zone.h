// Time zones for schedules, read from the system's TZif files (RFC 8536) under /usr/share/zoneinfo.
// No setenv("TZ")/localtime: those share process-wide state, and faultctl has gRPC threads. GCC 12's
// libstdc++ has no std::chrono::tzdb, so this reads the files itself: the 64-bit (v2+) block's
// transitions, then the footer's POSIX TZ rule (e.g. "CET-1CEST,M3.5.0,M10.5.0/3") for instants after
// the last transition. A file without a usable rule keeps its last offset after the last transition.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace faultline::ctl {

using SysSeconds = std::chrono::sys_seconds;
using LocalSeconds = std::chrono::local_seconds;

class TimeZone {
 public:
  // UTC, without reading a file.
  TimeZone();
  // An IANA name ("Europe/Berlin") read from `directory`; "UTC" needs no file.
  static absl::StatusOr<TimeZone> Load(const std::string& name,
                                       const std::string& directory = "/usr/share/zoneinfo");

  const std::string& name() const { return name_; }
  // Local time minus UTC at `instant`.
  std::chrono::seconds OffsetAt(SysSeconds instant) const;
  LocalSeconds ToLocal(SysSeconds instant) const;
  // The instants whose local time is `local`, earliest first: one; none in a gap (a spring-forward
  // skips it); two in a repeated hour (a fall-back).
  std::vector<SysSeconds> FromLocal(LocalSeconds local) const;
  // One instant for `local`: the earlier of a repeated time; in a gap, the instant the same distance
  // after the gap's start (02:30 in a 02:00-03:00 gap is 03:30).
  SysSeconds FromLocalEarliest(LocalSeconds local) const;

  // The footer's rule, parsed: DST from `start` to `end` each year (local times, per RFC 8536 §3.3).
  struct Rule {
    std::chrono::seconds std_offset{0};
    std::chrono::seconds dst_offset{0};
    bool has_dst = false;
    struct Date {
      enum class Kind { kJulianNoLeap, kZeroBased, kMonthWeekDay } kind = Kind::kMonthWeekDay;
      int day = 0;  // Jn: 1-365; n: 0-365; Mm.w.d: d (0 Sunday)
      int month = 0, week = 0;
      std::chrono::seconds time{7200};  // local time of day of the change, -167h..167h
    } start, end;
  };

 private:
  struct Transition {
    SysSeconds at;
    std::chrono::seconds offset;
  };
  struct Data {
    std::chrono::seconds initial{0};  // before the first transition
    std::vector<Transition> transitions;
    bool has_rule = false;
    Rule rule;
  };

  std::string name_ = "UTC";
  std::shared_ptr<const Data> data_;
};

}  // namespace faultline::ctl

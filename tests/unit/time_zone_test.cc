// Time zones read from the system's TZif files: offsets either side of real DST changes, the footer's
// rule past the last listed transition, and local times that do not exist or exist twice.
#include "time_zone.h"

#include <gtest/gtest.h>

#include <chrono>

namespace faultline::ctl {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

TimeZone Zone(const std::string& name) {
  auto zone = TimeZone::Load(name);
  EXPECT_TRUE(zone.ok()) << zone.status();
  return zone.ok() ? *zone : TimeZone();
}

SysSeconds Utc(year_month_day date, seconds time = 0s) { return sys_days(date) + time; }
LocalSeconds Local(year_month_day date, seconds time = 0s) { return local_days(date) + time; }

TEST(TimeZones, BerlinChangesAtOneUtcOnTheLastSundaysOfMarchAndOctober2026) {
  const TimeZone berlin = Zone("Europe/Berlin");
  EXPECT_EQ(berlin.OffsetAt(Utc(2026y / March / 29, 1h) - 1s), 1h);
  EXPECT_EQ(berlin.OffsetAt(Utc(2026y / March / 29, 1h)), 2h);
  EXPECT_EQ(berlin.OffsetAt(Utc(2026y / October / 25, 1h) - 1s), 2h);
  EXPECT_EQ(berlin.OffsetAt(Utc(2026y / October / 25, 1h)), 1h);
  EXPECT_EQ(berlin.ToLocal(Utc(2026y / July / 1, 12h)), Local(2026y / July / 1, 14h));
}

TEST(TimeZones, NewYorkChangesAtTwoLocalOnTheSecondSundayOfMarchAndTheFirstOfNovember) {
  const TimeZone new_york = Zone("America/New_York");
  EXPECT_EQ(new_york.OffsetAt(Utc(2026y / March / 8, 7h) - 1s), -5h);
  EXPECT_EQ(new_york.OffsetAt(Utc(2026y / March / 8, 7h)), -4h);
  EXPECT_EQ(new_york.OffsetAt(Utc(2026y / November / 1, 6h) - 1s), -4h);
  EXPECT_EQ(new_york.OffsetAt(Utc(2026y / November / 1, 6h)), -5h);
}

TEST(TimeZones, KolkataIsFiveAndAHalfHoursAheadAllYear) {
  const TimeZone kolkata = Zone("Asia/Kolkata");
  EXPECT_EQ(kolkata.OffsetAt(Utc(2026y / January / 1)), 5h + 30min);
  EXPECT_EQ(kolkata.OffsetAt(Utc(2026y / July / 1)), 5h + 30min);
  EXPECT_EQ(kolkata.OffsetAt(Utc(2050y / July / 1)), 5h + 30min);
}

TEST(TimeZones, UtcNeedsNoFile) {
  auto utc = TimeZone::Load("UTC", "/nonexistent");
  ASSERT_TRUE(utc.ok()) << utc.status();
  EXPECT_EQ(utc->OffsetAt(Utc(2026y / July / 1)), 0s);
  EXPECT_EQ(TimeZone().name(), "UTC");
}

TEST(TimeZones, PastTheLastListedTransitionTheFootersRuleApplies) {
  // Debian's files list transitions up to 2037; 2040 comes from "CET-1CEST,M3.5.0,M10.5.0/3".
  const TimeZone berlin = Zone("Europe/Berlin");
  EXPECT_EQ(berlin.OffsetAt(Utc(2040y / January / 15)), 1h);
  EXPECT_EQ(berlin.OffsetAt(Utc(2040y / July / 1)), 2h);
  // The last Sunday of March 2040 is the 25th.
  EXPECT_EQ(berlin.OffsetAt(Utc(2040y / March / 25, 1h) - 1s), 1h);
  EXPECT_EQ(berlin.OffsetAt(Utc(2040y / March / 25, 1h)), 2h);
  // Southern summer spans the new year.
  const TimeZone sydney = Zone("Australia/Sydney");
  EXPECT_EQ(sydney.OffsetAt(Utc(2040y / January / 15)), 11h);
  EXPECT_EQ(sydney.OffsetAt(Utc(2040y / July / 1)), 10h);
  EXPECT_EQ(sydney.OffsetAt(Utc(2040y / December / 31)), 11h);
}

TEST(TimeZones, ALocalTimeInTheSpringGapHasNoInstantAndOneInTheFallBackHasTwo) {
  const TimeZone berlin = Zone("Europe/Berlin");
  EXPECT_TRUE(berlin.FromLocal(Local(2026y / March / 29, 2h + 30min)).empty());
  EXPECT_EQ(berlin.FromLocalEarliest(Local(2026y / March / 29, 2h + 30min)),
            Utc(2026y / March / 29, 1h + 30min))
      << "02:30 in the gap is taken as 03:30 CEST";
  const std::vector<SysSeconds> twice = berlin.FromLocal(Local(2026y / October / 25, 2h + 30min));
  ASSERT_EQ(twice.size(), 2u);
  EXPECT_EQ(twice[0], Utc(2026y / October / 25, 30min));
  EXPECT_EQ(twice[1], Utc(2026y / October / 25, 1h + 30min));
  const std::vector<SysSeconds> once = berlin.FromLocal(Local(2026y / October / 25, 12h));
  ASSERT_EQ(once.size(), 1u);
  EXPECT_EQ(once[0], Utc(2026y / October / 25, 11h));
}

TEST(TimeZones, UnknownOrMalformedNamesAreRefused) {
  auto missing = TimeZone::Load("Mars/Olympus_Mons");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "\"Mars/Olympus_Mons\" is not a time zone: no file /usr/share/zoneinfo/Mars/Olympus_Mons");
  auto escape = TimeZone::Load("../../etc/passwd");
  ASSERT_FALSE(escape.ok());
  EXPECT_EQ(escape.status().message(), "\"../../etc/passwd\" is not a time zone name, e.g. Europe/Berlin");
}

}  // namespace
}  // namespace faultline::ctl

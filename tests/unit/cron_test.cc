// Cron expressions: what each mistake is called, and the next matching instant, including the
// day-of-month/day-of-week rule and the two DST changes.
#include "cron.h"

#include <gtest/gtest.h>

#include <chrono>

namespace faultline::ctl {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

SysSeconds Utc(year_month_day date, seconds time = 0s) { return sys_days(date) + time; }

TimeZone Zone(const std::string& name) {
  auto zone = TimeZone::Load(name);
  EXPECT_TRUE(zone.ok()) << zone.status();
  return zone.ok() ? *zone : TimeZone();
}

// The next match of `cron` after `after` in `zone`.
SysSeconds Next(const std::string& cron, SysSeconds after, const TimeZone& zone = TimeZone()) {
  auto parsed = Cron::Parse(cron);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return {};
  auto next = parsed->Next(after, zone);
  EXPECT_TRUE(next.ok()) << next.status();
  return next.ok() ? *next : SysSeconds{};
}

struct BadCron {
  const char* name;
  const char* text;
  const char* error;
};

class CronErrors : public ::testing::TestWithParam<BadCron> {};

TEST_P(CronErrors, NameTheFieldAndTheReason) {
  auto parsed = Cron::Parse(GetParam().text);
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.status().message(), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    BadCrons, CronErrors,
    ::testing::Values(
        BadCron{"too_few_fields", "0 10 * *",
                "\"0 10 * *\" has 4 fields; a cron expression has 5 (minute hour day-of-month month "
                "day-of-week) or 6 (second first)"},
        BadCron{"hour_out_of_range", "0 25 * * *",
                "\"0 25 * * *\": the hour field \"25\": 25 is not within 0-23"},
        BadCron{"second_out_of_range", "60 * * * * *",
                "\"60 * * * * *\": the second field \"60\": 60 is not within 0-59"},
        BadCron{"day_zero", "0 0 0 * *", "\"0 0 0 * *\": the day-of-month field \"0\": 0 is not within 1-31"},
        BadCron{"step_zero", "*/0 * * * *",
                "\"*/0 * * * *\": the minute field \"*/0\": 0 is not within 1-9999"},
        BadCron{"backwards_range", "0 0 * * FRI-MON",
                "\"0 0 * * FRI-MON\": the day-of-week field \"FRI-MON\": the range FRI-MON ends before it "
                "starts"},
        BadCron{"unknown_name", "0 0 * FOO *",
                "\"0 0 * FOO *\": the month field \"FOO\": \"FOO\" is not a month name or number"},
        BadCron{"name_where_numbers_only", "0 MON * * *",
                "\"0 MON * * *\": the hour field \"MON\": \"MON\" is not a number"},
        BadCron{"empty_item", "1,,2 * * * *",
                "\"1,,2 * * * *\": the minute field \"1,,2\": an empty item in the list"},
        BadCron{"never", "0 0 31 2,4 *",
                "\"0 0 31 2,4 *\" never matches: no listed month has the listed days"}),
    [](const ::testing::TestParamInfo<BadCron>& info) { return info.param.name; });

TEST(Cron, FieldsListsRangesStepsAndNames) {
  // Thursday 2026-01-01.
  EXPECT_EQ(Next("*/15 * * * *", Utc(2026y / January / 1, 10h + 1min)),
            Utc(2026y / January / 1, 10h + 15min));
  EXPECT_EQ(Next("0 9-17/4 * * *", Utc(2026y / January / 1, 13h)), Utc(2026y / January / 1, 17h));
  EXPECT_EQ(Next("0 0 1 jan,Jul *", Utc(2026y / January / 1)), Utc(2026y / July / 1));
  EXPECT_EQ(Next("0 10 * * MON-FRI", Utc(2026y / January / 2, 10h)), Utc(2026y / January / 5, 10h));
  EXPECT_EQ(Next("0 0 * * 7", Utc(2026y / January / 1)), Utc(2026y / January / 4)) << "7 is Sunday";
  EXPECT_EQ(Next("5/20 * * * *", Utc(2026y / January / 1, 6h + 6min)), Utc(2026y / January / 1, 6h + 25min))
      << "a/n: from a to the end, every n";
  EXPECT_EQ(Next("*/3 * * * * *", Utc(2026y / January / 1, 12h + 1s)), Utc(2026y / January / 1, 12h + 3s))
      << "six fields: seconds first";
  EXPECT_EQ(Next("0 0 29 2 *", Utc(2026y / March / 1)), Utc(2028y / February / 29));
}

TEST(Cron, WhenBothDayFieldsAreRestrictedEitherMatches) {
  // Friday the 2nd and the 9th match by weekday, Tuesday the 13th by date.
  EXPECT_EQ(Next("0 0 13 * FRI", Utc(2026y / January / 1)), Utc(2026y / January / 2));
  EXPECT_EQ(Next("0 0 13 * FRI", Utc(2026y / January / 9)), Utc(2026y / January / 13));
  // One of them a *: only the other counts.
  EXPECT_EQ(Next("0 0 13 * *", Utc(2026y / January / 1)), Utc(2026y / January / 13));
  EXPECT_EQ(Next("0 0 * * FRI", Utc(2026y / January / 2)), Utc(2026y / January / 9));
}

TEST(Cron, ATimeInTheSpringGapDoesNotFireThatDay) {
  const TimeZone berlin = Zone("Europe/Berlin");
  // 02:30 does not exist on 2026-03-29 in Berlin: the 28th (CET), then the 30th (CEST).
  EXPECT_EQ(Next("30 2 * * *", Utc(2026y / March / 27, 12h), berlin), Utc(2026y / March / 28, 1h + 30min));
  EXPECT_EQ(Next("30 2 * * *", Utc(2026y / March / 28, 12h), berlin), Utc(2026y / March / 30, 30min));
  // A time after the gap on the same day is not affected.
  EXPECT_EQ(Next("0 3 * * *", Utc(2026y / March / 28, 12h), berlin), Utc(2026y / March / 29, 1h));
}

TEST(Cron, ARepeatedTimeFiresOnceAtItsFirstOccurrence) {
  const TimeZone berlin = Zone("Europe/Berlin");
  // 02:30 happens at 00:30 UTC (CEST) and again at 01:30 UTC (CET) on 2026-10-25.
  EXPECT_EQ(Next("30 2 * * *", Utc(2026y / October / 24, 12h), berlin), Utc(2026y / October / 25, 30min));
  EXPECT_EQ(Next("30 2 * * *", Utc(2026y / October / 25, 30min), berlin),
            Utc(2026y / October / 26, 1h + 30min));
  // Every 20 minutes: 02:00, 02:20, 02:40 once each, then 03:00.
  EXPECT_EQ(Next("*/20 * * * *", Utc(2026y / October / 25, 40min), berlin), Utc(2026y / October / 25, 2h));
  const TimeZone new_york = Zone("America/New_York");
  EXPECT_EQ(Next("0 10 * * *", Utc(2026y / March / 7, 16h), new_york), Utc(2026y / March / 8, 14h));
  EXPECT_EQ(Next("30 1 * * *", Utc(2026y / October / 31, 12h), new_york),
            Utc(2026y / November / 1, 5h + 30min));
}

TEST(Cron, ALocalTimeIsTheZones) {
  EXPECT_EQ(Next("0 10 * * *", Utc(2026y / January / 1), Zone("Asia/Kolkata")),
            Utc(2026y / January / 1, 4h + 30min));
}

}  // namespace
}  // namespace faultline::ctl

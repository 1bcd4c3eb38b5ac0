// The scheduler with a fake clock and a fake launcher: due slots start runs, blackout windows skip
// slots and abort runs, a file never runs twice at once, and the state file carries the plan across a
// restart (handled slots not run again, missed ones recorded, a recent one run late, an interrupted
// one reported).
#include "scheduler.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>

namespace faultline::ctl {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

const SysSeconds kNoon = sys_days(2026y / January / 15) + 12h;

// Time that moves only when told.
class FakeClock {
 public:
  SystemTime operator()() const {
    std::lock_guard lock(mutex_);
    return now_;
  }
  void Set(SysSeconds now) {
    std::lock_guard lock(mutex_);
    now_ = now;
  }

 private:
  mutable std::mutex mutex_;
  SystemTime now_ = kNoon + 30s;  // schedulers open at 12:00:30 unless told
};

// Runs that last until released (exit 0) or aborted (exit 6, as a reverted run does).
class FakeRuns {
 public:
  int Launch(const ScheduledRun& run, const std::atomic<bool>& abort) {
    std::unique_lock lock(mutex_);
    started_.push_back(run);
    changed_.notify_all();
    while (!released_ && !abort) changed_.wait_for(lock, 5ms);
    return abort ? 6 : 0;
  }
  void Release() {
    std::lock_guard lock(mutex_);
    released_ = true;
    changed_.notify_all();
  }
  // Waits (in real time, up to 5 s) until `count` runs have started.
  bool WaitStarted(size_t count) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 5s, [&] { return started_.size() >= count; });
  }
  std::vector<ScheduledRun> Started() {
    std::lock_guard lock(mutex_);
    return started_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<ScheduledRun> started_;
  bool released_ = false;
};

// The scheduler's events, as "EVENT slot=HH:MM:SS [exit=N] [...]" lines.
class Events {
 public:
  void Add(const RunEvent& event) {
    std::lock_guard lock(mutex_);
    std::string line = event.event;
    for (const auto& [key, value] : event.fields) {
      if (key == "schedule" || key == "experiment") continue;
      line += " " + key + "=" + (key == "slot" || key == "last" ? value.substr(11, 8) : value);
    }
    lines_.push_back(line);
    changed_.notify_all();
  }
  // Waits (in real time, up to 5 s) for a line that starts with `prefix`.
  bool WaitFor(const std::string& prefix) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, 5s, [&] {
      return std::any_of(lines_.begin(), lines_.end(),
                         [&](const std::string& l) { return l.starts_with(prefix); });
    });
  }
  std::vector<std::string> Lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() {
    char pattern[] = "/tmp/fltest-schedule-XXXXXX";
    directory_ = mkdtemp(pattern);
  }
  ~SchedulerTest() override { std::filesystem::remove_all(directory_); }

  // A schedule of one Experiment file run at `cron` (UTC).
  ScheduleFile Schedule(const std::string& cron) {
    ScheduleFile schedule;
    schedule.metadata.name = "test";
    ScheduleEntry& entry = schedule.runs.emplace_back();
    entry.path = directory_ + "/experiment.yaml";
    entry.kind = "Experiment";
    entry.name = "experiment";
    entry.cron = *Cron::Parse(cron);
    return schedule;
  }
  static Blackout Window(SysSeconds from, SysSeconds to) {
    Blackout window;
    window.from = from;
    window.to = to;
    return window;
  }

  std::unique_ptr<Scheduler> Open(const ScheduleFile& schedule, const std::string& state = "") {
    SchedulerOptions options;
    options.clock = [this] { return clock_(); };
    options.launch = [this](const ScheduledRun& run, const std::atomic<bool>& abort) {
      return runs_.Launch(run, abort);
    };
    options.state_path = state;
    options.observe = [this](const RunEvent& event) { events_.Add(event); };
    auto scheduler = Scheduler::Open({schedule}, std::move(options));
    EXPECT_TRUE(scheduler.ok()) << scheduler.status();
    return scheduler.ok() ? *std::move(scheduler) : nullptr;
  }

  std::string directory_;
  FakeClock clock_;
  FakeRuns runs_;
  Events events_;
};

TEST_F(SchedulerTest, ADueSlotStartsARunAndItsEndIsRecorded) {
  auto scheduler = Open(Schedule("0 * * * * *"));
  EXPECT_EQ(scheduler->Tick(), kNoon + 1min) << "wakes at the next slot";
  EXPECT_TRUE(runs_.Started().empty());
  clock_.Set(kNoon + 1min);
  scheduler->Tick();
  ASSERT_TRUE(events_.WaitFor("started entry=0 slot=12:01:00"));
  ASSERT_TRUE(runs_.WaitStarted(1));
  EXPECT_EQ(runs_.Started()[0].slot, kNoon + 1min);
  EXPECT_EQ(runs_.Started()[0].path, directory_ + "/experiment.yaml");
  runs_.Release();
  EXPECT_TRUE(events_.WaitFor("finished entry=0 exit=0 slot=12:01:00"));
}

TEST_F(SchedulerTest, ASlotInsideABlackoutWindowIsSkipped) {
  ScheduleFile schedule = Schedule("0 * * * * *");
  schedule.blackouts.push_back(Window(kNoon + 45s, kNoon + 2min));
  auto scheduler = Open(schedule);
  runs_.Release();
  clock_.Set(kNoon + 1min);
  scheduler->Tick();
  EXPECT_EQ(events_.Lines(), std::vector<std::string>{"skipped-blackout entry=0 slot=12:01:00"});
  clock_.Set(kNoon + 2min);
  scheduler->Tick();
  EXPECT_TRUE(events_.WaitFor("started entry=0 slot=12:02:00")) << "the window ends before 12:02";
  EXPECT_TRUE(runs_.WaitStarted(1));
}

TEST_F(SchedulerTest, ABlackoutWindowBeginningDuringARunAbortsIt) {
  ScheduleFile schedule = Schedule("0 * * * * *");
  Blackout window;
  window.cron = *Cron::Parse("30 * * * * *");  // every minute at :30, for 10 s
  window.duration = 10s;
  schedule.blackouts.push_back(window);
  auto scheduler = Open(schedule);
  clock_.Set(kNoon + 1min);
  EXPECT_EQ(scheduler->Tick(), kNoon + 1min + 30s) << "wakes when the window begins over the run";
  ASSERT_TRUE(events_.WaitFor("started"));
  clock_.Set(kNoon + 1min + 30s);
  scheduler->Tick();
  EXPECT_TRUE(events_.WaitFor("blackout-begins entry=0 slot=12:01:00"));
  EXPECT_TRUE(events_.WaitFor("finished aborted=blackout entry=0 exit=6 slot=12:01:00"));
  EXPECT_EQ(scheduler->Running(), 0u);
}

TEST_F(SchedulerTest, ASlotThatComesWhileTheFileStillRunsIsSkipped) {
  auto scheduler = Open(Schedule("0 * * * * *"));
  clock_.Set(kNoon + 1min);
  scheduler->Tick();
  ASSERT_TRUE(events_.WaitFor("started"));
  clock_.Set(kNoon + 2min);
  scheduler->Tick();
  EXPECT_TRUE(events_.WaitFor("skipped-running entry=0 slot=12:02:00"));
  ASSERT_TRUE(runs_.WaitStarted(1));
  EXPECT_EQ(runs_.Started().size(), 1u);
  runs_.Release();
  EXPECT_TRUE(events_.WaitFor("finished"));
}

TEST_F(SchedulerTest, StopAbortsTheRunsInProgressAndWaitsForThem) {
  auto scheduler = Open(Schedule("0 * * * * *"));
  clock_.Set(kNoon + 1min);
  scheduler->Tick();
  ASSERT_TRUE(events_.WaitFor("started"));
  scheduler->Stop();
  EXPECT_EQ(scheduler->Running(), 0u);
  const std::vector<std::string> lines = events_.Lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], "stopping runs=1");
  EXPECT_EQ(lines[2], "finished aborted=stopping entry=0 exit=6 slot=12:01:00");
}

TEST_F(SchedulerTest, AfterARestartHandledSlotsAreNotRunAgain) {
  const std::string state = directory_ + "/state.json";
  runs_.Release();
  {
    auto scheduler = Open(Schedule("0 * * * * *"), state);
    clock_.Set(kNoon + 1min);
    scheduler->Tick();
    ASSERT_TRUE(events_.WaitFor("finished"));
  }
  clock_.Set(kNoon + 1min + 30s);
  auto scheduler = Open(Schedule("0 * * * * *"), state);
  scheduler->Tick();
  EXPECT_EQ(runs_.Started().size(), 1u) << "12:01 ran before the restart";
  clock_.Set(kNoon + 2min);
  scheduler->Tick();
  EXPECT_TRUE(events_.WaitFor("started entry=0 slot=12:02:00"));
  EXPECT_TRUE(runs_.WaitStarted(2));
  std::ifstream in(state);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"lastSlot\":\"2026-01-15T12:02:00.000Z\""), std::string::npos) << text;
}

TEST_F(SchedulerTest, SlotsMissedWhileDownAreRecordedAndOnlyARecentOneRuns) {
  const std::string state = directory_ + "/state.json";
  runs_.Release();
  { auto scheduler = Open(Schedule("0 0 * * * *"), state); }  // hourly; plan from 12:00
  // Down until 13:10: the 13:00 slot is older than the 5 minute deadline.
  clock_.Set(kNoon + 1h + 10min);
  {
    auto scheduler = Open(Schedule("0 0 * * * *"), state);
    scheduler->Tick();
    EXPECT_EQ(events_.Lines(), std::vector<std::string>{"missed count=1 entry=0 slot=13:00:00"});
    EXPECT_TRUE(runs_.Started().empty());
  }
  // Down from 13:10 until 14:02: the 14:00 slot is recent and runs, late.
  clock_.Set(kNoon + 2h + 2min);
  auto scheduler = Open(Schedule("0 0 * * * *"), state);
  scheduler->Tick();
  EXPECT_TRUE(events_.WaitFor("started entry=0 late=120s slot=14:00:00"));
  ASSERT_TRUE(runs_.WaitStarted(1));
  EXPECT_EQ(runs_.Started()[0].slot, kNoon + 2h);
}

TEST_F(SchedulerTest, OfSeveralSlotsMissedOnlyTheLatestRuns) {
  const std::string state = directory_ + "/state.json";
  runs_.Release();
  { auto scheduler = Open(Schedule("0 * * * * *"), state); }
  clock_.Set(kNoon + 4min + 20s);  // 12:01 to 12:04 came while it was down
  auto scheduler = Open(Schedule("0 * * * * *"), state);
  scheduler->Tick();
  EXPECT_TRUE(events_.WaitFor("started entry=0 late=20s slot=12:04:00"));
  EXPECT_EQ(events_.Lines()[0], "missed count=3 entry=0 last=12:03:00 slot=12:01:00");
}

TEST_F(SchedulerTest, ARunInProgressWhenTheSchedulerDiedIsReportedInterrupted) {
  const std::string state = directory_ + "/state.json";
  const std::string crashed = directory_ + "/crashed.json";
  {
    auto scheduler = Open(Schedule("0 * * * * *"), state);
    clock_.Set(kNoon + 1min);
    scheduler->Tick();
    ASSERT_TRUE(events_.WaitFor("started"));
    // The state as a scheduler killed now would leave it.
    std::filesystem::copy_file(state, crashed);
    runs_.Release();
  }
  clock_.Set(kNoon + 1min + 10s);
  auto scheduler = Open(Schedule("0 * * * * *"), crashed);
  EXPECT_EQ(events_.Lines().back(), "interrupted entry=0 slot=12:01:00");
  scheduler->Tick();
  EXPECT_EQ(runs_.Started().size(), 1u) << "the interrupted slot is not run again";
}

TEST_F(SchedulerTest, AnUnreadableStateFileIsAnError) {
  const std::string state = directory_ + "/state.json";
  std::ofstream(state) << "{entries: [";
  SchedulerOptions options;
  options.state_path = state;
  options.launch = [](const ScheduledRun&, const std::atomic<bool>&) { return 0; };
  auto scheduler = Scheduler::Open({Schedule("0 * * * * *")}, options);
  ASSERT_FALSE(scheduler.ok());
  EXPECT_TRUE(std::string(scheduler.status().message()).starts_with("state file " + state + ": not readable"))
      << scheduler.status();
}

TEST(Blackouts, ACronWindowCoversItsDurationFromEachMatch) {
  ScheduleFile schedule;
  Blackout window;
  window.cron = *Cron::Parse("0 0 24 12 *");
  window.duration = 48h;
  schedule.blackouts.push_back(window);
  const SysSeconds christmas_eve = sys_days(2026y / December / 24);
  EXPECT_FALSE(InBlackout(schedule, christmas_eve - 1s));
  EXPECT_TRUE(InBlackout(schedule, christmas_eve));
  EXPECT_TRUE(InBlackout(schedule, christmas_eve + 48h - 1s));
  EXPECT_FALSE(InBlackout(schedule, christmas_eve + 48h));
  EXPECT_EQ(NextBlackout(schedule, sys_days(2026y / June / 1)), christmas_eve);
}

}  // namespace
}  // namespace faultline::ctl

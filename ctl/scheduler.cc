#include "scheduler.h"

#include <fcntl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "faultline/api/cat.h"
#include "faultline/api/file_descriptor.h"
#include "log.h"

namespace faultline::ctl {
namespace {

using api::Cat;
using std::chrono::seconds;

constexpr auto kLongestSleep = std::chrono::minutes(1);  // Tick again at least this often
constexpr auto kSignalPoll = std::chrono::milliseconds(200);
constexpr int kMostSlotsCounted = 100000;  // slots missed beyond this are skipped without counting

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(Cat(what, ": ", std::strerror(errno)));
}

// `text` into `path` whole or not at all: a temporary file, fsync, rename over the old one, and an
// fsync of the directory so that the rename itself survives a crash.
absl::Status WriteAtomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    api::FileDescriptor file(open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (file.get() < 0) return Errno(Cat("state file ", temporary));
    for (size_t written = 0; written < text.size();) {
      ssize_t n = write(file.get(), text.data() + written, text.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Errno(Cat("state file ", temporary));
      written += static_cast<size_t>(n);
    }
    if (fsync(file.get()) != 0) return Errno(Cat("state file ", temporary));
  }
  if (rename(temporary.c_str(), path.c_str()) != 0) return Errno(Cat("state file ", path));
  std::string directory = std::filesystem::path(path).parent_path().string();
  api::FileDescriptor parent(
      open(directory.empty() ? "." : directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (parent.get() < 0 || fsync(parent.get()) != 0) return Errno(Cat("state file directory ", directory));
  return absl::OkStatus();
}

std::string Absolute(const std::string& path) {
  return std::filesystem::absolute(path).lexically_normal().string();
}

}  // namespace

bool InBlackout(const ScheduleFile& schedule, SysSeconds instant) {
  for (const Blackout& window : schedule.blackouts) {
    if (window.cron) {
      // Inside a window that began at a match m when m is in (instant - duration, instant].
      auto began = window.cron->Next(instant - window.duration, window.zone);
      if (began.ok() && *began <= instant) return true;
    } else if (window.from <= instant && instant < window.to) {
      return true;
    }
  }
  return false;
}

std::optional<SysSeconds> NextBlackout(const ScheduleFile& schedule, SysSeconds instant) {
  std::optional<SysSeconds> next;
  for (const Blackout& window : schedule.blackouts) {
    std::optional<SysSeconds> begins;
    if (window.cron) {
      if (auto found = window.cron->Next(instant, window.zone); found.ok()) begins = *found;
    } else if (window.from > instant) {
      begins = window.from;
    }
    if (begins && (!next || *begins < *next)) next = begins;
  }
  return next;
}

Scheduler::Scheduler(std::vector<ScheduleFile> schedules, SchedulerOptions options)
    : schedules_(std::move(schedules)), options_(std::move(options)) {
  if (!options_.journal.empty()) journal_.open(options_.journal, std::ios::app);
  for (const ScheduleFile& schedule : schedules_) {
    for (size_t i = 0; i < schedule.runs.size(); i++) {
      Entry entry;
      entry.schedule = &schedule;
      entry.index = i;
      entry.key = Cat(schedule.metadata.name, "\n", Absolute(schedule.runs[i].path), "\n",
                      schedule.runs[i].cron.text());
      entries_.push_back(std::move(entry));
    }
  }
}

absl::StatusOr<std::unique_ptr<Scheduler>> Scheduler::Open(std::vector<ScheduleFile> schedules,
                                                           SchedulerOptions options) {
  std::unique_ptr<Scheduler> scheduler(new Scheduler(std::move(schedules), std::move(options)));
  std::lock_guard lock(scheduler->mutex_);
  if (absl::Status restored = scheduler->Restore(); !restored.ok()) return restored;
  if (absl::Status saved = scheduler->Save(); !saved.ok()) return saved;  // writable, before any run
  return scheduler;
}

Scheduler::~Scheduler() { Stop(); }

std::map<std::string, std::string> Scheduler::Describe(const Entry& entry, SysSeconds slot) const {
  return {{"schedule", entry.schedule->metadata.name},
          {"entry", Cat(entry.index)},
          {"experiment", entry.schedule->runs[entry.index].name},
          {"slot", FormatTime(slot)}};
}

void Scheduler::Emit(const std::string& event, std::map<std::string, std::string> fields) {
  std::erase_if(fields, [](const auto& field) { return field.second.empty(); });
  const RunEvent recorded{options_.clock(), "schedule", event, std::move(fields)};
  if (options_.observe) options_.observe(recorded);
  if (!journal_.is_open()) return;
  journal_ << "{\"time\":\"" << FormatTime(recorded.time) << "\",\"phase\":\"schedule\",\"event\":\"" << event
           << "\"";
  for (const auto& [key, value] : recorded.fields)
    journal_ << "," << log::JsonQuote(key) << ":" << log::JsonQuote(value);
  journal_ << "}\n" << std::flush;
}

absl::Status Scheduler::Restore() {
  const SysSeconds now = std::chrono::floor<seconds>(options_.clock());
  // Without a record, an entry's plan starts now: a slot at this very second is due.
  for (Entry& entry : entries_) entry.last = now - seconds(1);
  if (options_.state_path.empty() || !std::filesystem::exists(options_.state_path)) return absl::OkStatus();
  YAML::Node root;
  try {
    root = YAML::LoadFile(options_.state_path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(Cat("state file ", options_.state_path, ": not readable: ", e.what()));
  }
  std::map<std::string, Entry*> by_key;
  for (Entry& entry : entries_) by_key[entry.key] = &entry;
  try {
    for (const YAML::Node& saved : root["entries"]) {
      const std::string key = Cat(saved["schedule"].as<std::string>(), "\n", saved["file"].as<std::string>(),
                                  "\n", saved["cron"].as<std::string>());
      auto found = by_key.find(key);
      if (found == by_key.end()) continue;  // an entry since removed from its schedule
      Entry& entry = *found->second;
      entry.last = SysSeconds(seconds(saved["last"].as<int64_t>()));
      entry.outcome = saved["outcome"].as<std::string>("");
      if (saved["running"].IsDefined() && !saved["running"].IsNull()) {
        // The scheduler died during this run; its agents reverted when the leases lapsed.
        const SysSeconds slot(seconds(saved["running"].as<int64_t>()));
        entry.outcome = "interrupted";
        Emit("interrupted", Describe(entry, slot));
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        Cat("state file ", options_.state_path, ": not a schedule state: ", e.what()));
  }
  return absl::OkStatus();
}

absl::Status Scheduler::Save() {
  if (options_.state_path.empty()) return absl::OkStatus();
  std::string json = "{\"version\":1,\"entries\":[";
  for (size_t i = 0; i < entries_.size(); i++) {
    const Entry& entry = entries_[i];
    const std::string& key = entry.key;
    const size_t first = key.find('\n'), second = key.find('\n', first + 1);
    json += Cat(i ? ",\n" : "\n", "{\"schedule\":", log::JsonQuote(key.substr(0, first)),
                ",\"file\":", log::JsonQuote(key.substr(first + 1, second - first - 1)),
                ",\"cron\":", log::JsonQuote(key.substr(second + 1)),
                ",\"last\":", entry.last->time_since_epoch().count(), ",\"lastSlot\":\"",
                FormatTime(*entry.last), "\",\"outcome\":", log::JsonQuote(entry.outcome));
    if (entry.running) json += Cat(",\"running\":", entry.running->time_since_epoch().count());
    json += "}";
  }
  return WriteAtomically(options_.state_path, json + "\n]}\n");
}

void Scheduler::Start(Entry& entry, SysSeconds slot, SystemTime now) {
  const ScheduleEntry& spec = entry.schedule->runs[entry.index];
  ScheduledRun run{entry.schedule->metadata.name, entry.index, spec.path, spec.kind, spec.name,
                   entry.schedule->inventory,     slot};
  entry.running = slot;
  entry.outcome = "running";
  busy_.insert(Absolute(spec.path));
  std::map<std::string, std::string> fields = Describe(entry, slot);
  const auto late = std::chrono::duration_cast<seconds>(now - slot);
  fields["late"] = late >= seconds(1) ? Cat(late.count(), "s") : "";
  Emit("started", std::move(fields));
  // Recorded before it starts: a scheduler that dies during the run finds it in the state.
  if (absl::Status saved = Save(); !saved.ok())
    Emit("state-not-saved", {{"error", std::string(saved.message())}});
  ActiveRun& active = active_.emplace_back();
  active.entry = &entry;
  // The thread takes mutex_ only once the launcher returns, after Tick (which holds it) has set
  // `thread`, so Reap never sees `done` on a run whose thread is unset.
  active.thread = std::thread([this, &active, run] {
    const int code = options_.launch(run, active.abort);
    std::lock_guard lock(mutex_);
    Entry& ended = *active.entry;
    ended.running.reset();
    ended.outcome = Cat("exit ", code,
                        active.blackout ? " (aborted: blackout)"
                        : active.abort  ? " (aborted)"
                                        : "");
    busy_.erase(Absolute(run.path));
    std::map<std::string, std::string> fields = Describe(ended, run.slot);
    fields["exit"] = Cat(code);
    fields["aborted"] = active.blackout ? "blackout" : active.abort ? "stopping" : "";
    Emit("finished", std::move(fields));
    if (absl::Status saved = Save(); !saved.ok())
      Emit("state-not-saved", {{"error", std::string(saved.message())}});
    active.done = true;
    changed_.notify_all();
  });
}

void Scheduler::Reap() {
  for (auto it = active_.begin(); it != active_.end();) {
    if (!it->done) {
      ++it;
      continue;
    }
    it->thread.join();
    it = active_.erase(it);
  }
}

SystemTime Scheduler::Tick() {
  std::lock_guard lock(mutex_);
  Reap();
  const SystemTime now_exactly = options_.clock();
  const SysSeconds now = std::chrono::floor<seconds>(now_exactly);
  for (ActiveRun& active : active_) {
    if (active.done || active.abort || !InBlackout(*active.entry->schedule, now)) continue;
    active.blackout = true;
    active.abort = true;
    Emit("blackout-begins", Describe(*active.entry, *active.entry->running));
  }

  SysSeconds wake = std::chrono::ceil<seconds>(now_exactly + kLongestSleep);
  bool changed = false;
  for (Entry& entry : entries_) {
    const ScheduleEntry& spec = entry.schedule->runs[entry.index];
    // The slots since the last one handled: only the latest can still run, and only within the
    // starting deadline; the others are missed.
    bool has_due = false;
    SysSeconds due{};
    int missed = 0;
    SysSeconds first_missed{}, last_missed{};
    auto miss = [&](SysSeconds slot) {
      if (missed++ == 0) first_missed = slot;
      last_missed = slot;
    };
    for (int counted = 0;; counted++) {
      if (counted == kMostSlotsCounted) {
        entry.last = std::max(*entry.last, now - entry.schedule->starting_deadline - seconds(1));
      }
      auto next = spec.cron.Next(*entry.last, spec.zone);
      if (!next.ok()) break;  // never again (Parse refuses a cron that never matches)
      if (*next > now) {
        wake = std::min(wake, *next);
        break;
      }
      if (has_due) miss(due);
      has_due = true;
      due = *next;
      entry.last = *next;
    }
    if (has_due && now - due > entry.schedule->starting_deadline) {
      miss(due);
      has_due = false;
    }
    if (missed > 0) {
      entry.outcome = "missed";
      std::map<std::string, std::string> fields = Describe(entry, first_missed);
      fields["count"] = Cat(missed);
      fields["last"] = missed > 1 ? FormatTime(last_missed) : "";
      Emit("missed", std::move(fields));
      changed = true;
    }
    if (!has_due) continue;
    changed = true;
    if (InBlackout(*entry.schedule, due) || InBlackout(*entry.schedule, now)) {
      entry.outcome = "skipped-blackout";
      Emit("skipped-blackout", Describe(entry, due));
    } else if (busy_.contains(Absolute(spec.path))) {
      entry.outcome = "skipped-running";
      Emit("skipped-running", Describe(entry, due));
    } else {
      Start(entry, due, now_exactly);
    }
  }
  // Wake when a window begins over a run in progress.
  for (const ActiveRun& active : active_) {
    if (active.done) continue;
    if (auto begins = NextBlackout(*active.entry->schedule, now)) wake = std::min(wake, *begins);
  }
  if (changed) {
    if (absl::Status saved = Save(); !saved.ok())
      Emit("state-not-saved", {{"error", std::string(saved.message())}});
  }
  return SystemTime(wake);
}

void Scheduler::Run(const std::atomic<bool>& stop) {
  while (!stop) {
    const SystemTime wake = Tick();
    std::unique_lock lock(mutex_);
    const auto left = wake - options_.clock();
    // Polled: a signal handler can set `stop` but cannot notify a condition variable.
    if (left > SystemTime::duration::zero())
      changed_.wait_for(lock, std::min<SystemTime::duration>(left, kSignalPoll));
  }
  Stop();
}

void Scheduler::Stop() {
  std::unique_lock lock(mutex_);
  size_t running = 0;
  for (ActiveRun& active : active_) {
    running += !active.done;
    active.abort = true;
  }
  if (running > 0) Emit("stopping", {{"runs", Cat(running)}});
  lock.unlock();
  // Only this thread (the one that ticks) changes active_; the runs' threads lock mutex_ to finish.
  for (ActiveRun& active : active_) {
    if (active.thread.joinable()) active.thread.join();
  }
  lock.lock();
  active_.clear();
}

size_t Scheduler::Running() {
  std::lock_guard lock(mutex_);
  return static_cast<size_t>(
      std::count_if(active_.begin(), active_.end(), [](const ActiveRun& a) { return !a.done; }));
}

}  // namespace faultline::ctl

#include "kernel/journal.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <net/if.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "faultline/api/cat.h"
#include "kernel/proto_json.h"
#include "kernel/qdisc.h"
#include "kernel/tc.h"
#include "kernel/worker_process.h"
#include "log.h"

namespace faultline::kernel {
namespace {

using api::Cat;

std::atomic<Journal*> installed{nullptr};

// Changes recorded in another boot are gone with it: nothing in the kernel survives a reboot.
const std::string& BootId() {
  static const std::string boot_id = [] {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string id;
    std::getline(in, id);
    return id;
  }();
  return boot_id;
}

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError(std::strerror(n < 0 ? errno : EIO));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string ToJsonLine(const journal::Line& line) { return ProtoJson(line) + "\n"; }

// What undoing one change did ("removed", "restored ..."); NOT_FOUND: there was nothing to undo.
absl::StatusOr<std::string> Undo(const journal::Change& change) {
  if (!change.boot_id().empty() && change.boot_id() != BootId()) {
    return absl::NotFoundError("recorded before the machine last booted");
  }
  switch (change.object_case()) {
    case journal::Change::kClsact:
      return UndoRecordedClsact(change.clsact());
    case journal::Change::kFilter:
      return UndoRecordedFilter(change.filter());
    case journal::Change::kQdisc:
      return UndoRecordedQdisc(change.qdisc());
    case journal::Change::kRoot:
      return UndoRecordedRoot(change.root());
    case journal::Change::kHtbClass:
      return UndoRecordedHtbClass(change.htb_class());
    case journal::Change::kIfb:
      return UndoRecordedIfb(change.ifb());
    case journal::Change::kProcess:
      return UndoRecordedProcess(change.process());
    case journal::Change::OBJECT_NOT_SET:
      break;
  }
  // Written by a newer agent: left open for an agent that knows how to undo it.
  return absl::UnimplementedError("a kind of change this agent does not know");
}

}  // namespace

void JournalEntry::Done() {
  if (journal_ != nullptr) journal_->Complete(id_, true);
  journal_ = nullptr;
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& state_dir) {
  int directory = open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (directory < 0) return absl::FailedPreconditionError(Cat(state_dir, ": ", std::strerror(errno)));
  if (flock(directory, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(directory);
    return absl::FailedPreconditionError(
        Cat(state_dir, ": ",
            err == EWOULDBLOCK ? "another faultlined uses this state directory" : std::strerror(err)));
  }
  std::string path = Cat(state_dir, "/journal");
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    close(directory);
    return absl::FailedPreconditionError(Cat(path, ": ", std::strerror(err)));
  }
  auto journal = std::unique_ptr<Journal>(new Journal(directory, fd, path));

  std::ifstream in(path);
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  std::map<uint64_t, journal::Change> open;
  std::string text;
  for (int number = 1; std::getline(in, text); number++) {
    journal->dirty_ = true;
    journal::Line line;
    if (text.empty()) continue;
    if (!google::protobuf::util::JsonStringToMessage(text, &line, options).ok() || line.id() == 0) {
      // A line torn by a crash while it was written: its change was not made yet.
      log::Warning("journal.unreadable_line").With("path", path).With("line", number).With("text", text);
      continue;
    }
    journal->next_id_ = std::max(journal->next_id_, line.id() + 1);
    if (line.has_change()) {
      open[line.id()] = line.change();
      journal->open_[line.id()] = text + "\n";
    } else {
      open.erase(line.id());
      journal->open_.erase(line.id());
    }
  }
  journal->found_.assign(open.begin(), open.end());
  journal->first_own_id_ = journal->next_id_;
  return journal;
}

Journal::~Journal() {
  Journal* self = this;
  installed.compare_exchange_strong(self, nullptr);
  close(fd_);
  close(directory_fd_);  // and with it the lock
}

void Journal::Install(Journal* journal) { installed = journal; }

absl::StatusOr<JournalEntry> Journal::Record(journal::Change change) {
  std::lock_guard lock(mutex_);
  change.set_time(log::Timestamp());
  change.set_boot_id(BootId());
  journal::Line line;
  line.set_id(next_id_);
  *line.mutable_change() = std::move(change);
  std::string text = ToJsonLine(line);
  // One write(2) per line: O_APPEND keeps the lines whole and in order.
  // Not fsync'd: the line must outlive this process, not the machine. Once write(2) returns, the page
  // cache holds it for the next agent even after a kill -9; a reboot removes every change it records
  // (qdiscs, filters, ifb devices, processes), and the boot_id makes the replay skip it.
  absl::Status written = Append(text);
  if (!written.ok()) {
    return absl::UnavailableError(Cat("cannot write the journal ", path_, " (", written.message(),
                                      "), so faultline does not make the change: ", line.change().what()));
  }
  open_[next_id_] = text;
  dirty_ = true;
  if (++writes_ == crash_after_) {
    log::Warning("journal.test_crash").With("writes", writes_).With("what", line.change().what());
    kill(getpid(), SIGKILL);
  }
  return JournalEntry(this, next_id_++);
}

void Journal::Complete(uint64_t id, bool compact) {
  std::lock_guard lock(mutex_);
  if (open_.erase(id) == 0) return;
  // Once every change this process made is undone; entries whose replay failed are kept. The done
  // line would go with the compaction, so it is written only when the compaction fails.
  if (compact && open_.lower_bound(first_own_id_) == open_.end() && Compact()) return;
  journal::Line line;
  line.set_id(id);
  line.mutable_done()->set_time(log::Timestamp());
  // A done line that never reaches the file (a full disk) only makes the next start undo the change
  // again, which finds nothing: every undo is idempotent.
  if (absl::Status written = Append(ToJsonLine(line)); !written.ok()) {
    log::Warning("journal.write_failed").With("path", path_).With("error", written.ToString());
  }
}

absl::Status Journal::Append(std::string_view line) {
  // The end before the write: O_APPEND writes there, and only this agent writes (the directory lock).
  const off_t end = lseek(fd_, 0, SEEK_END);
  absl::Status written = WriteAll(fd_, line);
  if (!written.ok() && end >= 0 && ftruncate(fd_, end) != 0) {
    log::Warning("journal.truncate_failed").With("path", path_).With("error", std::strerror(errno));
  }
  return written;
}

bool Journal::Compact() {
  if (!dirty_) return true;
  // Nothing left: emptied in place, in one step as a rename is (a tenth of a revert's CPU less than
  // a new file, its rename and the old one's deletion; bench/inject-latency).
  if (open_.empty()) {
    if (ftruncate(fd_, 0) == 0) {
      dirty_ = false;
      return true;
    }
    log::Warning("journal.truncate_failed").With("path", path_).With("error", std::strerror(errno));
  }
  std::string temporary = path_ + ".new";
  int fd = open(temporary.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  absl::Status status = fd < 0 ? absl::UnavailableError(std::strerror(errno)) : absl::OkStatus();
  for (auto it = open_.begin(); status.ok() && it != open_.end(); ++it) status = WriteAll(fd, it->second);
  // The new file's contents, then its name: an agent killed at any point leaves either the old journal
  // or the new one, each whole (rename(2) is atomic; as with Record, nothing here must survive a reboot).
  if (status.ok() && rename(temporary.c_str(), path_.c_str()) != 0) {
    status = absl::UnavailableError(std::strerror(errno));
  }
  if (!status.ok()) {
    if (fd >= 0) close(fd);
    unlink(temporary.c_str());
    log::Warning("journal.compact_failed").With("path", path_).With("error", status.ToString());
    return false;
  }
  close(fd_);
  fd_ = fd;  // renamed: this is the journal now
  dirty_ = !open_.empty();
  return true;
}

ReplaySummary Journal::Replay() {
  const auto start = std::chrono::steady_clock::now();
  ReplaySummary summary;
  summary.entries = static_cast<int>(found_.size());
  // Newest first: a filter before the clsact it hangs on, a leaf qdisc before its class, a class
  // before the root it is in, a root before the ifb device it is on.
  for (auto it = found_.rbegin(); it != found_.rend(); ++it) {
    const auto& [id, change] = *it;
    absl::StatusOr<std::string> undone = Undo(change);
    if (undone.ok()) {
      summary.undone++;
      log::Info("journal.undone").With("what", change.what()).With("how", *undone);
    } else if (absl::IsNotFound(undone.status())) {
      summary.nothing_to_undo++;
      log::Info("journal.nothing_to_undo")
          .With("what", change.what())
          .With("why", std::string(undone.status().message()));
    } else {
      summary.failed++;
      log::Error("journal.undo_failed").With("what", change.what()).With("error", undone.status().ToString());
      continue;
    }
    Complete(id, false);
  }
  found_.clear();
  {
    std::lock_guard lock(mutex_);
    Compact();
  }
  summary.took =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
  log::Info("journal.replayed")
      .With("path", path_)
      .With("entries", summary.entries)
      .With("undone", summary.undone)
      .With("nothing_to_undo", summary.nothing_to_undo)
      .With("failed", summary.failed)
      .With("took_ms", static_cast<double>(summary.took.count()) / 1000);
  return summary;
}

absl::StatusOr<JournalEntry> RecordChange(journal::Change change) {
  Journal* journal = installed.load();
  if (journal == nullptr) return JournalEntry();
  return journal->Record(std::move(change));
}

journal::Device RecordDevice(const Netns& netns, const std::string& name, int ifindex) {
  journal::Device device;
  *device.mutable_netns() = netns.Record();
  device.set_name(name);
  device.set_ifindex(ifindex);
  return device;
}

absl::StatusOr<std::shared_ptr<Netns>> ReopenDevice(const journal::Device& device) {
  auto netns = Netns::Reopen(device.netns());
  if (!netns.ok()) return netns.status();
  auto scope = NetnsScope::Enter(**netns);
  if (!scope.ok()) return scope.status();
  char name[IF_NAMESIZE] = "";
  if (device.ifindex() <= 0 || if_indextoname(static_cast<unsigned>(device.ifindex()), name) == nullptr) {
    return absl::NotFoundError(
        Cat("device ", device.name(), " (index ", device.ifindex(), ") is gone from ", (*netns)->Describe()));
  }
  if (device.name() != name) {
    return absl::NotFoundError(Cat("device ", device.name(), " is gone from ", (*netns)->Describe(),
                                   " (index ", device.ifindex(), " is ", name, " now)"));
  }
  return netns;
}

}  // namespace faultline::kernel

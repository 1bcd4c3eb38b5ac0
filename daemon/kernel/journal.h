// The journal: every kernel change faultline makes is written to STATE_DIR/journal before it is made, and
// marked done once it is undone, so that an agent started after a crash undoes what the crashed one left
// behind (Journal::Replay). Legacy tc objects (qdiscs, cls_bpf filters, ifb devices) outlive the process that
// made them; BPF programs and maps do not, unless a filter holds them, so the filter's entry covers its
// program.
//
// The kernel layer's RAII classes record their own changes (RecordChange) and complete the entries
// when they undo them (JournalEntry::Done); fault drivers never see the journal. A process has one
// journal, which faultlined installs before it serves; without one (unit and kernel tests) nothing is
// recorded.
//
// The file holds one JSON object per line: protobuf's JSON of journal::Line (journal.proto). JSON
// lines because a person can read and grep the file, a torn last line (a crash mid-write) is one
// line that fails to parse and is skipped without losing the others, and appends are one write(2)
// each; protobuf's JSON because the schema, the escaping and the parser come tested, and unknown
// fields are ignored. For example:
//   {"id":"3","change":{"what":"cls_bpf egress at the kernel's priority handle 0x1 on fl-host in netns
//    /run/netns/x running fl_drop_egress:[812]","time":"...","boot_id":"...","filter":{"device":{...},
//    "hook":"egress","handle":1,"name":"fl_drop_egress:[812]"}}}
//   {"id":"3","done":{"time":"..."}}
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "kernel/journal.pb.h"
#include "kernel/netns.h"

namespace faultline::kernel {

class Journal;

// One recorded change. Done() closes the entry once the change is undone, or was never made. An
// entry dropped without Done() stays open, so the next start tries the undo again: that is what
// becomes of a change whose undo failed.
class JournalEntry {
 public:
  JournalEntry() = default;  // no journal installed: nothing to close
  JournalEntry(JournalEntry&& other) noexcept { *this = std::move(other); }
  JournalEntry& operator=(JournalEntry&& other) noexcept {
    std::swap(journal_, other.journal_);
    std::swap(id_, other.id_);
    return *this;
  }
  ~JournalEntry() = default;
  void Done();

 private:
  friend class Journal;
  JournalEntry(Journal* journal, uint64_t id) : journal_(journal), id_(id) {}
  Journal* journal_ = nullptr;
  uint64_t id_ = 0;
};

// What a replay found, as its summary log line says.
struct ReplaySummary {
  int entries = 0;          // open entries in the journal
  int undone = 0;           // changes undone
  int nothing_to_undo = 0;  // already gone, never made, or in a namespace that is gone
  int failed = 0;           // undo failed: the entry stays open for the next start
  std::chrono::microseconds took{0};
};

class Journal {
 public:
  // Opens STATE_DIR/journal (creating it) and reads its open entries. Locks the state directory
  // (flock), so a second agent on it is refused instead of replaying a live agent's changes.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& state_dir);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Undoes the changes of every entry open when the journal was opened, newest first: each undo
  // is idempotent (an object already gone is fine), acts only in the namespace the entry names
  // (same path and identity) and only on objects that are still faultline's. Logs each change
  // ("journal.undone", "journal.nothing_to_undo", "journal.undo_failed") and a summary
  // ("journal.replayed"), then compacts the file. Call once, before any Record.
  ReplaySummary Replay();

  // Writes `change` (one write(2); not fsync'd, as nothing it records survives a reboot): only then may the
  // change be made. An error means the change must not be made.
  absl::StatusOr<JournalEntry> Record(journal::Change change);

  // Test only (faultlined --test-crash-after-journal-writes): SIGKILLs the process right after the
  // `writes`th Record is on disk, before its change is made.
  void CrashAfterWrites(int writes) { crash_after_ = writes; }

  const std::string& path() const { return path_; }

  // The journal RecordChange writes to; nullptr uninstalls. Not owned.
  static void Install(Journal* journal);

 private:
  friend class JournalEntry;
  Journal(int directory_fd, int fd, std::string path)
      : directory_fd_(directory_fd), fd_(fd), path_(std::move(path)) {}
  void Complete(uint64_t id, bool compact);
  // Appends `line` whole, or nothing: after a short write (a full disk) the file is cut back to where
  // it ended, so that the next line does not land on a torn one, which the replay could not parse.
  absl::Status Append(std::string_view line);
  // Rewrites the file with the open entries only, atomically: emptied in place when none is open, else
  // a new file renamed over the old one. False when it could not (logged); the file is then as it was.
  bool Compact();

  const int directory_fd_;  // the state directory, locked
  int fd_;                  // the journal, O_APPEND
  const std::string path_;
  std::mutex mutex_;
  uint64_t next_id_ = 1;
  uint64_t first_own_id_ = 1;                                // entries before it were found open in the file
  std::map<uint64_t, std::string> open_;                     // id -> its line, for compaction
  std::vector<std::pair<uint64_t, journal::Change>> found_;  // open when the journal was opened
  bool dirty_ = false;                                       // lines written since the last compaction
  int writes_ = 0;
  int crash_after_ = 0;
};

// Records `change` in the installed journal; an empty entry when none is installed.
absl::StatusOr<JournalEntry> RecordChange(journal::Change change);

// The journal's name for a device: its namespace (path and identity), name and index.
journal::Device RecordDevice(const Netns& netns, const std::string& name, int ifindex);

// For a replay: the namespace of a recorded device, if its path still leads to the recorded namespace
// and the device is still there with the recorded index and name; NOT_FOUND otherwise.
absl::StatusOr<std::shared_ptr<Netns>> ReopenDevice(const journal::Device& device);

}  // namespace faultline::kernel

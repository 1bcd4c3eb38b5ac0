// The journal's file handling, without privileges: entries open until done, read back by the next
// agent, torn lines, compaction, the state directory's lock, and the replay's refusal to act in a
// namespace or boot other than the recorded one. Undoing real kernel objects is covered by the root
// suites (tests/integration/crash_safety_test.cc).
#include "kernel/journal.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "faultline/api/cat.h"

namespace faultline::kernel {
namespace {

using api::Cat;

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/faultline-journal-unit-XXXXXX";
    dir_ = mkdtemp(dir_template);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Journal> OpenJournal() {
    auto journal = Journal::Open(dir_);
    EXPECT_TRUE(journal.ok()) << journal.status();
    return journal.ok() ? *std::move(journal) : nullptr;
  }

  std::string Contents() const {
    std::ifstream in(Cat(dir_, "/journal"));
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  ino_t Inode() const {
    struct stat st {};
    return stat(Cat(dir_, "/journal").c_str(), &st) == 0 ? st.st_ino : 0;
  }

  // A qdisc in a namespace that does not exist: a replay finds nothing to undo.
  static journal::Change QdiscIn(const std::string& netns_path, uint64_t inode = 1) {
    journal::Change change;
    change.set_what(Cat("tbf 2: root on fl-a in netns ", netns_path));
    journal::Qdisc* qdisc = change.mutable_qdisc();
    qdisc->mutable_device()->mutable_netns()->set_path(netns_path);
    qdisc->mutable_device()->mutable_netns()->set_inode(inode);
    qdisc->mutable_device()->set_name("fl-a");
    qdisc->mutable_device()->set_ifindex(2);
    qdisc->set_kind("tbf");
    qdisc->set_parent(0xffffffff);
    qdisc->set_handle(0x20000);
    return change;
  }

  std::string dir_;
};

TEST_F(JournalTest, EntriesStayOpenUntilDoneAndTheNextAgentReplaysThem) {
  {
    auto journal = OpenJournal();
    ASSERT_NE(journal, nullptr);
    auto first = journal->Record(QdiscIn("/run/netns/fl-unit-absent-1"));
    auto second = journal->Record(QdiscIn("/run/netns/fl-unit-absent-2"));
    auto third = journal->Record(QdiscIn("/run/netns/fl-unit-absent-3"));
    ASSERT_TRUE(first.ok() && second.ok() && third.ok());
    second->Done();
    // The agent "dies" here: entries 1 and 3 were never marked done.
  }
  std::string text = Contents();
  EXPECT_NE(text.find("\"what\":\"tbf 2: root on fl-a in netns /run/netns/fl-unit-absent-1\""),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("{\"id\":\"2\",\"done\":"), std::string::npos) << text;

  auto journal = OpenJournal();
  ASSERT_NE(journal, nullptr);
  ReplaySummary summary = journal->Replay();
  EXPECT_EQ(summary.entries, 2);
  EXPECT_EQ(summary.nothing_to_undo, 2);  // their namespaces are gone
  EXPECT_EQ(summary.undone + summary.failed, 0);
  EXPECT_EQ(Contents(), "") << "the replay compacts the journal";
  // Ids go on after the ones in the file, so a done line never closes an older entry.
  auto next = journal->Record(QdiscIn("/run/netns/fl-unit-absent-4"));
  ASSERT_TRUE(next.ok());
  // Emptied in place, the file takes the next line at its start.
  EXPECT_EQ(Contents().rfind("{\"id\":\"4\"", 0), 0u) << Contents();
}

TEST_F(JournalTest, TheFileIsCompactedOnceNothingIsOpen) {
  auto journal = OpenJournal();
  ASSERT_NE(journal, nullptr);
  journal->Replay();
  auto first = journal->Record(QdiscIn("/run/netns/fl-unit-absent"));
  auto second = journal->Record(QdiscIn("/run/netns/fl-unit-absent"));
  ASSERT_TRUE(first.ok() && second.ok());
  first->Done();
  EXPECT_NE(Contents(), "") << "an entry is still open";
  const ino_t inode = Inode();
  second->Done();
  EXPECT_EQ(Contents(), "");
  EXPECT_EQ(Inode(), inode) << "emptied in place, not replaced";
  EXPECT_FALSE(std::filesystem::exists(Cat(dir_, "/journal.new")));
  // The next change goes on from there, alone in the file.
  auto third = journal->Record(QdiscIn("/run/netns/fl-unit-absent"));
  ASSERT_TRUE(third.ok());
  const std::string text = Contents();
  EXPECT_EQ(text.rfind("{\"id\":\"3\",\"change\"", 0), 0u) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
}

// An entry whose replay failed stays open: compacting this agent's own entries away then rewrites the
// file with that entry alone, through a new file.
TEST_F(JournalTest, CompactionKeepsAnEntryWhoseReplayFailed) {
  {
    auto journal = OpenJournal();
    ASSERT_NE(journal, nullptr);
    journal::Change unknown;  // no object: a kind of change this agent cannot undo
    unknown.set_what("from a newer agent");
    ASSERT_TRUE(journal->Record(unknown).ok());
  }
  auto journal = OpenJournal();
  ASSERT_NE(journal, nullptr);
  EXPECT_EQ(journal->Replay().failed, 1);
  auto own = journal->Record(QdiscIn("/run/netns/fl-unit-absent"));
  ASSERT_TRUE(own.ok());
  own->Done();
  const std::string text = Contents();
  EXPECT_EQ(text.rfind("{\"id\":\"1\",\"change\":{\"what\":\"from a newer agent\"", 0), 0u) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_FALSE(std::filesystem::exists(Cat(dir_, "/journal.new")));
}

TEST_F(JournalTest, ATornLastLineIsSkipped) {
  {
    auto journal = OpenJournal();
    ASSERT_NE(journal, nullptr);
    ASSERT_TRUE(journal->Record(QdiscIn("/run/netns/fl-unit-absent")).ok());
  }
  std::ofstream(Cat(dir_, "/journal"), std::ios::app) << "{\"id\":\"2\",\"change\":{\"what\":\"tbf";
  auto journal = OpenJournal();
  ASSERT_NE(journal, nullptr);
  EXPECT_EQ(journal->Replay().entries, 1);
}

// A file size limit of the process (RLIMIT_FSIZE) for a scope: writes past it are cut short, as on a
// full disk. SIGXFSZ is ignored meanwhile, so the write fails with EFBIG instead of killing the test.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    saved_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, saved_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  sighandler_t saved_handler_ = SIG_DFL;
};

TEST_F(JournalTest, AShortWriteLeavesNoTornLineForTheNextOneToLandOn) {
  auto journal = OpenJournal();
  ASSERT_NE(journal, nullptr);
  ASSERT_TRUE(journal->Record(QdiscIn("/run/netns/fl-unit-absent-1")).ok());
  const auto size = std::filesystem::file_size(Cat(dir_, "/journal"));
  {
    FileSizeLimit limit(size + 10);  // the next line gets 10 bytes in
    auto refused = journal->Record(QdiscIn("/run/netns/fl-unit-absent-2"));
    EXPECT_TRUE(absl::IsUnavailable(refused.status())) << refused.status();
  }
  EXPECT_EQ(std::filesystem::file_size(Cat(dir_, "/journal")), size) << Contents();
  ASSERT_TRUE(journal->Record(QdiscIn("/run/netns/fl-unit-absent-3")).ok());
  journal.reset();  // the agent dies with entries 1 and 3 open

  auto next = OpenJournal();
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(next->Replay().entries, 2) << "both lines parse";
}

TEST_F(JournalTest, ASecondAgentOnTheSameStateDirectoryIsRefused) {
  auto journal = OpenJournal();
  ASSERT_NE(journal, nullptr);
  auto second = Journal::Open(dir_);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("another faultlined uses this state directory"), std::string::npos)
      << second.status();
}

TEST_F(JournalTest, NothingIsUndoneInAnotherNamespaceOrAfterAReboot) {
  {
    auto journal = OpenJournal();
    ASSERT_NE(journal, nullptr);
    // The agent's own namespace, but recorded with an identity it does not have.
    ASSERT_TRUE(journal->Record(QdiscIn("", 1)).ok());
  }
  journal::Line before_boot;
  before_boot.set_id(7);
  *before_boot.mutable_change() = QdiscIn("");
  before_boot.mutable_change()->set_boot_id("00000000-0000-0000-0000-000000000000");
  std::string line;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(before_boot, &line).ok());
  std::ofstream(Cat(dir_, "/journal"), std::ios::app) << line << "\n";

  testing::internal::CaptureStderr();
  auto journal = OpenJournal();
  ASSERT_NE(journal, nullptr);
  ReplaySummary summary = journal->Replay();
  std::string log = testing::internal::GetCapturedStderr();
  EXPECT_EQ(summary.entries, 2);
  EXPECT_EQ(summary.nothing_to_undo, 2) << log;
  EXPECT_NE(log.find("is another namespace now"), std::string::npos) << log;
  EXPECT_NE(log.find("recorded before the machine last booted"), std::string::npos) << log;
  EXPECT_NE(log.find("\"event\":\"journal.replayed\""), std::string::npos) << log;
}

TEST_F(JournalTest, WithoutAnInstalledJournalNothingIsRecorded) {
  auto entry = RecordChange(QdiscIn("/run/netns/fl-unit-absent"));
  ASSERT_TRUE(entry.ok());
  entry->Done();
  EXPECT_FALSE(std::filesystem::exists(Cat(dir_, "/journal")));
}

}  // namespace
}  // namespace faultline::kernel

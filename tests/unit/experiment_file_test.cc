// Experiment, game day and inventory files: every file in experiments/ loads, a file's faults are the
// ones `faultctl inject` makes from the same options, and each mistake is reported with its file, line,
// column and field.
#include "experiment_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "fault_spec.h"
#include "faultline/api/cat.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/message_differencer.h"

namespace faultline::ctl {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

// A file with `text` in a private directory, removed with the object.
class TempFile {
 public:
  explicit TempFile(const std::string& text, const std::string& name = "file.yaml") {
    char pattern[] = "/tmp/fltest-yaml-XXXXXX";
    directory_ = mkdtemp(pattern);
    path_ = directory_ + "/" + name;
    Add(name, text);
  }
  ~TempFile() { std::filesystem::remove_all(directory_); }
  // Another file beside it.
  void Add(const std::string& name, const std::string& text) const {
    std::ofstream(directory_ + "/" + name) << text;
  }
  const std::string& path() const { return path_; }

 private:
  std::string directory_;
  std::string path_;
};

constexpr const char* kHeader = "apiVersion: faultline/v1\nkind: Experiment\nmetadata: {name: test}\n";

TEST(ExperimentFiles, EveryFileInTheExperimentsFolderLoads) {
  int experiments = 0, game_days = 0, inventories = 0, schedules = 0;
  for (const auto& entry : std::filesystem::directory_iterator(FAULTLINE_SOURCE_DIR "/experiments")) {
    const std::string path = entry.path().string();
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(path);
    const std::string kind = FileKind(path);
    if (kind == "Experiment") {
      auto loaded = LoadExperiment(path);
      EXPECT_TRUE(loaded.ok()) << loaded.status();
      experiments++;
    } else if (kind == "GameDay") {
      auto loaded = LoadGameDay(path);
      EXPECT_TRUE(loaded.ok()) << loaded.status();
      game_days++;
    } else if (kind == "Inventory") {
      auto loaded = LoadInventory(path);
      EXPECT_TRUE(loaded.ok()) << loaded.status();
      inventories++;
    } else if (kind == "Schedule") {
      auto loaded = LoadSchedule(path);
      EXPECT_TRUE(loaded.ok()) << loaded.status();
      schedules++;
    } else {
      ADD_FAILURE() << "not a faultline file";
    }
  }
  EXPECT_GE(experiments, 5);
  EXPECT_GE(game_days, 1);
  EXPECT_GE(inventories, 1);
  EXPECT_GE(schedules, 1);
}

TEST(ExperimentFiles, AFilesFaultsAreWhatFaultctlInjectMakesOfTheSameOptions) {
  TempFile file(Cat(kHeader, R"(spec:
  duration: 90s
  agents: {labels: {role: app}, percent: 50}
  rollout: {waveSize: 2, pause: 10s}
  faults:
    - reorder: {percent: 25, gap: 5, latency: 10ms}
      target: {interface: eth0, direction: egress, peers: [198.18.0.2/32], ports: ["5432"], protocol: tcp}
    - cpu: {load: 50, cpus: [0, 1]}
  steadyState:
    probes:
      - name: health
        http: {url: "http://198.18.0.1:8080/"}
        tolerance: {status: 204, maxLatency: 300ms, bodyMatches: "^ok"}
      - name: p99
        prometheus: {url: "http://prometheus:9090", query: "x"}
        timeout: 1s
        tolerance: {below: 0.5}
    during: {interval: 2s, failuresToAbort: 3}
    after: {within: 1m}
)"));
  auto loaded = LoadExperiment(file.path());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  FaultSpec reorder;
  reorder.percent = "25";
  reorder.gap = 5;
  reorder.latency = "10ms";
  reorder.target.interface = "eth0";
  reorder.target.direction = "egress";
  reorder.target.peers = {"198.18.0.2/32"};
  reorder.target.ports = {"5432"};
  reorder.target.protocol = "tcp";
  FaultSpec cpu;
  cpu.load = 50;
  cpu.cpus = {0, 1};
  std::vector<v1::Fault> expected = *BuildFaults("reorder", reorder);
  expected.push_back(BuildFaults("cpu", cpu)->at(0));
  ASSERT_EQ(loaded->experiment.faults_size(), 3) << "reorder is a delay and a reorder";
  for (int i = 0; i < 3; i++) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(loaded->experiment.faults(i), expected[i]))
        << loaded->experiment.faults(i).ShortDebugString() << "\n"
        << expected[i].ShortDebugString();
  }
  EXPECT_EQ(loaded->experiment.duration().seconds(), 90);
  EXPECT_EQ(loaded->experiment.lease().ttl().seconds(), 15) << "the default lease";
  EXPECT_EQ(loaded->agents.mode, AgentSelection::Mode::kPercent);
  EXPECT_EQ(loaded->agents.value, 50);
  EXPECT_EQ(loaded->agents.labels.at("role"), "app");
  EXPECT_EQ(loaded->rollout.wave_size, 2);
  EXPECT_EQ(loaded->rollout.pause, std::chrono::seconds(10));
  ASSERT_EQ(loaded->steady_state.probes.size(), 2u);
  const Probe& http = loaded->steady_state.probes[0];
  EXPECT_EQ(http.kind, Probe::Kind::kHttp);
  EXPECT_EQ(http.status, 204);
  EXPECT_EQ(http.max_latency, std::chrono::milliseconds(300));
  EXPECT_EQ(http.body_matches, "^ok");
  const Probe& prometheus = loaded->steady_state.probes[1];
  EXPECT_EQ(prometheus.kind, Probe::Kind::kPrometheus);
  EXPECT_EQ(prometheus.timeout, std::chrono::seconds(1));
  EXPECT_FALSE(prometheus.above.has_value());
  EXPECT_EQ(prometheus.below, 0.5);
  EXPECT_EQ(loaded->steady_state.interval, std::chrono::seconds(2));
  EXPECT_EQ(loaded->steady_state.failures_to_abort, 3);
  EXPECT_EQ(loaded->steady_state.recover_within, std::chrono::minutes(1));
}

struct BadFile {
  const char* name;
  std::string text;
  std::string error;  // after "PATH:"
};

void PrintTo(const BadFile& file, std::ostream* out) { *out << file.name; }

class ExperimentFileErrors : public ::testing::TestWithParam<BadFile> {};

TEST_P(ExperimentFileErrors, NameTheLineColumnAndField) {
  TempFile file(GetParam().text);
  auto loaded = LoadExperiment(file.path());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(std::string(loaded.status().message()), Cat(file.path(), ":", GetParam().error));
}

constexpr const char* kNoUnit = "a unit (h, m, s, ms, us, ns) is required";

std::string Faults(const std::string& faults) {
  return Cat(kHeader, "spec:\n  duration: 1m\n  faults:\n", faults);
}

INSTANTIATE_TEST_SUITE_P(
    BadFiles, ExperimentFileErrors,
    ::testing::Values(
        BadFile{"not_yaml", "a: [", "1:1: not YAML: end of sequence flow not found"},
        BadFile{"wrong_version", "apiVersion: faultline/v2\nkind: Experiment\n",
                "1:13: apiVersion: \"faultline/v2\" is not faultline/v1"},
        BadFile{"wrong_kind", "apiVersion: faultline/v1\nkind: GameDay\n",
                "2:7: kind: \"GameDay\" where a Experiment was expected"},
        BadFile{
            "bad_name", "apiVersion: faultline/v1\nkind: Experiment\nmetadata: {name: Big_Name}\n",
            "3:18: metadata.name: \"Big_Name\" is not a name: 1-48 lowercase letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"},
        BadFile{"no_duration", Cat(kHeader, "spec:\n  faults: []\n"),
                "5:3: spec.duration: required, e.g. 5m"},
        BadFile{"bad_duration", Cat(kHeader, "spec:\n  duration: 10\n"),
                Cat("5:13: spec.duration: \"10\" is not a duration: ", kNoUnit)},
        BadFile{"unknown_field",
                Cat(kHeader,
                    "spec:\n  duration: 1m\n  faults: [{partition: {}, target: {interface: "
                    "eth0}}]\n  duraton: 2m\n"),
                "7:3: spec.duraton: unknown field (known here: agents, duration, faults, lease, rollout, "
                "steadyState)"},
        BadFile{
            "no_fault_kind", Faults("    - target: {interface: eth0}\n"),
            "7:7: spec.faults[0]: no fault kind (one of partition, loss, delay, duplicate, corrupt, reorder, "
            "bandwidth, cpu, memory)"},
        BadFile{"bad_latency", Faults("    - delay: {latency: 10}\n      target: {interface: eth0}\n"),
                Cat("7:24: spec.faults[0].delay.latency: \"10\" is not a duration: ", kNoUnit)},
        BadFile{
            "option_of_another_kind",
            Faults("    - delay: {latency: 10ms, rate: 1mbit}\n      target: {interface: eth0}\n"),
            "7:30: spec.faults[0].delay.rate: unknown field (known here: correlation, distribution, jitter, "
            "keepOrder, latency)"},
        BadFile{"bad_direction",
                Faults("    - partition: {}\n      target: {interface: eth0, direction: out}\n"),
                "8:44: spec.faults[0].target.direction: \"out\" is not egress, ingress or both"},
        BadFile{"no_target", Faults("    - partition: {}\n"),
                "7:7: spec.faults[0].target: required for a network fault, e.g. {interface: eth0}"},
        BadFile{"stress_with_target", Faults("    - cpu: {load: 50}\n      target: {interface: eth0}\n"),
                "8:15: spec.faults[0].target: cpu faults take no network target"},
        BadFile{"bad_percent", Faults("    - loss: {percent: 120}\n      target: {interface: eth0}\n"),
                "7:23: spec.faults[0].loss.percent: \"120\" is not a percentage: must be between 0 and 100"},
        // The agent's own checks, after a reorder (one item, two faults) shifted the agent's indexes.
        BadFile{"agent_check_names_the_files_item",
                Faults("    - reorder: {percent: 10, latency: 10ms}\n      target: {interface: eth0}\n"
                       "    - partition: {}\n      target: {interface: eth0, peers: [10.0.0.0/33]}\n"),
                "9:7: spec.faults[1].target.peers[0]: \"10.0.0.0/33\" is not a CIDR: prefix length 33 is "
                "over 32"},
        BadFile{"probe_without_kind",
                Cat(Faults("    - partition: {}\n      target: {interface: eth0}\n"),
                    "  steadyState:\n    probes:\n      - name: x\n"),
                "11:9: spec.steadyState.probes[0]: no probe kind (one of http, tcp, command, prometheus)"},
        BadFile{"prometheus_without_bounds",
                Cat(Faults("    - partition: {}\n      target: {interface: eth0}\n"),
                    "  steadyState:\n    probes:\n      - name: x\n        prometheus: {url: "
                    "'http://p:9090', query: "
                    "up}\n"),
                "11:9: spec.steadyState.probes[0].tolerance: a prometheus probe needs above, below or both"},
        BadFile{"count_and_percent",
                Cat(Faults("    - partition: {}\n      target: {interface: eth0}\n"),
                    "  agents: {count: 1, percent: "
                    "50}\n"),
                "9:11: spec.agents: count or percent, not both"}),
    [](const ::testing::TestParamInfo<BadFile>& info) { return info.param.name; });

TEST(ExperimentFiles, TheSchemaHasEveryFaultKindWithItsOptions) {
  std::ifstream in(FAULTLINE_SOURCE_DIR "/docs/experiment.schema.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  google::protobuf::Struct schema;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(text, &schema).ok());
  const auto& kinds = schema.fields()
                          .at("$defs")
                          .struct_value()
                          .fields()
                          .at("faultKinds")
                          .struct_value()
                          .fields()
                          .at("properties")
                          .struct_value()
                          .fields();
  EXPECT_EQ(kinds.size(), FaultKinds().size());
  for (const std::string& kind : FaultKinds()) {
    SCOPED_TRACE(kind);
    ASSERT_TRUE(kinds.contains(kind));
    std::set<std::string> in_schema;
    for (const auto& [option, value] :
         kinds.at(kind).struct_value().fields().at("properties").struct_value().fields()) {
      in_schema.insert(option);
    }
    EXPECT_EQ(in_schema, std::set<std::string>(FaultOptions(kind).begin(), FaultOptions(kind).end()));
  }
}

TEST(GameDayFiles, StepsLoadTheirExperimentsFromBesideTheFile) {
  TempFile file(
      "apiVersion: faultline/v1\nkind: GameDay\nmetadata: {name: day}\nspec:\n  steps:\n"
      "    - experiment: one.yaml\n      pauseAfter: 30s\n    - experiment: missing.yaml\n",
      "day.yaml");
  file.Add("one.yaml", Faults("    - partition: {}\n      target: {interface: eth0}\n"));
  auto loaded = LoadGameDay(file.path());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("day.yaml:8:19: spec.steps[1].experiment: "), std::string::npos)
      << loaded.status();
  EXPECT_NE(loaded.status().message().find("missing.yaml: cannot read the file"), std::string::npos)
      << loaded.status();
}

TEST(InventoryFiles, AgentsNeedUniqueNamesAndAddresses) {
  TempFile file(
      "apiVersion: faultline/v1\nkind: Inventory\nagents:\n  - {name: a, address: 'unix:/run/a.sock'}\n"
      "  - {name: a, address: 'b.example:7443'}\n");
  auto loaded = LoadInventory(file.path());
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(std::string(loaded.status().message()),
            Cat(file.path(), ":5:12: agents[1].name: \"a\" is used twice"));
}

constexpr const char* kScheduleHeader =
    "apiVersion: faultline/v1\nkind: Schedule\nmetadata: {name: nightly}\n";

// A schedule file, with the experiment one.yaml beside it.
class ScheduleFileTest {
 public:
  explicit ScheduleFileTest(const std::string& spec) : file_(Cat(kScheduleHeader, spec), "schedule.yaml") {
    file_.Add("one.yaml", Faults("    - partition: {}\n      target: {interface: eth0}\n"));
  }
  absl::StatusOr<ScheduleFile> Load() const { return LoadSchedule(file_.path()); }
  const TempFile& file() const { return file_; }

 private:
  TempFile file_;
};

TEST(ScheduleFiles, RunsBlackoutsAndTimeZonesLoad) {
  ScheduleFileTest file(R"(spec:
  timeZone: Europe/Berlin
  startingDeadline: 2m
  runs:
    - {file: one.yaml, cron: "0 10 * * MON-FRI"}
    - {file: one.yaml, cron: "*/3 * * * * *", timeZone: Asia/Kolkata}
  blackouts:
    - {cron: "0 0 24 12 *", duration: 48h}
    - {from: "2026-12-31T12:00:00", to: "2027-01-02"}
    - {from: "2026-07-01T10:00:00Z", to: "2026-07-01T18:00:00+05:30"}
)");
  auto loaded = file.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->zone.name(), "Europe/Berlin");
  EXPECT_EQ(loaded->starting_deadline, std::chrono::minutes(2));
  ASSERT_EQ(loaded->runs.size(), 2u);
  EXPECT_EQ(loaded->runs[0].kind, "Experiment");
  EXPECT_EQ(loaded->runs[0].name, "test");
  EXPECT_TRUE(loaded->runs[0].path.ends_with("/one.yaml")) << loaded->runs[0].path;
  EXPECT_EQ(loaded->runs[0].zone.name(), "Europe/Berlin");
  EXPECT_EQ(loaded->runs[1].zone.name(), "Asia/Kolkata");
  EXPECT_EQ(loaded->runs[1].cron.text(), "*/3 * * * * *");
  ASSERT_EQ(loaded->blackouts.size(), 3u);
  EXPECT_EQ(loaded->blackouts[0].duration, std::chrono::hours(48));
  using namespace std::chrono;
  EXPECT_EQ(loaded->blackouts[1].from, sys_days(2026y / December / 31) + 11h) << "12:00 in Berlin";
  EXPECT_EQ(loaded->blackouts[1].to, sys_days(2027y / January / 1) + 23h) << "a date alone is its midnight";
  EXPECT_EQ(loaded->blackouts[2].from, sys_days(2026y / July / 1) + 10h);
  EXPECT_EQ(loaded->blackouts[2].to, sys_days(2026y / July / 1) + 12h + 30min);
}

class ScheduleFileErrors : public ::testing::TestWithParam<BadFile> {};

TEST_P(ScheduleFileErrors, NameTheLineColumnAndField) {
  ScheduleFileTest file(GetParam().text);
  auto loaded = file.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(std::string(loaded.status().message()), Cat(file.file().path(), ":", GetParam().error));
}

INSTANTIATE_TEST_SUITE_P(
    BadSchedules, ScheduleFileErrors,
    ::testing::Values(
        BadFile{"no_runs", "spec:\n  timeZone: UTC\n",
                "5:3: spec.runs: required, e.g. [{file: latency.yaml, cron: \"0 10 * * 1-5\"}]"},
        BadFile{"bad_cron", "spec:\n  runs:\n    - file: one.yaml\n      cron: \"0 25 * * *\"\n",
                "7:13: spec.runs[0].cron: \"0 25 * * *\": the hour field \"25\": 25 is not within 0-23"},
        BadFile{"cron_never_matches", "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 30 2 *\"}\n",
                "6:30: spec.runs[0].cron: \"0 0 30 2 *\" never matches: no listed month has the listed days"},
        BadFile{"unknown_zone", "spec:\n  timeZone: Mars/Olympus\n  runs: []\n",
                "5:13: spec.timeZone: \"Mars/Olympus\" is not a time zone: no file "
                "/usr/share/zoneinfo/Mars/Olympus"},
        BadFile{
            "unknown_zone_of_a_run",
            "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\", timeZone: Berlin}\n",
            "6:53: spec.runs[0].timeZone: \"Berlin\" is not a time zone: no file /usr/share/zoneinfo/Berlin"},
        BadFile{
            "unknown_field", "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\"}\n  blackout: []\n",
            "7:3: spec.blackout: unknown field (known here: blackouts, inventory, runs, startingDeadline, "
            "timeZone)"},
        BadFile{"same_run_twice",
                "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\"}\n"
                "    - {file: one.yaml, cron: \"0 0 * * *\"}\n",
                "7:7: spec.runs[1]: the same file and cron as spec.runs[0]"},
        BadFile{"window_of_both_kinds",
                "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\"}\n  blackouts:\n"
                "    - {cron: \"0 0 * * *\", duration: 1h, from: 2026-01-01, to: 2026-01-02}\n",
                "8:7: spec.blackouts[0]: cron and duration, or from and to, not both"},
        BadFile{"window_without_duration",
                "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\"}\n  blackouts:\n"
                "    - {cron: \"0 0 * * *\"}\n",
                "8:7: spec.blackouts[0].duration: required, e.g. 48h"},
        BadFile{"window_of_no_time",
                "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\"}\n  blackouts:\n"
                "    - {cron: \"0 0 * * *\", duration: 0s}\n",
                "8:37: spec.blackouts[0].duration: must be 1s or more"},
        BadFile{"window_ending_first",
                "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\"}\n  blackouts:\n"
                "    - {from: 2026-01-02, to: 2026-01-01}\n",
                "8:30: spec.blackouts[0].to: must be after from"},
        BadFile{"bad_time",
                "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\"}\n  blackouts:\n"
                "    - {from: 2026-13-01, to: 2026-12-01}\n",
                "8:14: spec.blackouts[0].from: \"2026-13-01\" is not a time: YYYY-MM-DDTHH:MM[:SS], local to "
                "the time zone, or with Z or +HH:MM"}),
    [](const ::testing::TestParamInfo<BadFile>& info) { return info.param.name; });

TEST(ScheduleFiles, ARunsFileIsLoadedAndItsErrorNamesTheRunsLine) {
  ScheduleFileTest file(
      "spec:\n  runs:\n    - {file: one.yaml, cron: \"0 0 * * *\"}\n"
      "    - {file: missing.yaml, cron: \"0 0 * * *\"}\n");
  auto loaded = file.Load();
  ASSERT_FALSE(loaded.ok());
  const std::string message(loaded.status().message());
  EXPECT_NE(message.find("schedule.yaml:7:14: spec.runs[1].file: "), std::string::npos) << message;
  EXPECT_NE(message.find("missing.yaml: cannot read the file"), std::string::npos) << message;
}

TEST(ScheduleFiles, AGameDayIsScheduledUnderItsName) {
  ScheduleFileTest file("spec:\n  runs:\n    - {file: day.yaml, cron: \"0 0 * * *\"}\n");
  file.file().Add("day.yaml",
                  "apiVersion: faultline/v1\nkind: GameDay\nmetadata: {name: day}\nspec:\n  steps:\n"
                  "    - experiment: one.yaml\n");
  auto loaded = file.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->runs.size(), 1u);
  EXPECT_EQ(loaded->runs[0].kind, "GameDay");
  EXPECT_EQ(loaded->runs[0].name, "day");
}

}  // namespace
}  // namespace faultline::ctl

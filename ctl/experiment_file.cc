#include "experiment_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <set>
#include <type_traits>

#include "fault_spec.h"
#include "faultline/api/cat.h"
#include "faultline/api/units.h"
#include "faultline/api/validate.h"

namespace faultline::ctl {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

constexpr std::string_view kApiVersion = "faultline/v1";
constexpr auto kDefaultLease = std::chrono::seconds(15);

void SetDuration(google::protobuf::Duration& to, Milliseconds time) {
  to.set_seconds(time.count() / 1000);
  to.set_nanos(static_cast<int32_t>(time.count() % 1000) * 1'000'000);
}

// Thrown while a file is read, caught by the Load functions: the first error ends the reading.
struct FileError {
  std::string text;
};

// "FILE:LINE:COLUMN: FIELD: MESSAGE" (lines and columns from 1, as editors count them).
[[noreturn]] void Fail(const std::string& file, const YAML::Node& at, const std::string& field,
                       const std::string& message) {
  const YAML::Mark mark = at.Mark();
  std::string where = mark.is_null() ? file : Cat(file, ":", mark.line + 1, ":", mark.column + 1);
  throw FileError{Cat(where, ": ", field.empty() ? "" : field + ": ", message)};
}

// A mapping read key by key. Finish() refuses the keys nobody asked for.
class Fields {
 public:
  Fields(const std::string& file, const YAML::Node& node, std::string path)
      : file_(file), node_(node), path_(std::move(path)) {
    if (!node_.IsMap()) Fail(file_, node_, path_, "must be a mapping of fields");
  }

  std::string Path(const std::string& key) const { return path_.empty() ? key : Cat(path_, ".", key); }
  const std::string& file() const { return file_; }
  const YAML::Node& node() const { return node_; }

  // The value of `key`, or an undefined node when it is absent.
  YAML::Node Get(const std::string& key) {
    read_.insert(key);
    const YAML::Node& node = node_;  // the const operator[]: a missing key is not added
    return node[key];
  }
  YAML::Node Required(const std::string& key, const std::string& example) {
    YAML::Node value = Get(key);
    if (!value.IsDefined() || value.IsNull()) Fail(file_, node_, Path(key), Cat("required, e.g. ", example));
    return value;
  }

  std::string String(const std::string& key, const std::string& fallback = "") {
    YAML::Node value = Get(key);
    if (!value.IsDefined() || value.IsNull()) return fallback;
    return Scalar(value, Path(key));
  }
  std::string Scalar(const YAML::Node& value, const std::string& field) const {
    if (!value.IsScalar()) Fail(file_, value, field, "must be a single value");
    return value.Scalar();
  }
  template <typename T>
  T Number(const std::string& key, T fallback) {
    YAML::Node value = Get(key);
    if (!value.IsDefined() || value.IsNull()) return fallback;
    return As<T>(value, Path(key));
  }
  template <typename T>
  T As(const YAML::Node& value, const std::string& field) const {
    try {
      return value.as<T>();
    } catch (const YAML::Exception&) {
      Fail(file_, value, field,
           Cat("\"", value.IsScalar() ? value.Scalar() : "...", "\" is not a ",
               std::is_same_v<T, bool> ? "boolean (true or false)" : "number"));
    }
  }
  Milliseconds Duration(const std::string& key, Milliseconds fallback) {
    YAML::Node value = Get(key);
    if (!value.IsDefined() || value.IsNull()) return fallback;
    auto parsed = api::ParseDuration(Scalar(value, Path(key)));
    if (!parsed.ok()) Fail(file_, value, Path(key), std::string(parsed.status().message()));
    return Milliseconds(parsed->seconds() * 1000 + parsed->nanos() / 1'000'000);
  }
  std::vector<std::string> Strings(const std::string& key) {
    YAML::Node value = Get(key);
    std::vector<std::string> out;
    if (!value.IsDefined() || value.IsNull()) return out;
    if (!value.IsSequence()) Fail(file_, value, Path(key), "must be a list");
    for (size_t i = 0; i < value.size(); i++) out.push_back(Scalar(value[i], Cat(Path(key), "[", i, "]")));
    return out;
  }
  std::map<std::string, std::string> Labels(const std::string& key) {
    YAML::Node value = Get(key);
    std::map<std::string, std::string> out;
    if (!value.IsDefined() || value.IsNull()) return out;
    if (!value.IsMap()) Fail(file_, value, Path(key), "must be a mapping of names to values");
    for (const auto& entry : value) {
      const std::string name = Scalar(entry.first, Path(key));
      out[name] = Scalar(entry.second, Cat(Path(key), ".", name));
    }
    return out;
  }

  // Refuses keys nobody read: a misspelt field must not silently fall back to a default.
  void Finish() const {
    for (const auto& entry : node_) {
      const std::string key = entry.first.IsScalar() ? entry.first.Scalar() : "?";
      if (!read_.contains(key)) {
        std::string known;
        for (const auto& name : read_) known += (known.empty() ? "" : ", ") + name;
        Fail(file_, entry.first, Path(key), Cat("unknown field (known here: ", known, ")"));
      }
    }
  }

 private:
  const std::string& file_;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> read_;
};

YAML::Node ReadYaml(const std::string& path) {
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw FileError{Cat(path, ": cannot read the file")};
  } catch (const YAML::ParserException& e) {
    throw FileError{Cat(path, ":", e.mark.line + 1, ":", e.mark.column + 1, ": not YAML: ", e.msg)};
  }
}

// apiVersion and kind, checked; the document's fields for the caller.
Fields OpenDocument(const std::string& path, const YAML::Node& root, const std::string& kind) {
  Fields document(path, root, "");
  std::string version =
      document.Scalar(document.Required("apiVersion", std::string(kApiVersion)), "apiVersion");
  if (version != kApiVersion) {
    Fail(path, root["apiVersion"], "apiVersion", Cat("\"", version, "\" is not ", kApiVersion));
  }
  std::string found = document.Scalar(document.Required("kind", kind), "kind");
  if (found != kind) Fail(path, root["kind"], "kind", Cat("\"", found, "\" where a ", kind, " was expected"));
  return document;
}

Metadata ReadMetadata(Fields& document) {
  Fields fields(document.file(), document.Required("metadata", "{name: checkout-latency}"), "metadata");
  Metadata metadata;
  YAML::Node name = fields.Required("name", "checkout-latency");
  metadata.name = fields.Scalar(name, "metadata.name");
  // The name starts the id of every run's experiment on the agents (NAME-RUN).
  static const std::regex kName("[a-z0-9]([a-z0-9.-]{0,46}[a-z0-9])?");
  if (!std::regex_match(metadata.name, kName)) {
    Fail(document.file(), name, "metadata.name",
         Cat("\"", metadata.name,
             "\" is not a name: 1-48 lowercase letters, digits, '.' or '-', "
             "starting and ending with a letter or digit"));
  }
  metadata.description = fields.String("description");
  metadata.labels = fields.Labels("labels");
  fields.Finish();
  return metadata;
}

// An Experiment or GameDay document: its metadata, and the fields of its spec.
std::pair<Metadata, Fields> OpenSpec(const std::string& path, const std::string& kind,
                                     const std::string& example) {
  Fields document = OpenDocument(path, ReadYaml(path), kind);
  Metadata metadata = ReadMetadata(document);
  Fields spec(path, document.Required("spec", example), "spec");
  document.Finish();
  return {std::move(metadata), std::move(spec)};
}

void ReadTarget(Fields& fields, TargetSpec& target) {
  target.netns = fields.String("netns");
  target.pid = fields.Number<uint32_t>("pid", 0);
  target.interface = fields.String("interface");
  target.direction = fields.String("direction", target.direction);
  target.peers = fields.Strings("peers");
  target.excluded_peers = fields.Strings("excludedPeers");
  target.ports = fields.Strings("ports");
  target.protocol = fields.String("protocol", target.protocol);
  fields.Finish();
}

// Reads option `name` of a fault into `spec`.
void ReadOption(Fields& fields, const std::string& name, FaultSpec& spec) {
  if (name == "percent") spec.percent = fields.String(name);
  if (name == "correlation") spec.correlation = fields.String(name, spec.correlation);
  if (name == "model") spec.model = fields.String(name, spec.model);
  if (name == "p") spec.ge_p = fields.Number<double>(name, 0);
  if (name == "r") spec.ge_r = fields.Number<double>(name, 0);
  if (name == "h") spec.ge_h = fields.Number<double>(name, 0);
  if (name == "k") spec.ge_k = fields.Number<double>(name, 0);
  if (name == "gap") spec.gap = fields.Number<uint32_t>(name, 0);
  if (name == "latency") spec.latency = fields.String(name);
  if (name == "jitter") spec.jitter = fields.String(name, spec.jitter);
  if (name == "distribution") spec.distribution = fields.String(name, spec.distribution);
  if (name == "keepOrder") spec.keep_order = fields.Number<bool>(name, false);
  if (name == "rate") spec.rate = fields.String(name);
  if (name == "burst") spec.burst = fields.String(name);
  if (name == "limit") spec.limit = fields.String(name);
  if (name == "shaper") spec.shaper = fields.String(name, spec.shaper);
  if (name == "load") spec.load = fields.Number<uint32_t>(name, 0);
  if (name == "workers") spec.workers = fields.Number<uint32_t>(name, 0);
  if (name == "cpus") {
    YAML::Node cpus = fields.Get(name);
    if (cpus.IsDefined() && !cpus.IsNull()) {
      if (!cpus.IsSequence()) Fail(fields.file(), cpus, fields.Path(name), "must be a list of CPU numbers");
      for (size_t i = 0; i < cpus.size(); i++) {
        spec.cpus.push_back(fields.As<uint32_t>(cpus[i], Cat(fields.Path(name), "[", i, "]")));
      }
    }
  }
  if (name == "nice") spec.nice = fields.Number<int32_t>(name, 0);
  if (name == "cgroup") spec.cgroup = fields.String(name);
  if (name == "size") spec.size = fields.String(name);
  if (name == "grow") spec.grow = fields.String(name);
}

// One item of spec.faults: `- KIND: {OPTIONS}` with a `target:` for network faults. Appends the faults
// it stands for, and for each the item it came from.
void ReadFault(const std::string& file, const YAML::Node& item, const std::string& path,
               std::vector<v1::Fault>& faults) {
  Fields fields(file, item, path);
  std::string kind;
  for (const std::string& known : FaultKinds()) {
    if (!item[known].IsDefined()) continue;
    if (!kind.empty())
      Fail(file, item, path, Cat("one fault kind per item, not both ", kind, " and ", known));
    kind = known;
  }
  if (kind.empty()) {
    std::string kinds;
    for (const auto& known : FaultKinds()) kinds += (kinds.empty() ? "" : ", ") + known;
    Fail(file, item, path, Cat("no fault kind (one of ", kinds, ")"));
  }
  FaultSpec spec;
  YAML::Node options = fields.Get(kind);
  if (!options.IsNull()) {
    Fields option_fields(file, options, fields.Path(kind));
    for (const std::string& option : FaultOptions(kind)) ReadOption(option_fields, option, spec);
    option_fields.Finish();
  }
  YAML::Node target = fields.Get("target");
  if (!IsStressKind(kind)) {
    if (!target.IsDefined())
      Fail(file, item, fields.Path("target"), "required for a network fault, e.g. {interface: eth0}");
    Fields target_fields(file, target, fields.Path("target"));
    ReadTarget(target_fields, spec.target);
  } else if (target.IsDefined()) {
    Fail(file, target, fields.Path("target"), Cat(kind, " faults take no network target"));
  }
  fields.Finish();
  SpecError bad;
  auto built = BuildFaults(kind, spec, &bad);
  if (!built.ok()) {
    const bool in_target = bad.option == "netns" || bad.option == "pid" || bad.option == "interface" ||
                           bad.option == "direction" || bad.option == "peers" ||
                           bad.option == "excludedPeers" || bad.option == "ports" || bad.option == "protocol";
    const YAML::Node& parent = in_target ? target : options;
    const std::string parent_path = fields.Path(in_target ? "target" : kind);
    YAML::Node at = parent.IsMap() && parent[bad.option].IsDefined() ? parent[bad.option] : item;
    Fail(file, at, Cat(parent_path, ".", bad.option), bad.message);
  }
  for (auto& fault : *built) faults.push_back(std::move(fault));
}

Probe ReadProbe(const std::string& file, const YAML::Node& item, const std::string& path) {
  Fields fields(file, item, path);
  Probe probe;
  probe.name = fields.Scalar(fields.Required("name", "checkout-health"), fields.Path("name"));
  probe.timeout = fields.Duration("timeout", probe.timeout);
  const std::pair<const char*, Probe::Kind> kinds[] = {{"http", Probe::Kind::kHttp},
                                                       {"tcp", Probe::Kind::kTcp},
                                                       {"command", Probe::Kind::kCommand},
                                                       {"prometheus", Probe::Kind::kPrometheus}};
  std::string kind;
  for (const auto& [name, value] : kinds) {
    if (!item[name].IsDefined()) continue;
    if (!kind.empty())
      Fail(file, item, path, Cat("one probe kind per probe, not both ", kind, " and ", name));
    kind = name;
    probe.kind = value;
  }
  if (kind.empty()) Fail(file, item, path, "no probe kind (one of http, tcp, command, prometheus)");
  Fields how(file, fields.Get(kind), fields.Path(kind));
  YAML::Node tolerance_node = fields.Get("tolerance");
  std::optional<Fields> tolerance;
  if (tolerance_node.IsDefined() && !tolerance_node.IsNull())
    tolerance.emplace(file, tolerance_node, fields.Path("tolerance"));
  switch (probe.kind) {
    case Probe::Kind::kHttp:
      probe.url = how.Scalar(how.Required("url", "http://198.18.0.2:8080/health"), how.Path("url"));
      if (!probe.url.starts_with("http://"))
        Fail(file, item[kind]["url"], how.Path("url"), "only http:// URLs");
      if (tolerance) {
        probe.status = tolerance->Number<int>("status", probe.status);
        probe.max_latency = tolerance->Duration("maxLatency", probe.max_latency);
        probe.body_matches = tolerance->String("bodyMatches");
      }
      break;
    case Probe::Kind::kTcp:
      probe.address = how.Scalar(how.Required("address", "198.18.0.2:5432"), how.Path("address"));
      if (auto parsed = api::ParseHostPort(probe.address); !parsed.ok() || parsed->port == 0) {
        Fail(file, item[kind]["address"], how.Path("address"),
             parsed.ok() ? "port 0 cannot be connected to" : std::string(parsed.status().message()));
      }
      break;
    case Probe::Kind::kCommand:
      probe.command = how.Strings("run");
      if (probe.command.empty())
        Fail(file, item[kind], how.Path("run"), "required, e.g. [curl, -fsS, http://x/]");
      if (tolerance) {
        probe.exit_code = tolerance->Number<int>("exitCode", 0);
        probe.output_matches = tolerance->String("outputMatches");
      }
      break;
    case Probe::Kind::kPrometheus:
      probe.url = how.Scalar(how.Required("url", "http://prometheus:9090"), how.Path("url"));
      probe.query = how.Scalar(how.Required("query", "up{job=\"checkout\"}"), how.Path("query"));
      if (tolerance) {
        if (tolerance->node()["above"].IsDefined()) probe.above = tolerance->Number<double>("above", 0);
        if (tolerance->node()["below"].IsDefined()) probe.below = tolerance->Number<double>("below", 0);
      }
      if (!probe.above && !probe.below) {
        Fail(file, item, fields.Path("tolerance"), "a prometheus probe needs above, below or both");
      }
      break;
  }
  for (const std::string& regex : {probe.body_matches, probe.output_matches}) {
    try {
      std::regex check(regex);
    } catch (const std::regex_error&) {
      Fail(file, tolerance_node, fields.Path("tolerance"),
           Cat("\"", regex, "\" is not a regular expression"));
    }
  }
  how.Finish();
  if (tolerance) tolerance->Finish();
  fields.Finish();
  return probe;
}

SteadyState ReadSteadyState(Fields& spec) {
  SteadyState state;
  YAML::Node node = spec.Get("steadyState");
  if (!node.IsDefined() || node.IsNull()) return state;
  Fields fields(spec.file(), node, spec.Path("steadyState"));
  YAML::Node probes = fields.Get("probes");
  if (probes.IsDefined() && !probes.IsNull()) {
    if (!probes.IsSequence()) Fail(spec.file(), probes, fields.Path("probes"), "must be a list of probes");
    std::set<std::string> names;
    for (size_t i = 0; i < probes.size(); i++) {
      Probe probe = ReadProbe(spec.file(), probes[i], Cat(fields.Path("probes"), "[", i, "]"));
      if (!names.insert(probe.name).second) {
        Fail(spec.file(), probes[i], Cat(fields.Path("probes"), "[", i, "].name"),
             Cat("\"", probe.name, "\" is used twice"));
      }
      state.probes.push_back(std::move(probe));
    }
  }
  YAML::Node during = fields.Get("during");
  if (during.IsDefined() && !during.IsNull()) {
    Fields during_fields(spec.file(), during, fields.Path("during"));
    state.interval = during_fields.Duration("interval", state.interval);
    state.failures_to_abort = during_fields.Number<int>("failuresToAbort", state.failures_to_abort);
    if (state.interval.count() <= 0)
      Fail(spec.file(), during, during_fields.Path("interval"), "must be more than 0");
    if (state.failures_to_abort < 1)
      Fail(spec.file(), during, during_fields.Path("failuresToAbort"), "must be 1 or more");
    during_fields.Finish();
  }
  YAML::Node after = fields.Get("after");
  if (after.IsDefined() && !after.IsNull()) {
    Fields after_fields(spec.file(), after, fields.Path("after"));
    state.recover_within = after_fields.Duration("within", state.recover_within);
    after_fields.Finish();
  }
  fields.Finish();
  return state;
}

ExperimentFile ReadExperiment(const std::string& path) {
  auto [metadata, spec] = OpenSpec(path, "Experiment", "{duration: 5m, faults: [...]}");
  ExperimentFile file;
  file.path = path;
  file.metadata = std::move(metadata);

  YAML::Node duration = spec.Required("duration", "5m");
  auto parsed = api::ParseDuration(spec.Scalar(duration, "spec.duration"));
  if (!parsed.ok()) Fail(path, duration, "spec.duration", std::string(parsed.status().message()));
  *file.experiment.mutable_duration() = *parsed;
  // The default lease, never longer than the experiment (the agent refuses a lease it could not miss).
  const Milliseconds whole(parsed->seconds() * 1000 + parsed->nanos() / 1'000'000);
  Milliseconds lease = spec.Duration("lease", std::min<Milliseconds>(kDefaultLease, whole));
  SetDuration(*file.experiment.mutable_lease()->mutable_ttl(), lease);
  for (const auto& [key, value] : file.metadata.labels) (*file.experiment.mutable_labels())[key] = value;

  YAML::Node faults = spec.Required("faults", "[{partition: {}, target: {interface: eth0}}]");
  if (!faults.IsSequence() || faults.size() == 0)
    Fail(path, faults, "spec.faults", "must be a list of at least one fault");
  std::vector<size_t> item_of;  // the file's item of each API fault (reorder makes two)
  for (size_t i = 0; i < faults.size(); i++) {
    std::vector<v1::Fault> built;
    ReadFault(path, faults[i], Cat("spec.faults[", i, "]"), built);
    for (auto& fault : built) {
      *file.experiment.add_faults() = std::move(fault);
      item_of.push_back(i);
    }
  }
  // The agent's own checks (peer CIDRs, ports, percentages, lease against duration), with the line.
  if (absl::Status valid = api::ValidateExperiment(file.experiment, {}); !valid.ok()) {
    std::string message(valid.message());
    static const std::regex kFaultIndex("^faults\\[([0-9]+)\\]");
    std::smatch match;
    if (std::regex_search(message, match, kFaultIndex)) {
      // "faults[N].delay.jitter: ..." names the agent's fault N: the file's item it came from.
      size_t item = item_of[std::stoul(match[1].str())];
      Fail(path, faults[item], "", Cat("spec.faults[", item, "]", message.substr(match[0].length())));
    }
    Fail(path, spec.node(), "", "spec." + message);
  }

  YAML::Node agents = spec.Get("agents");
  if (agents.IsDefined() && !agents.IsNull()) {
    Fields fields(path, agents, "spec.agents");
    file.agents.labels = fields.Labels("labels");
    const bool count = agents["count"].IsDefined(), percent = agents["percent"].IsDefined();
    if (count && percent) Fail(path, agents, "spec.agents", "count or percent, not both");
    if (count) {
      file.agents.mode = AgentSelection::Mode::kCount;
      file.agents.value = fields.Number<uint32_t>("count", 0);
      if (file.agents.value < 1) Fail(path, agents["count"], "spec.agents.count", "must be 1 or more");
    }
    if (percent) {
      file.agents.mode = AgentSelection::Mode::kPercent;
      file.agents.value = fields.Number<double>("percent", 0);
      if (file.agents.value <= 0 || file.agents.value > 100) {
        Fail(path, agents["percent"], "spec.agents.percent", "must be over 0 and at most 100");
      }
    }
    fields.Finish();
  }
  YAML::Node rollout = spec.Get("rollout");
  if (rollout.IsDefined() && !rollout.IsNull()) {
    Fields fields(path, rollout, "spec.rollout");
    file.rollout.wave_size = fields.Number<int>("waveSize", 0);
    if (file.rollout.wave_size < 0)
      Fail(path, rollout["waveSize"], "spec.rollout.waveSize", "must not be negative");
    file.rollout.pause = fields.Duration("pause", file.rollout.pause);
    fields.Finish();
  }
  file.steady_state = ReadSteadyState(spec);
  spec.Finish();
  return file;
}

TimeZone ReadZone(Fields& fields, const TimeZone& fallback) {
  YAML::Node node = fields.Get("timeZone");
  if (!node.IsDefined() || node.IsNull()) return fallback;
  auto zone = TimeZone::Load(fields.Scalar(node, fields.Path("timeZone")));
  if (!zone.ok()) Fail(fields.file(), node, fields.Path("timeZone"), std::string(zone.status().message()));
  return *std::move(zone);
}

Cron ReadCron(Fields& fields) {
  YAML::Node node = fields.Required("cron", "\"0 10 * * 1-5\"");
  auto cron = Cron::Parse(fields.Scalar(node, fields.Path("cron")));
  if (!cron.ok()) Fail(fields.file(), node, fields.Path("cron"), std::string(cron.status().message()));
  return *std::move(cron);
}

// "2026-12-20T00:00:00" (a local time of `zone`), "...Z" or "...+01:00"; a date alone is its midnight.
SysSeconds ReadTime(Fields& fields, const std::string& key, const TimeZone& zone) {
  YAML::Node node = fields.Required(key, "2026-12-20T00:00:00");
  const std::string text = fields.Scalar(node, fields.Path(key));
  static const std::regex kTime(
      "([0-9]{4})-([0-9]{2})-([0-9]{2})(?:[T "
      "]([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?)?(Z|[+-][0-9]{2}:[0-9]{2})?");
  std::smatch match;
  auto number = [&](int group) { return match[group].matched ? std::stoi(match[group].str()) : 0; };
  const std::chrono::year_month_day date = std::regex_match(text, match, kTime)
                                               ? std::chrono::year(number(1)) /
                                                     std::chrono::month(static_cast<unsigned>(number(2))) /
                                                     std::chrono::day(static_cast<unsigned>(number(3)))
                                               : std::chrono::year_month_day();
  if (!date.ok() || number(4) > 23 || number(5) > 59 || number(6) > 59) {
    Fail(fields.file(), node, fields.Path(key),
         Cat("\"", text,
             "\" is not a time: YYYY-MM-DDTHH:MM[:SS], local to the time zone, or with Z or +HH:MM"));
  }
  const LocalSeconds local = std::chrono::local_days(date) + std::chrono::hours(number(4)) +
                             std::chrono::minutes(number(5)) + std::chrono::seconds(number(6));
  const std::string offset = match[7].str();
  if (offset.empty()) return zone.FromLocalEarliest(local);
  std::chrono::seconds utc_offset{0};
  if (offset != "Z") {
    utc_offset = std::chrono::hours(std::stoi(offset.substr(1, 2))) +
                 std::chrono::minutes(std::stoi(offset.substr(4, 2)));
    if (offset[0] == '-') utc_offset = -utc_offset;
  }
  return SysSeconds(local.time_since_epoch()) - utc_offset;
}

ScheduleFile ReadSchedule(const std::string& path) {
  auto [metadata, spec] =
      OpenSpec(path, "Schedule", "{runs: [{file: latency.yaml, cron: \"0 10 * * 1-5\"}]}");
  ScheduleFile schedule;
  schedule.path = path;
  schedule.metadata = std::move(metadata);
  schedule.zone = ReadZone(spec, TimeZone());
  const std::filesystem::path directory = std::filesystem::path(path).parent_path();
  YAML::Node inventory = spec.Get("inventory");
  if (inventory.IsDefined() && !inventory.IsNull()) {
    schedule.inventory = (directory / spec.Scalar(inventory, "spec.inventory")).string();
    if (auto loaded = LoadInventory(schedule.inventory); !loaded.ok())
      Fail(path, inventory, "spec.inventory", std::string(loaded.status().message()));
  }
  const auto deadline = spec.Duration("startingDeadline", schedule.starting_deadline);
  if (deadline < std::chrono::seconds(1))
    Fail(path, spec.node()["startingDeadline"], "spec.startingDeadline", "must be 1s or more");
  schedule.starting_deadline = std::chrono::duration_cast<std::chrono::seconds>(deadline);

  YAML::Node runs = spec.Required("runs", "[{file: latency.yaml, cron: \"0 10 * * 1-5\"}]");
  if (!runs.IsSequence() || runs.size() == 0)
    Fail(path, runs, "spec.runs", "must be a list of at least one run");
  for (size_t i = 0; i < runs.size(); i++) {
    const std::string run_path = Cat("spec.runs[", i, "]");
    Fields fields(path, runs[i], run_path);
    ScheduleEntry entry;
    YAML::Node file = fields.Required("file", "latency.yaml");
    entry.path = (directory / fields.Scalar(file, run_path + ".file")).string();
    entry.cron = ReadCron(fields);
    entry.zone = ReadZone(fields, schedule.zone);
    fields.Finish();
    for (size_t j = 0; j < i; j++) {
      if (schedule.runs[j].path == entry.path && schedule.runs[j].cron.text() == entry.cron.text())
        Fail(path, runs[i], run_path, Cat("the same file and cron as spec.runs[", j, "]"));
    }
    entry.kind = FileKind(entry.path);
    absl::Status loaded;
    if (entry.kind == "Experiment") {
      auto experiment = LoadExperiment(entry.path);
      loaded = experiment.status();
      if (loaded.ok()) entry.name = experiment->metadata.name;
    } else if (entry.kind == "GameDay") {
      auto game_day = LoadGameDay(entry.path);
      loaded = game_day.status();
      if (loaded.ok()) entry.name = game_day->metadata.name;
    } else {
      auto experiment = LoadExperiment(entry.path);  // its error says what is wrong with the file
      loaded = experiment.ok() ? absl::InvalidArgumentError(Cat(entry.path, ": not an Experiment or GameDay"))
                               : experiment.status();
    }
    if (!loaded.ok()) Fail(path, file, run_path + ".file", std::string(loaded.message()));
    schedule.runs.push_back(std::move(entry));
  }

  YAML::Node blackouts = spec.Get("blackouts");
  if (blackouts.IsDefined() && !blackouts.IsNull()) {
    if (!blackouts.IsSequence()) Fail(path, blackouts, "spec.blackouts", "must be a list of windows");
    for (size_t i = 0; i < blackouts.size(); i++) {
      const std::string window_path = Cat("spec.blackouts[", i, "]");
      Fields fields(path, blackouts[i], window_path);
      Blackout window;
      window.zone = ReadZone(fields, schedule.zone);
      const bool by_cron = blackouts[i]["cron"].IsDefined(), fixed = blackouts[i]["from"].IsDefined();
      if (by_cron == fixed) {
        Fail(path, blackouts[i], window_path,
             by_cron
                 ? "cron and duration, or from and to, not both"
                 : "a window needs cron and duration (e.g. {cron: \"0 0 24 12 *\", duration: 48h}) or from "
                   "and to");
      }
      if (by_cron) {
        window.cron = ReadCron(fields);
        fields.Required("duration", "48h");
        const auto duration = fields.Duration("duration", Milliseconds(0));
        if (duration < std::chrono::seconds(1))
          Fail(path, blackouts[i]["duration"], fields.Path("duration"), "must be 1s or more");
        window.duration = std::chrono::duration_cast<std::chrono::seconds>(duration);
      } else {
        window.from = ReadTime(fields, "from", window.zone);
        window.to = ReadTime(fields, "to", window.zone);
        if (window.to <= window.from) Fail(path, blackouts[i]["to"], fields.Path("to"), "must be after from");
      }
      fields.Finish();
      schedule.blackouts.push_back(std::move(window));
    }
  }
  spec.Finish();
  return schedule;
}

template <typename Read>
auto Load(Read read) -> absl::StatusOr<decltype(read())> {
  try {
    return read();
  } catch (const FileError& error) {
    return absl::InvalidArgumentError(error.text);
  }
}

}  // namespace

std::string FileKind(const std::string& path) {
  try {
    YAML::Node root = YAML::LoadFile(path);
    return root.IsMap() && root["kind"].IsScalar() ? root["kind"].Scalar() : "";
  } catch (const YAML::Exception&) {
    return "";
  }
}

void OverrideDuration(ExperimentFile& file, Milliseconds duration) {
  SetDuration(*file.experiment.mutable_duration(), duration);
  const auto& ttl = file.experiment.lease().ttl();
  if (Milliseconds(ttl.seconds() * 1000 + ttl.nanos() / 1'000'000) > duration)
    SetDuration(*file.experiment.mutable_lease()->mutable_ttl(), duration);
}

absl::StatusOr<ExperimentFile> LoadExperiment(const std::string& path) {
  return Load([&] { return ReadExperiment(path); });
}

absl::StatusOr<GameDayFile> LoadGameDay(const std::string& path) {
  return Load([&] {
    auto [metadata, spec] = OpenSpec(path, "GameDay", "{steps: [{experiment: latency.yaml}]}");
    GameDayFile game_day;
    game_day.path = path;
    game_day.metadata = std::move(metadata);
    game_day.continue_on_failure = spec.Number<bool>("continueOnFailure", false);
    YAML::Node steps = spec.Required("steps", "[{experiment: latency.yaml, pauseAfter: 1m}]");
    if (!steps.IsSequence() || steps.size() == 0)
      Fail(path, steps, "spec.steps", "must be a list of at least one step");
    const std::filesystem::path directory = std::filesystem::path(path).parent_path();
    for (size_t i = 0; i < steps.size(); i++) {
      const std::string step_path = Cat("spec.steps[", i, "]");
      Fields fields(path, steps[i], step_path);
      GameDayStep step;
      YAML::Node experiment = fields.Required("experiment", "latency.yaml");
      step.experiment_path = (directory / fields.Scalar(experiment, step_path + ".experiment")).string();
      step.pause_after = fields.Duration("pauseAfter", step.pause_after);
      fields.Finish();
      auto loaded = LoadExperiment(step.experiment_path);
      if (!loaded.ok())
        Fail(path, experiment, step_path + ".experiment", std::string(loaded.status().message()));
      step.experiment = *std::move(loaded);
      game_day.steps.push_back(std::move(step));
    }
    spec.Finish();
    return game_day;
  });
}

absl::StatusOr<ScheduleFile> LoadSchedule(const std::string& path) {
  return Load([&] { return ReadSchedule(path); });
}

absl::StatusOr<Inventory> LoadInventory(const std::string& path) {
  return Load([&] {
    YAML::Node root = ReadYaml(path);
    Fields document = OpenDocument(path, root, "Inventory");
    Inventory inventory;
    inventory.path = path;
    YAML::Node agents = document.Required("agents", "[{name: node-a, address: 198.18.0.2:7443}]");
    if (!agents.IsSequence() || agents.size() == 0)
      Fail(path, agents, "agents", "must be a list of at least one agent");
    std::set<std::string> names;
    for (size_t i = 0; i < agents.size(); i++) {
      const std::string agent_path = Cat("agents[", i, "]");
      Fields fields(path, agents[i], agent_path);
      InventoryAgent agent;
      agent.name = fields.Scalar(fields.Required("name", "node-a"), agent_path + ".name");
      if (!names.insert(agent.name).second) {
        Fail(path, agents[i]["name"], agent_path + ".name", Cat("\"", agent.name, "\" is used twice"));
      }
      agent.address =
          fields.Scalar(fields.Required("address", "198.18.0.2:7443 or unix:/run/faultline/faultlined.sock"),
                        agent_path + ".address");
      if (!agent.address.starts_with("unix:")) {
        auto parsed = api::ParseHostPort(agent.address);
        if (!parsed.ok())
          Fail(path, agents[i]["address"], agent_path + ".address", std::string(parsed.status().message()));
      }
      agent.labels = fields.Labels("labels");
      agent.interface = fields.String("interface");
      agent.netns = fields.String("netns");
      YAML::Node tls = fields.Get("tls");
      if (tls.IsDefined() && !tls.IsNull()) {
        Fields tls_fields(path, tls, agent_path + ".tls");
        agent.tls.cert = tls_fields.String("cert");
        agent.tls.key = tls_fields.String("key");
        agent.tls.ca = tls_fields.String("ca");
        tls_fields.Finish();
      }
      fields.Finish();
      inventory.agents.push_back(std::move(agent));
    }
    document.Finish();
    return inventory;
  });
}

}  // namespace faultline::ctl

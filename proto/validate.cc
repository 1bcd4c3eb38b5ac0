#include "faultline/api/validate.h"

#include <cctype>
#include <charconv>
#include <string>

#include "faultline/api/cat.h"
#include "faultline/api/units.h"
#include "google/protobuf/descriptor.h"

namespace faultline::api {
namespace {

using faultline::v1::Experiment;
using faultline::v1::Fault;
using faultline::v1::Target;
using google::protobuf::Duration;

// A cpu fault runs one thread per worker; more than this is a typo, not a load.
constexpr uint32_t kMaxStressWorkers = 1024;

absl::Status Error(std::string_view field, std::string_view reason) {
  return absl::InvalidArgumentError(Cat(field, ": ", reason));
}

// Durations are compared as (seconds, nanos), never converted to nanoseconds: that overflows int64 past
// 292 years, and a wrapped value would pass the maximum-duration check.
bool Positive(const Duration& d) { return d.seconds() > 0 || (d.seconds() == 0 && d.nanos() > 0); }
bool Negative(const Duration& d) { return d.seconds() < 0 || (d.seconds() == 0 && d.nanos() < 0); }
bool Longer(const Duration& a, const Duration& b) {
  return a.seconds() != b.seconds() ? a.seconds() > b.seconds() : a.nanos() > b.nanos();
}

// The range google/protobuf/duration.proto defines; the wire format does not enforce it.
absl::Status CheckDuration(std::string_view field, const Duration& d) {
  constexpr int64_t kMaxSeconds = 315'576'000'000;  // 10,000 years
  std::string bad =
      Cat("{seconds: ", d.seconds(), ", nanos: ", d.nanos(), "} is not a valid google.protobuf.Duration: ");
  if (d.seconds() < -kMaxSeconds || d.seconds() > kMaxSeconds) {
    return Error(field, Cat(bad, "seconds beyond 10000 years"));
  }
  if (d.nanos() <= -1'000'000'000 || d.nanos() >= 1'000'000'000 || (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return Error(field, Cat(bad, "nanos must be under one second and have the sign of seconds"));
  }
  return absl::OkStatus();
}

// The shortest text that reads back as the same double: "100.0000001", not ostream's "100".
std::string Number(double value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return ec == std::errc() ? std::string(buffer, end) : Cat(value);
}

absl::Status CheckEnum(std::string_view field, int value, const google::protobuf::EnumDescriptor* type) {
  if (type->FindValueByNumber(value) != nullptr) return absl::OkStatus();
  std::string known;
  for (int i = 0; i < type->value_count(); i++) known += Cat(i == 0 ? "" : ", ", type->value(i)->name());
  return Error(field, Cat("unknown value ", value, "; expected one of ", known));
}

bool ValidName(std::string_view name, size_t max_length, std::string_view extra_chars) {
  if (name.empty() || name.size() > max_length) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && extra_chars.find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

absl::Status CheckPercent(std::string_view field, double value, bool zero_allowed) {
  if (!(value >= 0 && value <= 100) || (!zero_allowed && value == 0)) {
    return Error(
        field, Cat(Number(value), " is not a percentage ", zero_allowed ? "from 0" : "over 0", " up to 100"));
  }
  return absl::OkStatus();
}

absl::Status CheckCidrs(const std::string& field,
                        const google::protobuf::RepeatedPtrField<std::string>& cidrs) {
  for (int i = 0; i < cidrs.size(); i++) {
    absl::StatusOr<Cidr> cidr = ParseCidr(cidrs[i]);
    if (!cidr.ok()) return Error(Cat(field, "[", i, "]"), std::string(cidr.status().message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateTarget(const std::string& field, const Target& target) {
  const std::string& name = target.interface();
  if (name.empty()) return Error(field + ".interface", "required: the interface to fault");
  // The kernel's dev_valid_name(): at most IFNAMSIZ - 1 bytes, not "." or "..", no '/', ':' or whitespace.
  std::string bad_name = Cat("\"", name, "\" is not an interface name: ");
  if (name.size() > 15) return Error(field + ".interface", Cat(bad_name, "longer than 15 bytes"));
  if (name == "." || name == "..") return Error(field + ".interface", Cat(bad_name, "reserved"));
  for (char c : name) {
    if (c == '/' || c == ':' || std::isspace(static_cast<unsigned char>(c))) {
      return Error(field + ".interface", Cat(bad_name, "'/', ':' and whitespace are not allowed"));
    }
  }
  if (target.has_netns_path() && (target.netns_path().empty() || target.netns_path()[0] != '/')) {
    return Error(field + ".netns_path",
                 Cat("\"", target.netns_path(), "\" is not an absolute path such as /run/netns/NAME"));
  }
  if (target.has_pid() && target.pid() == 0) return Error(field + ".pid", "0 is not a process id");
  if (absl::Status s =
          CheckEnum(field + ".direction", target.direction(), faultline::v1::Direction_descriptor());
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          CheckEnum(field + ".protocol", target.protocol(), faultline::v1::Protocol_descriptor());
      !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckCidrs(field + ".peers", target.peers()); !s.ok()) return s;
  if (absl::Status s = CheckCidrs(field + ".excluded_peers", target.excluded_peers()); !s.ok()) return s;
  for (int i = 0; i < target.ports_size(); i++) {
    const auto& range = target.ports(i);
    uint32_t last = range.last() == 0 ? range.first() : range.last();
    std::string port_field = Cat(field, ".ports[", i, "]");
    std::string ports =
        last == range.first() ? Cat("port ", last) : Cat("port range ", range.first(), "-", last);
    if (range.first() == 0 || range.first() > 65535 || last > 65535) {
      return Error(port_field, Cat(ports, " is not within 1-65535"));
    }
    if (last < range.first()) return Error(port_field, Cat(ports, " ends before it starts"));
  }
  if (target.ports_size() > 0 && target.protocol() == faultline::v1::PROTOCOL_ICMP) {
    return Error(field + ".ports", "ports need protocol tcp, udp or all; icmp has no ports");
  }
  return absl::OkStatus();
}

absl::Status ValidateKind(const std::string& field, const Fault& fault, const Experiment& experiment) {
  switch (fault.kind_case()) {
    case Fault::kPartition:
      return absl::OkStatus();
    case Fault::kLoss: {
      const auto& loss = fault.loss();
      if (absl::Status s =
              CheckEnum(field + ".loss.model", loss.model(), faultline::v1::Loss::Model_descriptor());
          !s.ok()) {
        return s;
      }
      if (loss.model() == faultline::v1::Loss::MODEL_GILBERT_ELLIOTT) {
        const auto& ge = loss.gilbert_elliott();
        if (absl::Status s = CheckPercent(field + ".loss.gilbert_elliott.p", ge.p(), false); !s.ok())
          return s;
        if (absl::Status s = CheckPercent(field + ".loss.gilbert_elliott.r", ge.r(), true); !s.ok()) return s;
        if (absl::Status s = CheckPercent(field + ".loss.gilbert_elliott.h", ge.h(), true); !s.ok()) return s;
        return CheckPercent(field + ".loss.gilbert_elliott.k", ge.k(), true);
      }
      if (absl::Status s = CheckPercent(field + ".loss.percent", loss.percent(), false); !s.ok()) return s;
      return CheckPercent(field + ".loss.correlation", loss.correlation(), true);
    }
    case Fault::kDelay: {
      const auto& delay = fault.delay();
      if (absl::Status s = CheckDuration(field + ".delay.latency", delay.latency()); !s.ok()) return s;
      if (absl::Status s = CheckDuration(field + ".delay.jitter", delay.jitter()); !s.ok()) return s;
      if (!Positive(delay.latency())) return Error(field + ".delay.latency", "must be more than 0");
      if (Negative(delay.jitter())) return Error(field + ".delay.jitter", "must not be negative");
      if (Longer(delay.jitter(), delay.latency())) {
        return Error(field + ".delay.jitter",
                     Cat(FormatDuration(delay.jitter()), " is larger than the latency ",
                         FormatDuration(delay.latency())));
      }
      if (absl::Status s = CheckEnum(field + ".delay.distribution", delay.distribution(),
                                     faultline::v1::Delay::Distribution_descriptor());
          !s.ok()) {
        return s;
      }
      // A distribution's table scales the jitter: without one it would add nothing but the latency.
      if (delay.distribution() > faultline::v1::Delay::DISTRIBUTION_UNIFORM && !Positive(delay.jitter())) {
        return Error(field + ".delay.distribution",
                     "this distribution needs a jitter: its table scales the jitter");
      }
      return CheckPercent(field + ".delay.correlation", delay.correlation(), true);
    }
    case Fault::kDuplicate:
      if (absl::Status s = CheckPercent(field + ".duplicate.percent", fault.duplicate().percent(), false);
          !s.ok()) {
        return s;
      }
      return CheckPercent(field + ".duplicate.correlation", fault.duplicate().correlation(), true);
    case Fault::kCorrupt:
      if (absl::Status s = CheckPercent(field + ".corrupt.percent", fault.corrupt().percent(), false);
          !s.ok()) {
        return s;
      }
      return CheckPercent(field + ".corrupt.correlation", fault.corrupt().correlation(), true);
    case Fault::kReorder: {
      if (absl::Status s = CheckPercent(field + ".reorder.percent", fault.reorder().percent(), false);
          !s.ok()) {
        return s;
      }
      bool has_delay = false;
      for (const Fault& other : experiment.faults()) {
        has_delay |=
            other.has_delay() && other.target().SerializeAsString() == fault.target().SerializeAsString();
      }
      if (!has_delay) return Error(field + ".reorder", "needs a delay fault on the same target");
      return CheckPercent(field + ".reorder.correlation", fault.reorder().correlation(), true);
    }
    case Fault::kBandwidth: {
      const auto& bandwidth = fault.bandwidth();
      if (bandwidth.rate_bits_per_second() == 0) {
        return Error(field + ".bandwidth.rate_bits_per_second", "must be more than 0");
      }
      if (absl::Status s = CheckDuration(field + ".bandwidth.latency", bandwidth.latency()); !s.ok()) {
        return s;
      }
      if (Negative(bandwidth.latency())) return Error(field + ".bandwidth.latency", "must not be negative");
      return CheckEnum(field + ".bandwidth.shaper", bandwidth.shaper(),
                       faultline::v1::Bandwidth::Shaper_descriptor());
    }
    case Fault::kCpu: {
      const auto& cpu = fault.cpu();
      if (cpu.load_percent() < 1 || cpu.load_percent() > 100) {
        return Error(field + ".cpu.load_percent", Cat(cpu.load_percent(), " is not within 1-100"));
      }
      if (cpu.workers() == 0 && cpu.cpus_size() == 0) {
        return Error(field + ".cpu", "set workers (a count) or cpus (a list)");
      }
      if (cpu.workers() > kMaxStressWorkers) {
        return Error(field + ".cpu.workers",
                     Cat(cpu.workers(), " is over the maximum of ", kMaxStressWorkers));
      }
      for (int i = 0; i < cpu.cpus_size(); i++) {
        for (int j = 0; j < i; j++) {
          if (cpu.cpus(j) == cpu.cpus(i)) {
            return Error(Cat(field, ".cpu.cpus[", i, "]"), Cat("CPU ", cpu.cpus(i), " is listed twice"));
          }
        }
      }
      if (cpu.nice() < -20 || cpu.nice() > 19) {
        return Error(field + ".cpu.nice", Cat(cpu.nice(), " is not within -20..19"));
      }
      return absl::OkStatus();
    }
    case Fault::kMemory: {
      const auto& memory = fault.memory();
      if (memory.size_case() == faultline::v1::Memory::kBytes && memory.bytes() == 0) {
        return Error(field + ".memory.bytes", "must be more than 0");
      }
      if (memory.size_case() == faultline::v1::Memory::kPercentOfTotal) {
        return CheckPercent(field + ".memory.percent_of_total", memory.percent_of_total(), false);
      }
      if (memory.size_case() == faultline::v1::Memory::SIZE_NOT_SET) {
        return Error(field + ".memory", "set bytes or percent_of_total");
      }
      return absl::OkStatus();
    }
    case Fault::KIND_NOT_SET:
      break;
  }
  return Error(field,
               "no fault kind set (one of delay, loss, duplicate, corrupt, reorder, bandwidth, "
               "partition, cpu, memory)");
}

}  // namespace

bool IsNetworkFault(const Fault& fault) {
  return fault.kind_case() != Fault::kCpu && fault.kind_case() != Fault::kMemory &&
         fault.kind_case() != Fault::KIND_NOT_SET;
}

std::string FaultKindName(const Fault& fault) {
  const auto* field = Fault::descriptor()->FindFieldByNumber(fault.kind_case());
  return field ? field->name() : "unset";
}

std::string DescribeFault(const Fault& fault) {
  std::string text = FaultKindName(fault);
  if (fault.has_loss()) {
    const v1::Loss& loss = fault.loss();
    text +=
        loss.model() == v1::Loss::MODEL_GILBERT_ELLIOTT
            ? Cat(" gilbert-elliott p ", loss.gilbert_elliott().p(), "% r ", loss.gilbert_elliott().r(), "%")
            : Cat(" ", loss.percent(), "%", loss.model() == v1::Loss::MODEL_NETEM_RANDOM ? " netem" : "");
  }
  if (fault.has_delay()) {
    text += " " + FormatDuration(fault.delay().latency());
    if (fault.delay().has_jitter()) text += "±" + FormatDuration(fault.delay().jitter());
  }
  if (fault.has_duplicate()) text += Cat(" ", fault.duplicate().percent(), "%");
  if (fault.has_corrupt()) text += Cat(" ", fault.corrupt().percent(), "%");
  if (fault.has_reorder()) text += Cat(" ", fault.reorder().percent(), "%");
  if (fault.has_bandwidth()) {
    uint64_t rate = fault.bandwidth().rate_bits_per_second();
    text += rate % 1'000'000 == 0 ? Cat(" ", rate / 1'000'000, "mbit") : Cat(" ", rate / 1000, "kbit");
  }
  if (fault.has_cpu()) {
    const v1::Cpu& cpu = fault.cpu();
    text += Cat(" ", cpu.load_percent(), "%");
    if (cpu.cpus().empty()) text += Cat(" on ", cpu.workers(), cpu.workers() == 1 ? " worker" : " workers");
    for (int i = 0; i < cpu.cpus_size(); i++) text += Cat(i ? "," : " on cpus ", cpu.cpus(i));
    if (cpu.nice() != 0) text += Cat(" nice ", cpu.nice());
    if (!cpu.cgroup().empty()) text += " in " + cpu.cgroup();
  }
  if (fault.has_memory()) {
    const v1::Memory& memory = fault.memory();
    text += memory.has_percent_of_total() ? Cat(" ", memory.percent_of_total(), "% of total")
                                          : Cat(" ", memory.bytes() >> 20, "MiB");
    if (memory.grow_bytes_per_second() > 0)
      text += Cat(" growing ", memory.grow_bytes_per_second() >> 20, "MiB/s");
    if (!memory.cgroup().empty()) text += " in " + memory.cgroup();
  }
  if (!fault.has_target()) return text;
  const v1::Target& target = fault.target();
  // Unvalidated requests are described too (the audit log records refused ones): an unknown enum value
  // has no name, so it is shown as a number.
  auto name = [](const std::string& full, size_t prefix, int value) {
    return full.size() > prefix ? full.substr(prefix) : Cat(value);
  };
  text += " " + (target.direction() == v1::DIRECTION_UNSPECIFIED
                     ? std::string("both")
                     : name(v1::Direction_Name(target.direction()), 10, target.direction()));
  // A target may list 100 000 peers; the line (a log line, an audit line) names the first few.
  auto list = [&text](const google::protobuf::RepeatedPtrField<std::string>& peers, const char* mark,
                      const char* more) {
    constexpr int kShown = 8;
    for (int i = 0; i < peers.size() && i < kShown; i++) text += Cat(" ", mark, peers[i]);
    if (peers.size() > kShown) text += Cat(" (", peers.size() - kShown, " more ", more, ")");
  };
  list(target.peers(), "", "peers");
  if (target.peers().empty()) text += " all-peers";
  list(target.excluded_peers(), "!", "excluded");
  for (const auto& range : target.ports()) {
    text += range.last() > range.first() ? Cat(" port ", range.first(), "-", range.last())
                                         : Cat(" port ", range.first());
  }
  if (target.protocol() > v1::PROTOCOL_ALL) {
    text += " " + name(v1::Protocol_Name(target.protocol()), 9, target.protocol());
  }
  text += " on " + target.interface();
  if (target.has_netns_path()) text += " in " + target.netns_path();
  if (target.has_pid()) text += Cat(" in pid ", target.pid());
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

absl::Status ValidateExperiment(const Experiment& experiment, const Limits& limits) {
  if (!experiment.id().empty() && !ValidName(experiment.id(), 64, "._-")) {
    return Error(
        "id", Cat("\"", experiment.id(), "\" is not an id: use at most 64 letters, digits, '.', '_' or '-'"));
  }
  if (experiment.has_duration()) {
    if (absl::Status s = CheckDuration("duration", experiment.duration()); !s.ok()) return s;
  }
  if (!experiment.has_duration() || !Positive(experiment.duration())) {
    return Error("duration", "required, and more than 0");
  }
  if (Positive(limits.max_duration) && Longer(experiment.duration(), limits.max_duration)) {
    return Error("duration", Cat(FormatDuration(experiment.duration()), " is over the agent's maximum of ",
                                 FormatDuration(limits.max_duration)));
  }
  if (experiment.has_lease()) {
    if (absl::Status s = CheckDuration("lease.ttl", experiment.lease().ttl()); !s.ok()) return s;
    if (!Positive(experiment.lease().ttl())) return Error("lease.ttl", "must be more than 0");
    // A lease longer than the experiment could never be missed.
    if (Longer(experiment.lease().ttl(), experiment.duration())) {
      return Error("lease.ttl", Cat(FormatDuration(experiment.lease().ttl()), " is longer than the duration ",
                                    FormatDuration(experiment.duration())));
    }
  }
  for (const auto& [key, value] : experiment.labels()) {
    if (!ValidName(key, 63, "._/-")) {
      return Error(Cat("labels[\"", key, "\"]"), "a label key is 1-63 letters, digits, '.', '_', '/' or '-'");
    }
    if (value.size() > 255) return Error(Cat("labels[\"", key, "\"]"), "a label value is at most 255 bytes");
  }
  if (experiment.faults_size() == 0) return Error("faults", "an experiment needs at least one fault");
  for (int i = 0; i < experiment.faults_size(); i++) {
    const Fault& fault = experiment.faults(i);
    std::string field = Cat("faults[", i, "]");
    if (absl::Status s = ValidateKind(field, fault, experiment); !s.ok()) return s;
    if (IsNetworkFault(fault)) {
      if (!fault.has_target()) return Error(field + ".target", "required for a network fault");
      if (absl::Status s = ValidateTarget(field + ".target", fault.target()); !s.ok()) return s;
    } else if (fault.has_target()) {
      return Error(field + ".target", Cat(FaultKindName(fault), " faults take no network target"));
    }
  }
  return absl::OkStatus();
}

}  // namespace faultline::api

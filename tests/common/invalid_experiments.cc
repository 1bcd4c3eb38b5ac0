#include "common/invalid_experiments.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "faultline/api/cat.h"
#include "google/protobuf/text_format.h"

namespace faultline::test {
namespace {

using faultline::api::Cat;
using faultline::v1::Experiment;

// The target every entry faults, unless the entry is about the target.
constexpr std::string_view kTarget = R"pb(netns_path: "/run/netns/x" interface: "veth0")pb";
constexpr std::string_view kDuration = "duration { seconds: 60 }";

// The table is code: text that does not parse is a bug in it, so it stops the test binary at once.
Experiment Parse(std::string_view text) {
  Experiment experiment;
  if (!google::protobuf::TextFormat::ParseFromString(std::string(text), &experiment)) {
    std::fprintf(stderr, "invalid_experiments.cc: not an Experiment in text format:\n%.*s\n",
                 static_cast<int>(text.size()), text.data());
    std::abort();
  }
  return experiment;
}

std::string PartitionFault() {
  return Cat("faults { partition {} target { ", kTarget, " peers: \"10.0.0.2\" } }");
}

// Experiment-level fields around a valid partition fault.
std::string WithPartition(std::string_view fields) { return Cat(fields, " ", PartitionFault()); }

// A one-minute partition on the given target.
std::string PartitionOn(std::string_view target) {
  return Cat(kDuration, " faults { partition {} target { ", target, " } }");
}

// A one-minute loss fault on the standard target.
std::string LossOf(std::string_view loss) {
  return Cat(kDuration, " faults { loss { ", loss, " } target { ", kTarget, " } }");
}

// One minute of the given faults.
std::string Faults(std::string_view faults) { return Cat(kDuration, " ", faults); }

}  // namespace

faultline::api::Limits InvalidExperimentLimits() {
  faultline::api::Limits limits;
  limits.max_duration.set_seconds(3600);
  return limits;
}

Experiment ValidPartitionExperiment() {
  return Parse(Cat("id: \"valid-partition\" ", kDuration, " ", PartitionFault()));
}

Experiment ValidLossExperiment() { return Parse(Cat("id: \"valid-loss\" ", LossOf("percent: 12.5"))); }

std::vector<InvalidExperiment> InvalidExperiments() {
  struct Entry {
    std::string name;
    std::string text;
    std::string expected_error;
  };
  const std::string kPercentOver0 = " is not a percentage over 0 up to 100";
  const std::string kNotInterface = "faults[0].target.interface: \"";
  const std::string kBadNanos =
      "} is not a valid google.protobuf.Duration: nanos must be under one second and have the sign of "
      "seconds";
  const std::vector<Entry> entries = {
      // The experiment.
      {"duration_missing", WithPartition(""), "duration: required, and more than 0"},
      {"duration_zero", WithPartition("duration {}"), "duration: required, and more than 0"},
      {"duration_negative", WithPartition("duration { seconds: -5 }"), "duration: required, and more than 0"},
      {"duration_over_max", WithPartition("duration { seconds: 3601 }"),
       "duration: 1h1s is over the agent's maximum of 1h"},
      {"duration_over_max_by_1ns", WithPartition("duration { seconds: 3600 nanos: 1 }"),
       "duration: 1h0.000000001s is over the agent's maximum of 1h"},
      // 18446744074 s is 2^64 ns and 0.29 s more: converted to int64 nanoseconds it wraps to 0.29 s.
      {"duration_over_max_wrapping_int64", WithPartition("duration { seconds: 18446744074 }"),
       "duration: 5124095h34m34s is over the agent's maximum of 1h"},
      {"duration_seconds_beyond_proto_range", WithPartition("duration { seconds: 315576000001 }"),
       "duration: {seconds: 315576000001, nanos: 0} is not a valid google.protobuf.Duration: seconds beyond "
       "10000 years"},
      {"duration_nanos_of_other_sign", WithPartition("duration { seconds: 60 nanos: -1 }"),
       Cat("duration: {seconds: 60, nanos: -1", kBadNanos)},
      {"duration_nanos_over_one_second", WithPartition("duration { nanos: 1000000000 }"),
       Cat("duration: {seconds: 0, nanos: 1000000000", kBadNanos)},
      {"id_bad_characters", WithPartition("id: \"bad id!\" duration { seconds: 60 }"),
       "id: \"bad id!\" is not an id: use at most 64 letters, digits, '.', '_' or '-'"},
      {"id_path", WithPartition("id: \"../journal\" duration { seconds: 60 }"),
       "id: \"../journal\" is not an id: use at most 64 letters, digits, '.', '_' or '-'"},
      {"id_too_long", WithPartition(Cat("id: \"", std::string(65, 'a'), "\" duration { seconds: 60 }")),
       Cat("id: \"", std::string(65, 'a'),
           "\" is not an id: use at most 64 letters, digits, '.', '_' or '-'")},
      {"lease_ttl_zero", WithPartition("duration { seconds: 60 } lease {}"),
       "lease.ttl: must be more than 0"},
      {"lease_ttl_over_duration", WithPartition("duration { seconds: 60 } lease { ttl { seconds: 61 } }"),
       "lease.ttl: 1m1s is longer than the duration 1m"},
      {"lease_ttl_negative", WithPartition("duration { seconds: 60 } lease { ttl { seconds: -1 } }"),
       "lease.ttl: must be more than 0"},
      {"label_key_invalid", WithPartition(R"pb(duration { seconds: 60 }
                                               labels { key: "team name" value: "x" })pb"),
       "labels[\"team name\"]: a label key is 1-63 letters, digits, '.', '_', '/' or '-'"},
      {"label_key_empty", WithPartition(R"pb(duration { seconds: 60 }
                                             labels { key: "" value: "x" })pb"),
       "labels[\"\"]: a label key is 1-63 letters, digits, '.', '_', '/' or '-'"},
      {"label_value_too_long",
       WithPartition(
           Cat("duration { seconds: 60 } labels { key: \"owner\" value: \"", std::string(256, 'x'), "\" }")),
       "labels[\"owner\"]: a label value is at most 255 bytes"},
      {"no_faults", std::string(kDuration), "faults: an experiment needs at least one fault"},

      // The fault.
      {"fault_without_kind", Faults(Cat("faults { target { ", kTarget, " } }")),
       "faults[0]: no fault kind set (one of delay, loss, duplicate, corrupt, reorder, bandwidth, partition, "
       "cpu, memory)"},
      {"partition_without_target", Faults("faults { partition {} }"),
       "faults[0].target: required for a network fault"},
      {"loss_without_target", Faults("faults { loss { percent: 10 } }"),
       "faults[0].target: required for a network fault"},
      {"second_fault_invalid",
       Faults(Cat(PartitionFault(), " faults { loss { percent: 0 } target { ", kTarget, " } }")),
       Cat("faults[1].loss.percent: 0", kPercentOver0)},
      {"cpu_with_target",
       Faults(Cat("faults { cpu { load_percent: 50 workers: 1 } target { ", kTarget, " } }")),
       "faults[0].target: cpu faults take no network target"},
      {"memory_with_target", Faults(Cat("faults { memory { bytes: 1048576 } target { ", kTarget, " } }")),
       "faults[0].target: memory faults take no network target"},

      // Stress.
      {"cpu_load_zero", Faults("faults { cpu { load_percent: 0 workers: 1 } }"),
       "faults[0].cpu.load_percent: 0 is not within 1-100"},
      {"cpu_load_over_100", Faults("faults { cpu { load_percent: 101 workers: 1 } }"),
       "faults[0].cpu.load_percent: 101 is not within 1-100"},
      {"cpu_without_workers_or_cpus", Faults("faults { cpu { load_percent: 50 } }"),
       "faults[0].cpu: set workers (a count) or cpus (a list)"},
      {"cpu_too_many_workers", Faults("faults { cpu { load_percent: 50 workers: 1025 } }"),
       "faults[0].cpu.workers: 1025 is over the maximum of 1024"},
      {"cpu_listed_twice", Faults("faults { cpu { load_percent: 50 cpus: 0 cpus: 1 cpus: 0 } }"),
       "faults[0].cpu.cpus[2]: CPU 0 is listed twice"},
      {"cpu_nice_out_of_range", Faults("faults { cpu { load_percent: 50 workers: 1 nice: 20 } }"),
       "faults[0].cpu.nice: 20 is not within -20..19"},
      {"memory_zero", Faults("faults { memory { bytes: 0 } }"),
       "faults[0].memory.bytes: must be more than 0"},
      {"memory_without_size", Faults("faults { memory { cgroup: 'x' } }"),
       "faults[0].memory: set bytes or percent_of_total"},
      {"memory_percent_over_100", Faults("faults { memory { percent_of_total: 101 } }"),
       Cat("faults[0].memory.percent_of_total: 101", kPercentOver0)},

      // The target.
      {"interface_missing", PartitionOn(R"pb(netns_path: "/run/netns/x")pb"),
       "faults[0].target.interface: required: the interface to fault"},
      {"interface_too_long", PartitionOn(R"pb(netns_path: "/run/netns/x" interface: "veth0123456789abc")pb"),
       Cat(kNotInterface, "veth0123456789abc\" is not an interface name: longer than 15 bytes")},
      {"interface_with_slash", PartitionOn(R"pb(netns_path: "/run/netns/x" interface: "veth/0")pb"),
       Cat(kNotInterface, "veth/0\" is not an interface name: '/', ':' and whitespace are not allowed")},
      {"interface_with_colon", PartitionOn(R"pb(netns_path: "/run/netns/x" interface: "veth0:1")pb"),
       Cat(kNotInterface, "veth0:1\" is not an interface name: '/', ':' and whitespace are not allowed")},
      {"interface_with_space", PartitionOn(R"pb(netns_path: "/run/netns/x" interface: "veth 0")pb"),
       Cat(kNotInterface, "veth 0\" is not an interface name: '/', ':' and whitespace are not allowed")},
      {"interface_dot_dot", PartitionOn(R"pb(netns_path: "/run/netns/x" interface: "..")pb"),
       Cat(kNotInterface, "..\" is not an interface name: reserved")},
      {"netns_path_relative", PartitionOn(R"pb(netns_path: "run/netns/x" interface: "veth0")pb"),
       "faults[0].target.netns_path: \"run/netns/x\" is not an absolute path such as /run/netns/NAME"},
      {"netns_path_empty", PartitionOn(R"pb(netns_path: "" interface: "veth0")pb"),
       "faults[0].target.netns_path: \"\" is not an absolute path such as /run/netns/NAME"},
      {"pid_zero", PartitionOn(R"pb(pid: 0 interface: "veth0")pb"),
       "faults[0].target.pid: 0 is not a process id"},
      {"peer_prefix_over_32", PartitionOn(Cat(kTarget, R"pb(peers: "10.0.0.0/33")pb")),
       "faults[0].target.peers[0]: \"10.0.0.0/33\" is not a CIDR: prefix length 33 is over 32"},
      {"peer_not_an_address", PartitionOn(Cat(kTarget, R"pb(peers: "10.0.0.256")pb")),
       "faults[0].target.peers[0]: \"10.0.0.256\" is not a CIDR: \"10.0.0.256\" is not an IPv4 or IPv6 "
       "address"},
      {"peer_hostname", PartitionOn(Cat(kTarget, R"pb(peers: "db.internal/24")pb")),
       "faults[0].target.peers[0]: \"db.internal/24\" is not a CIDR: \"db.internal\" is not an IPv4 or IPv6 "
       "address"},
      {"peer_v6_prefix_over_128", PartitionOn(Cat(kTarget, R"pb(peers: "2001:db8::/129")pb")),
       "faults[0].target.peers[0]: \"2001:db8::/129\" is not a CIDR: prefix length 129 is over 128"},
      {"peer_prefix_not_a_number", PartitionOn(Cat(kTarget, R"pb(peers: "10.0.0.0/abc")pb")),
       "faults[0].target.peers[0]: \"10.0.0.0/abc\" is not a CIDR: the prefix length is not a number"},
      {"peer_prefix_negative", PartitionOn(Cat(kTarget, R"pb(peers: "10.0.0.0/-1")pb")),
       "faults[0].target.peers[0]: \"10.0.0.0/-1\" is not a CIDR: the prefix length is not a number"},
      {"peer_prefix_empty", PartitionOn(Cat(kTarget, R"pb(peers: "10.0.0.0/")pb")),
       "faults[0].target.peers[0]: \"10.0.0.0/\" is not a CIDR: the prefix length is not a number"},
      {"second_peer_invalid", PartitionOn(Cat(kTarget, R"pb(peers: "10.0.0.2" peers: "10.0.0.0/40")pb")),
       "faults[0].target.peers[1]: \"10.0.0.0/40\" is not a CIDR: prefix length 40 is over 32"},
      {"excluded_peer_invalid", PartitionOn(Cat(kTarget, R"pb(peers: "10.0.0.0/8"
                                                              excluded_peers: "10.1.0.0/99")pb")),
       "faults[0].target.excluded_peers[0]: \"10.1.0.0/99\" is not a CIDR: prefix length 99 is over 32"},
      {"port_zero", PartitionOn(Cat(kTarget, " protocol: PROTOCOL_TCP ports {}")),
       "faults[0].target.ports[0]: port 0 is not within 1-65535"},
      {"port_70000", PartitionOn(Cat(kTarget, " protocol: PROTOCOL_TCP ports { first: 70000 }")),
       "faults[0].target.ports[0]: port 70000 is not within 1-65535"},
      {"port_range_past_65535",
       PartitionOn(Cat(kTarget, " protocol: PROTOCOL_UDP ports { first: 65000 last: 70000 }")),
       "faults[0].target.ports[0]: port range 65000-70000 is not within 1-65535"},
      {"port_range_reversed",
       PartitionOn(Cat(kTarget, " protocol: PROTOCOL_TCP ports { first: 8100 last: 8000 }")),
       "faults[0].target.ports[0]: port range 8100-8000 ends before it starts"},
      {"second_port_invalid",
       PartitionOn(Cat(kTarget, " protocol: PROTOCOL_TCP ports { first: 80 } ports { first: 0 last: 10 }")),
       "faults[0].target.ports[1]: port range 0-10 is not within 1-65535"},
      {"ports_with_icmp", PartitionOn(Cat(kTarget, " protocol: PROTOCOL_ICMP ports { first: 80 }")),
       "faults[0].target.ports: ports need protocol tcp, udp or all; icmp has no ports"},
      {"direction_unknown", PartitionOn(Cat(kTarget, " direction: 99")),
       "faults[0].target.direction: unknown value 99; expected one of DIRECTION_UNSPECIFIED, "
       "DIRECTION_EGRESS, "
       "DIRECTION_INGRESS, DIRECTION_BOTH"},
      {"direction_negative", PartitionOn(Cat(kTarget, " direction: -1")),
       "faults[0].target.direction: unknown value -1; expected one of DIRECTION_UNSPECIFIED, "
       "DIRECTION_EGRESS, "
       "DIRECTION_INGRESS, DIRECTION_BOTH"},
      {"protocol_unknown", PartitionOn(Cat(kTarget, " protocol: 42")),
       "faults[0].target.protocol: unknown value 42; expected one of PROTOCOL_UNSPECIFIED, PROTOCOL_ALL, "
       "PROTOCOL_TCP, PROTOCOL_UDP, PROTOCOL_ICMP"},

      // Loss.
      {"loss_zero", LossOf("percent: 0"), Cat("faults[0].loss.percent: 0", kPercentOver0)},
      {"loss_over_100", LossOf("percent: 100.5"), Cat("faults[0].loss.percent: 100.5", kPercentOver0)},
      {"loss_just_over_100", LossOf("percent: 100.0000001"),
       Cat("faults[0].loss.percent: 100.0000001", kPercentOver0)},
      {"loss_negative", LossOf("percent: -1"), Cat("faults[0].loss.percent: -1", kPercentOver0)},
      {"loss_nan", LossOf("percent: nan"), Cat("faults[0].loss.percent: nan", kPercentOver0)},
      {"loss_correlation_over_100", LossOf("percent: 10 correlation: 101"),
       "faults[0].loss.correlation: 101 is not a percentage from 0 up to 100"},
      {"loss_model_unknown", LossOf("percent: 10 model: 7"),
       "faults[0].loss.model: unknown value 7; expected one of MODEL_UNSPECIFIED, MODEL_EBPF, "
       "MODEL_NETEM_RANDOM, "
       "MODEL_GILBERT_ELLIOTT"},
      {"loss_gilbert_elliott_p_zero", LossOf("model: MODEL_GILBERT_ELLIOTT gilbert_elliott { r: 10 }"),
       Cat("faults[0].loss.gilbert_elliott.p: 0", kPercentOver0)},

      // Netem kinds beyond partition and loss.
      {"delay_jitter_over_latency",
       Faults(Cat("faults { delay { latency { nanos: 10000000 } jitter { nanos: 20000000 } } target { ",
                  kTarget, " } }")),
       "faults[0].delay.jitter: 20ms is larger than the latency 10ms"},
      {"delay_latency_negative",
       Faults(Cat("faults { delay { latency { seconds: -1 } } target { ", kTarget, " } }")),
       "faults[0].delay.latency: must be more than 0"},
      {"delay_latency_missing", Faults(Cat("faults { delay {} target { ", kTarget, " } }")),
       "faults[0].delay.latency: must be more than 0"},
      {"delay_jitter_negative",
       Faults(Cat("faults { delay { latency { nanos: 10000000 } jitter { nanos: -1 } } target { ", kTarget,
                  " } }")),
       "faults[0].delay.jitter: must not be negative"},
      {"delay_distribution_unknown",
       Faults(Cat("faults { delay { latency { nanos: 10000000 } jitter { nanos: 1000000 } distribution: 9 } "
                  "target { ",
                  kTarget, " } }")),
       "faults[0].delay.distribution: unknown value 9; expected one of DISTRIBUTION_UNSPECIFIED, "
       "DISTRIBUTION_UNIFORM, DISTRIBUTION_NORMAL, DISTRIBUTION_PARETO, DISTRIBUTION_PARETONORMAL"},
      {"delay_distribution_without_jitter",
       Faults(
           Cat("faults { delay { latency { nanos: 10000000 } distribution: DISTRIBUTION_NORMAL } target { ",
               kTarget, " } }")),
       "faults[0].delay.distribution: this distribution needs a jitter: its table scales the jitter"},
      {"delay_correlation_over_100",
       Faults(
           Cat("faults { delay { latency { nanos: 10000000 } correlation: 150 } target { ", kTarget, " } }")),
       "faults[0].delay.correlation: 150 is not a percentage from 0 up to 100"},
      {"loss_gilbert_elliott_r_over_100",
       LossOf("model: MODEL_GILBERT_ELLIOTT gilbert_elliott { p: 10 r: 120 }"),
       "faults[0].loss.gilbert_elliott.r: 120 is not a percentage from 0 up to 100"},
      {"duplicate_over_100", Faults(Cat("faults { duplicate { percent: 150 } target { ", kTarget, " } }")),
       Cat("faults[0].duplicate.percent: 150", kPercentOver0)},
      {"corrupt_zero", Faults(Cat("faults { corrupt {} target { ", kTarget, " } }")),
       Cat("faults[0].corrupt.percent: 0", kPercentOver0)},
      {"reorder_over_100",
       Faults(Cat("faults { delay { latency { nanos: 10000000 } } target { ", kTarget,
                  " } } faults { reorder { percent: 101 } target { ", kTarget, " } }")),
       Cat("faults[1].reorder.percent: 101", kPercentOver0)},
      {"bandwidth_zero", Faults(Cat("faults { bandwidth {} target { ", kTarget, " } }")),
       "faults[0].bandwidth.rate_bits_per_second: must be more than 0"},
      {"bandwidth_latency_negative",
       Faults(Cat("faults { bandwidth { rate_bits_per_second: 1000000 latency { seconds: -1 } } target { ",
                  kTarget, " } }")),
       "faults[0].bandwidth.latency: must not be negative"},
      {"reorder_without_delay", Faults(Cat("faults { reorder { percent: 25 } target { ", kTarget, " } }")),
       "faults[0].reorder: needs a delay fault on the same target"},
      {"reorder_with_delay_on_other_interface",
       Faults(Cat(R"pb(faults {
                         delay { latency { nanos: 10000000 } }
                         target { netns_path: "/run/netns/x" interface: "veth1" }
                       }
                       faults { reorder { percent: 25 }
                                target {)pb",
                  kTarget, " } }")),
       "faults[1].reorder: needs a delay fault on the same target"},
  };

  std::vector<InvalidExperiment> table;
  table.reserve(entries.size());
  for (const Entry& entry : entries) {
    InvalidExperiment invalid{entry.name, Parse(entry.text), entry.expected_error};
    // An id of its own makes each refusal easy to find in the agent's log.
    if (invalid.experiment.id().empty()) {
      std::string id = Cat("invalid-", entry.name);
      std::replace(id.begin(), id.end(), '_', '-');
      invalid.experiment.set_id(id);
    }
    table.push_back(std::move(invalid));
  }
  return table;
}

}  // namespace faultline::test

#include "fault_spec.h"

#include <cctype>
#include <map>

#include "faultline/api/cat.h"
#include "faultline/api/units.h"

namespace faultline::ctl {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

// Thrown inside BuildFaults only, caught at its end: the first bad option stops the translation.
struct Bad {
  SpecError error;
};

template <typename T>
T Or(absl::StatusOr<T> value, const std::string& option) {
  if (!value.ok()) throw Bad{{option, std::string(value.status().message())}};
  return *std::move(value);
}

v1::Target BuildTarget(const TargetSpec& spec) {
  v1::Target target;
  if (!spec.netns.empty()) target.set_netns_path(spec.netns);
  if (spec.pid != 0) target.set_pid(spec.pid);
  target.set_interface(spec.interface);
  if (spec.direction == "egress") {
    target.set_direction(v1::DIRECTION_EGRESS);
  } else if (spec.direction == "ingress") {
    target.set_direction(v1::DIRECTION_INGRESS);
  } else if (spec.direction == "both") {
    target.set_direction(v1::DIRECTION_BOTH);
  } else {
    throw Bad{{"direction", Cat("\"", spec.direction, "\" is not egress, ingress or both")}};
  }
  const std::pair<const char*, v1::Protocol> protocols[] = {{"all", v1::PROTOCOL_ALL},
                                                            {"tcp", v1::PROTOCOL_TCP},
                                                            {"udp", v1::PROTOCOL_UDP},
                                                            {"icmp", v1::PROTOCOL_ICMP}};
  bool known = false;
  for (const auto& [name, protocol] : protocols) {
    if (spec.protocol == name) {
      target.set_protocol(protocol);
      known = true;
    }
  }
  if (!known) throw Bad{{"protocol", Cat("\"", spec.protocol, "\" is not tcp, udp, icmp or all")}};
  for (const auto& peer : spec.peers) target.add_peers(peer);
  for (const auto& peer : spec.excluded_peers) target.add_excluded_peers(peer);
  for (const auto& port : spec.ports) *target.add_ports() = Or(api::ParsePortRange(port), "ports");
  return target;
}

std::vector<v1::Fault> Build(const std::string& kind, const FaultSpec& spec) {
  std::vector<v1::Fault> faults(1);
  v1::Fault* fault = &faults[0];
  if (!IsStressKind(kind)) *fault->mutable_target() = BuildTarget(spec.target);
  auto percent = [&] {
    if (spec.percent.empty()) throw Bad{{"percent", "required, e.g. 10"}};
    return Or(api::ParsePercent(spec.percent), "percent");
  };
  auto correlation = [&] { return Or(api::ParsePercent(spec.correlation), "correlation"); };
  if (kind == "partition") {
    fault->mutable_partition();
  } else if (kind == "loss") {
    v1::Loss* loss = fault->mutable_loss();
    if (spec.model == "gilbert-elliott") {
      loss->set_model(v1::Loss::MODEL_GILBERT_ELLIOTT);
      v1::Loss::GilbertElliott* ge = loss->mutable_gilbert_elliott();
      ge->set_p(spec.ge_p);
      ge->set_r(spec.ge_r);
      ge->set_h(spec.ge_h);
      ge->set_k(spec.ge_k);
    } else if (spec.model == "ebpf" || spec.model == "netem") {
      loss->set_model(spec.model == "ebpf" ? v1::Loss::MODEL_EBPF : v1::Loss::MODEL_NETEM_RANDOM);
      loss->set_percent(percent());
      loss->set_correlation(correlation());
    } else {
      throw Bad{{"model", Cat("\"", spec.model, "\" is not ebpf, netem or gilbert-elliott")}};
    }
  } else if (kind == "delay" || kind == "reorder") {
    v1::Delay* delay = fault->mutable_delay();
    if (spec.latency.empty()) throw Bad{{"latency", "required, e.g. 50ms"}};
    *delay->mutable_latency() = Or(api::ParseDuration(spec.latency), "latency");
    *delay->mutable_jitter() = Or(api::ParseDuration(spec.jitter), "jitter");
    if (kind == "delay") delay->set_correlation(correlation());
    std::string name = "DISTRIBUTION_";
    for (char c : spec.distribution) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    v1::Delay::Distribution distribution;
    if (!v1::Delay::Distribution_Parse(name, &distribution)) {
      throw Bad{{"distribution",
                 Cat("\"", spec.distribution, "\" is not uniform, normal, pareto or paretonormal")}};
    }
    delay->set_distribution(distribution);
    delay->set_keep_order(spec.keep_order);
    if (kind == "reorder") {
      v1::Fault reorder;
      *reorder.mutable_target() = fault->target();
      reorder.mutable_reorder()->set_percent(percent());
      reorder.mutable_reorder()->set_correlation(correlation());
      reorder.mutable_reorder()->set_gap(spec.gap);
      faults.push_back(std::move(reorder));
    }
  } else if (kind == "duplicate") {
    fault->mutable_duplicate()->set_percent(percent());
    fault->mutable_duplicate()->set_correlation(correlation());
  } else if (kind == "corrupt") {
    fault->mutable_corrupt()->set_percent(percent());
    fault->mutable_corrupt()->set_correlation(correlation());
  } else if (kind == "cpu") {
    v1::Cpu* cpu = fault->mutable_cpu();
    cpu->set_load_percent(spec.load);
    // One worker unless told otherwise; a list of CPUs puts one on each.
    cpu->set_workers(spec.cpus.empty() && spec.workers == 0 ? 1 : spec.workers);
    for (uint32_t n : spec.cpus) cpu->add_cpus(n);
    cpu->set_nice(spec.nice);
    cpu->set_cgroup(spec.cgroup);
  } else if (kind == "memory") {
    v1::Memory* memory = fault->mutable_memory();
    if (spec.size.empty()) throw Bad{{"size", "required, e.g. 512MiB or 10%"}};
    if (spec.size.ends_with('%')) {
      memory->set_percent_of_total(Or(api::ParsePercent(spec.size), "size"));
    } else {
      memory->set_bytes(Or(api::ParseSize(spec.size), "size"));
    }
    if (!spec.grow.empty()) {
      std::string per_second =
          spec.grow.ends_with("/s") ? spec.grow.substr(0, spec.grow.size() - 2) : spec.grow;
      memory->set_grow_bytes_per_second(Or(api::ParseSize(per_second), "grow"));
    }
    memory->set_cgroup(spec.cgroup);
  } else if (kind == "bandwidth") {
    v1::Bandwidth* bandwidth = fault->mutable_bandwidth();
    if (spec.rate.empty()) throw Bad{{"rate", "required, e.g. 10mbit"}};
    bandwidth->set_rate_bits_per_second(Or(api::ParseRate(spec.rate), "rate"));
    if (!spec.burst.empty())
      bandwidth->set_burst_bytes(static_cast<uint32_t>(Or(api::ParseSize(spec.burst), "burst")));
    if (!spec.limit.empty())
      bandwidth->set_limit_bytes(static_cast<uint32_t>(Or(api::ParseSize(spec.limit), "limit")));
    if (spec.shaper != "tbf" && spec.shaper != "htb" && spec.shaper != "netem") {
      throw Bad{{"shaper", Cat("\"", spec.shaper, "\" is not tbf, htb or netem")}};
    }
    bandwidth->set_shaper(spec.shaper == "tbf"   ? v1::Bandwidth::SHAPER_TBF
                          : spec.shaper == "htb" ? v1::Bandwidth::SHAPER_HTB
                                                 : v1::Bandwidth::SHAPER_NETEM);
  } else {
    std::string kinds;
    for (const auto& known : FaultKinds()) kinds += (kinds.empty() ? "" : ", ") + known;
    throw Bad{{"", Cat("\"", kind, "\" is not a fault kind (", kinds, ")")}};
  }
  return faults;
}

}  // namespace

const std::vector<std::string>& FaultKinds() {
  static const std::vector<std::string> kinds = {"partition", "loss",      "delay", "duplicate", "corrupt",
                                                 "reorder",   "bandwidth", "cpu",   "memory"};
  return kinds;
}

const std::vector<std::string>& FaultOptions(const std::string& kind) {
  static const std::map<std::string, std::vector<std::string>> options = {
      {"partition", {}},
      {"loss", {"percent", "correlation", "model", "p", "r", "h", "k"}},
      {"delay", {"latency", "jitter", "correlation", "distribution", "keepOrder"}},
      {"duplicate", {"percent", "correlation"}},
      {"corrupt", {"percent", "correlation"}},
      {"reorder", {"percent", "correlation", "gap", "latency", "jitter", "distribution"}},
      {"bandwidth", {"rate", "burst", "limit", "shaper"}},
      {"cpu", {"load", "workers", "cpus", "nice", "cgroup"}},
      {"memory", {"size", "grow", "cgroup"}},
  };
  static const std::vector<std::string> none;
  auto it = options.find(kind);
  return it == options.end() ? none : it->second;
}

bool IsStressKind(const std::string& kind) { return kind == "cpu" || kind == "memory"; }

absl::StatusOr<std::vector<v1::Fault>> BuildFaults(const std::string& kind, const FaultSpec& spec,
                                                   SpecError* error) {
  try {
    return Build(kind, spec);
  } catch (const Bad& bad) {
    if (error != nullptr) *error = bad.error;
    return absl::InvalidArgumentError(
        bad.error.option.empty() ? bad.error.message : Cat(bad.error.option, ": ", bad.error.message));
  }
}

}  // namespace faultline::ctl

#include "metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>

namespace faultline::metrics {
namespace {

const char* TypeName(int type) {
  static const char* const kNames[] = {"counter", "gauge", "histogram"};
  return kNames[type];
}

// Backslash and line feed escaped, and double quotes too in label values (help text keeps them).
std::string Escape(std::string_view text, bool quotes) {
  std::string out;
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && quotes)
      out += "\\\"";
    else
      out += c;
  }
  return out;
}

// The latencies of changing the kernel: a few milliseconds for a program and a filter, seconds for
// many faults on a busy machine.
const std::vector<double> kLatencyBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25,  0.5,    1,     2.5,  5,     10};

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char text[32];
  auto [end, error] = std::to_chars(text, text + sizeof(text), value);
  return std::string(text, end);
}

std::string EscapeLabelValue(std::string_view value) { return Escape(value, true); }

double& Registry::ValueOf(size_t family, std::string_view label_value) {
  auto& values = families_[family].values;
  auto it = values.find(label_value);
  if (it == values.end()) it = values.emplace(std::string(label_value), 0).first;
  return it->second;
}

void Counter::Increment(std::string_view label_value, double by) {
  std::lock_guard lock(registry_.mutex_);
  registry_.ValueOf(family_, label_value) += by;
}

void Gauge::Set(std::string_view label_value, double value) {
  std::lock_guard lock(registry_.mutex_);
  registry_.ValueOf(family_, label_value) = value;
}

void Histogram::Observe(double value) {
  std::lock_guard lock(registry_.mutex_);
  Registry::Family& family = registry_.families_[family_];
  // The first bucket whose upper bound holds the value; past the last bound, the +Inf bucket.
  size_t bucket = std::lower_bound(family.bounds.begin(), family.bounds.end(), value) - family.bounds.begin();
  family.bucket_counts[bucket]++;
  family.sum += value;
  family.count++;
}

size_t Registry::Add(Family family) {
  std::lock_guard lock(mutex_);
  families_.push_back(std::move(family));
  return families_.size() - 1;
}

Registry::Family Registry::Labelled(Type type, std::string name, std::string help, std::string label,
                                    const std::vector<std::string>& label_values) {
  Family family{.name = std::move(name), .help = std::move(help), .type = type, .label = std::move(label)};
  for (const auto& value : label_values) family.values[value] = 0;
  if (family.label.empty()) family.values[""] = 0;
  return family;
}

Counter& Registry::AddCounter(std::string name, std::string help, std::string label,
                              const std::vector<std::string>& label_values) {
  Family family = Labelled(Type::kCounter, std::move(name), std::move(help), std::move(label), label_values);
  counters_.push_back(Counter(*this, Add(std::move(family))));
  return counters_.back();
}

Gauge& Registry::AddGauge(std::string name, std::string help, std::string label,
                          const std::vector<std::string>& label_values) {
  Family family = Labelled(Type::kGauge, std::move(name), std::move(help), std::move(label), label_values);
  gauges_.push_back(Gauge(*this, Add(std::move(family))));
  return gauges_.back();
}

Histogram& Registry::AddHistogram(std::string name, std::string help, std::vector<double> bounds) {
  Family family{.name = std::move(name), .help = std::move(help), .type = Type::kHistogram};
  std::sort(bounds.begin(), bounds.end());
  family.bucket_counts.assign(bounds.size() + 1, 0);
  family.bounds = std::move(bounds);
  histograms_.push_back(Histogram(*this, Add(std::move(family))));
  return histograms_.back();
}

void Registry::OnCollect(std::function<void()> collect) {
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::Render() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mutex_);
    collectors = collectors_;
  }
  for (const auto& collect : collectors) collect();  // they set gauges, which takes the lock

  std::lock_guard lock(mutex_);
  std::ostringstream out;
  for (const Family& family : families_) {
    out << "# HELP " << family.name << " " << Escape(family.help, false) << "\n";
    out << "# TYPE " << family.name << " " << TypeName(static_cast<int>(family.type)) << "\n";
    if (family.type == Type::kHistogram) {
      uint64_t cumulative = 0;
      for (size_t i = 0; i <= family.bounds.size(); i++) {
        cumulative += family.bucket_counts[i];
        double bound = i < family.bounds.size() ? family.bounds[i] : INFINITY;
        out << family.name << "_bucket{le=\"" << FormatValue(bound) << "\"} " << cumulative << "\n";
      }
      out << family.name << "_sum " << FormatValue(family.sum) << "\n";
      out << family.name << "_count " << family.count << "\n";
      continue;
    }
    for (const auto& [label_value, value] : family.values) {
      out << family.name;
      if (!family.label.empty())
        out << "{" << family.label << "=\"" << EscapeLabelValue(label_value) << "\"}";
      out << " " << FormatValue(value) << "\n";
    }
  }
  return out.str();
}

AgentMetrics::AgentMetrics(Registry& registry)
    : registry(registry),
      experiments(registry.AddGauge(
          "faultline_experiments",
          "Experiments the agent holds, by state (ended ones: the most recent 1000).", "state",
          {"pending", "applying", "active", "reverting", "reverted", "failed", "expired", "aborted"})),
      faults_active(
          registry.AddGauge("faultline_faults_active", "Faults of active experiments, by kind.", "kind")),
      inject_seconds(registry.AddHistogram(
          "faultline_inject_duration_seconds",
          "Time to inject a new experiment: waiting for the experiments applied before it, applying its "
          "faults, and undoing them when one fails.",
          kLatencyBounds)),
      revert_seconds(registry.AddHistogram("faultline_revert_duration_seconds",
                                           "Time to undo an experiment's faults (revert, halt, expiry, "
                                           "lease loss).",
                                           kLatencyBounds)),
      lease_losses(registry.AddCounter("faultline_lease_losses_total",
                                       "Experiments reverted because their lease was not renewed in time.")),
      journal_replays(
          registry.AddCounter("faultline_journal_replays_total",
                              "Journal replays at start that found changes a previous agent left.")),
      journal_changes(registry.AddCounter("faultline_journal_replayed_changes_total",
                                          "Changes found in the journal at start, by what the replay did.",
                                          "result", {"undone", "nothing_to_undo", "failed"})),
      errors(registry.AddCounter("faultline_errors_total",
                                 "Calls the agent answered with an error, by gRPC code.", "code")) {}

void AgentMetrics::JournalReplayed(int undone, int nothing_to_undo, int failed) {
  if (undone + nothing_to_undo + failed == 0) return;  // a clean start: nothing was replayed
  journal_replays.Increment();
  journal_changes.Increment("undone", undone);
  journal_changes.Increment("nothing_to_undo", nothing_to_undo);
  journal_changes.Increment("failed", failed);
}

}  // namespace faultline::metrics

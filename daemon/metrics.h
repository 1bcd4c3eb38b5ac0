// The agent's metrics: a small registry of counters, gauges and histograms rendered in Prometheus'
// text exposition format (version 0.0.4), and the agent's own metrics in it (AgentMetrics).
// metrics_server.h serves them over HTTP (--metrics-listen).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace faultline::metrics {

class Registry;

// What Counter, Gauge and Histogram share: the family of the registry they change.
class FamilyHandle {
 protected:
  friend class Registry;
  FamilyHandle(Registry& registry, size_t family) : registry_(registry), family_(family) {}
  Registry& registry_;
  const size_t family_;
};

// A counter family: a monotonic value per value of its label (or one value, without a label).
class Counter : public FamilyHandle {
 public:
  void Increment(std::string_view label_value = {}, double by = 1);

 private:
  using FamilyHandle::FamilyHandle;
  friend class Registry;
};

// A gauge family: a value per value of its label, set to what it is now.
class Gauge : public FamilyHandle {
 public:
  void Set(std::string_view label_value, double value);

 private:
  using FamilyHandle::FamilyHandle;
  friend class Registry;
};

// A histogram of observations (seconds, say) in cumulative buckets, with their sum and count.
class Histogram : public FamilyHandle {
 public:
  void Observe(double value);

 private:
  using FamilyHandle::FamilyHandle;
  friend class Registry;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Families are rendered in the order they are added. `label` is the name of the family's one label
  // ("" for none); `label_values` are shown from the start, at 0, so that a series exists before
  // its first change.
  Counter& AddCounter(std::string name, std::string help, std::string label = {},
                      const std::vector<std::string>& label_values = {});
  Gauge& AddGauge(std::string name, std::string help, std::string label = {},
                  const std::vector<std::string>& label_values = {});
  // `bounds`: the buckets' upper bounds, ascending; a +Inf bucket is added.
  Histogram& AddHistogram(std::string name, std::string help, std::vector<double> bounds);

  // `collect` runs before each Render, to set gauges from what they measure.
  void OnCollect(std::function<void()> collect);

  // Every family in the text exposition format.
  std::string Render() const;

 private:
  friend class Counter;
  friend class Gauge;
  friend class Histogram;
  enum class Type { kCounter, kGauge, kHistogram };
  // Every member has an initializer: GCC 12 warns about designated initializers that skip one without.
  struct Family {
    std::string name{};
    std::string help{};
    Type type = Type::kCounter;
    std::string label{};
    std::map<std::string, double, std::less<>> values{};  // by label value
    std::vector<double> bounds{};                         // histogram
    std::vector<uint64_t> bucket_counts{};                // histogram: per bucket, not cumulative
    double sum = 0;
    uint64_t count = 0;
  };
  // A counter or gauge family, its label values at 0 (or its one value, without a label).
  static Family Labelled(Type type, std::string name, std::string help, std::string label,
                         const std::vector<std::string>& label_values);
  size_t Add(Family family);
  // The value of `label_value` in a counter or gauge family, made 0 at first use. Under mutex_.
  double& ValueOf(size_t family, std::string_view label_value);

  mutable std::mutex mutex_;
  std::vector<Family> families_;
  std::deque<Counter> counters_;  // deques: the handles stay where they are as more are added
  std::deque<Gauge> gauges_;
  std::deque<Histogram> histograms_;
  std::vector<std::function<void()>> collectors_;
};

// A number as the text format writes it: shortest round-trip form, "+Inf", "-Inf", "NaN".
std::string FormatValue(double value);

// A label value with backslash, double quote and line feed escaped.
std::string EscapeLabelValue(std::string_view value);

// The agent's metrics. Every name is here; README.md shows a scrape.
struct AgentMetrics {
  explicit AgentMetrics(Registry& registry);

  Registry& registry;
  Gauge& experiments;         // faultline_experiments{state}: records the agent holds, by state
  Gauge& faults_active;       // faultline_faults_active{kind}: faults of active experiments
  Histogram& inject_seconds;  // faultline_inject_duration_seconds: Inject of a new experiment
  Histogram& revert_seconds;  // faultline_revert_duration_seconds: undoing an experiment's faults
  Counter& lease_losses;      // faultline_lease_losses_total
  Counter& journal_replays;   // faultline_journal_replays_total
  Counter& journal_changes;   // faultline_journal_replayed_changes_total{result}
  Counter& errors;            // faultline_errors_total{code}: calls answered with an error

  // What a journal replay at start did (kernel::Journal::Replay's summary).
  void JournalReplayed(int undone, int nothing_to_undo, int failed);
};

}  // namespace faultline::metrics

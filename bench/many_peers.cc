// Section 2 of the benchmarks: a partition aimed at N peer CIDRs (N = 1 to 100 000), the time to
// apply it and the time to change its set of peers, for faultline and for the two scripts a user
// would otherwise write: an ipset with one iptables rule (filled with `ipset restore`), and one tc u32
// filter per peer (added with `tc -batch`). Run by bench/many-peers, which makes the namespace and
// starts the agent.
//
// The peers are distinct /32s counted up from 198.18.1.0 (past 198.19.255.255 at the largest N): they
// are only values in maps, sets and filters; no packet is sent to them. "Change the set" replaces half
// of the peers (the first half by new addresses). The agent's API has no update of a running
// experiment, so for faultline a change is a Revert and an Inject with the new set, timed together.
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "agent_client.h"
#include "faultline/api/cat.h"
#include "timed_command.h"

namespace faultline::bench {
namespace {

using api::Cat;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint32_t kFirstPeer = (198u << 24) | (18u << 16) | (1u << 8);  // 198.18.1.0

std::string Address(uint32_t index) {
  uint32_t a = kFirstPeer + index;
  return Cat(a >> 24, ".", (a >> 16) & 0xff, ".", (a >> 8) & 0xff, ".", a & 0xff);
}

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

struct Options {
  std::string agent;
  std::string host_netns;  // a name under /run/netns
  std::string interface = "veth-host";
  std::string out = ".";
  std::string work = ".";  // the scripts and their input files (tens of MB at 100 000 peers)
  std::vector<int> peers = {1, 100, 10'000, 100'000};
  int cap_ms = 30'000;
};

// One timed step: its time, or why there is none.
struct Step {
  std::optional<double> ms;
  std::string error;  // "timed out" for a step killed at the cap
};

// A way to apply a partition to a set of peers and to change that set. Prepare (not timed) writes
// whatever files the steps read; Apply and Change are timed; Clear removes everything (not timed).
class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  virtual void Prepare(const std::vector<uint32_t>& before, const std::vector<uint32_t>& after) = 0;
  virtual Step Apply() = 0;
  virtual Step Change() = 0;
  // How many peers the kernel holds now, read back from it (-1: not read); a check that Apply did it all.
  virtual long Count() { return -1; }
  virtual void Clear() = 0;
};

class Faultline : public Method {
 public:
  Faultline(v1::Agent::Stub& stub, const Options& options) : stub_(stub), options_(options) {}
  std::string name() const override { return "faultline"; }

  void Prepare(const std::vector<uint32_t>& before, const std::vector<uint32_t>& after) override {
    round_++;
    // Built before the clock starts, as the scripts' files are.
    before_ = Request(Cat("peers-", before.size(), "-", round_, "-a"), before);
    after_ = Request(Cat("peers-", after.size(), "-", round_, "-b"), after);
    active_.clear();
  }

  Step Apply() override { return Inject(before_); }

  Step Change() override {
    auto start = Clock::now();
    Step revert = Revert();
    if (!revert.ms) return revert;
    Step inject = Inject(after_);
    if (!inject.ms) return inject;
    return {MillisecondsSince(start), ""};
  }

  void Clear() override { Revert(); }

 private:
  v1::InjectRequest Request(const std::string& id, const std::vector<uint32_t>& peers) {
    v1::InjectRequest request;
    v1::Experiment* experiment = request.mutable_experiment();
    experiment->set_id(id);
    experiment->mutable_duration()->set_seconds(600);  // ends by itself even if the bench dies
    v1::Fault* fault = experiment->add_faults();
    fault->mutable_partition();
    v1::Target* target = fault->mutable_target();
    target->set_netns_path("/run/netns/" + options_.host_netns);
    target->set_interface(options_.interface);
    target->set_direction(v1::DIRECTION_EGRESS);
    for (uint32_t peer : peers) target->add_peers(Address(peer) + "/32");
    return request;
  }

  Step Inject(const v1::InjectRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(options_.cap_ms));
    v1::InjectResponse response;
    auto start = Clock::now();
    grpc::Status status = stub_.Inject(&context, request, &response);
    double ms = MillisecondsSince(start);
    if (!status.ok()) {
      return {std::nullopt, status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                                ? "timed out"
                                : status.error_message()};
    }
    if (response.status().state() != v1::STATE_ACTIVE)
      return {std::nullopt, "not active: " + response.status().reason()};
    active_ = request.experiment().id();
    return {ms, ""};
  }

  Step Revert() {
    if (active_.empty()) return {std::nullopt, "nothing to revert"};
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(options_.cap_ms));
    v1::RevertRequest request;
    request.set_id(active_);
    v1::ExperimentStatus status;
    auto start = Clock::now();
    grpc::Status result = stub_.Revert(&context, request, &status);
    double ms = MillisecondsSince(start);
    if (!result.ok()) return {std::nullopt, result.error_message()};
    active_.clear();
    return {ms, ""};
  }

  v1::Agent::Stub& stub_;
  const Options& options_;
  v1::InjectRequest before_, after_;
  std::string active_;
  int round_ = 0;
};

// The scripts: files under the output directory, run with `ip netns exec NS sh FILE`.
class ScriptMethod : public Method {
 public:
  explicit ScriptMethod(const Options& options) : options_(options) {}

  Step Apply() override { return Run("apply"); }
  Step Change() override { return Run("change"); }
  void Clear() override { Run("clear"); }

 protected:
  std::string Path(const std::string& step) const { return Cat(options_.work, "/", name(), ".", step); }

  Step Run(const std::string& step) {
    TimedRun run = RunScriptInNetns(options_.host_netns, Path(step + ".sh"), milliseconds(options_.cap_ms));
    if (!run.finished) return {std::nullopt, "timed out"};
    if (run.exit_code != 0) {
      std::string output = run.output.substr(0, 200);
      std::replace(output.begin(), output.end(), '\n', ' ');
      return {std::nullopt, Cat("exit ", run.exit_code, ": ", output)};
    }
    return {run.ms, ""};
  }

  // A command's output in the bench's namespace, for Count().
  std::string Read(const std::string& command) {
    std::string path = Path("count.sh");
    WriteFile(path, command + "\n");
    return RunScriptInNetns(options_.host_netns, path, milliseconds(options_.cap_ms)).output;
  }

  const Options& options_;
};

// What chaosd and Chaos Mesh do for a partition: a hash:net ipset and one iptables rule matching it. A
// fair script fills the set in one `ipset restore` and changes it with one more (deletions, additions).
class Ipset : public ScriptMethod {
 public:
  using ScriptMethod::ScriptMethod;
  std::string name() const override { return "ipset+iptables"; }

  void Prepare(const std::vector<uint32_t>& before, const std::vector<uint32_t>& after) override {
    const std::string rule = "OUTPUT -m set --match-set flb-peers dst -j DROP";
    std::string create = "create flb-peers hash:net family inet maxelem 1048576\n";
    for (uint32_t peer : before) create += "add flb-peers " + Address(peer) + "/32\n";
    WriteFile(Path("apply.ipset"), create);
    WriteFile(Path("apply.sh"),
              Cat("set -e\nipset restore < ", Path("apply.ipset"), "\niptables -w -A ", rule, "\n"));
    std::string change;
    for (uint32_t peer : before) {
      if (!std::binary_search(after.begin(), after.end(), peer))
        change += "del flb-peers " + Address(peer) + "/32\n";
    }
    for (uint32_t peer : after) {
      if (!std::binary_search(before.begin(), before.end(), peer))
        change += "add flb-peers " + Address(peer) + "/32\n";
    }
    WriteFile(Path("change.ipset"), change);
    WriteFile(Path("change.sh"), Cat("set -e\nipset restore < ", Path("change.ipset"), "\n"));
    WriteFile(Path("clear.sh"), Cat("iptables -w -D ", rule, "\nipset destroy flb-peers\n"));
  }

  long Count() override {
    std::string text = Read("ipset -t list flb-peers");
    auto at = text.find("Number of entries: ");
    return at == std::string::npos ? -1 : std::stol(text.substr(at + 19));
  }
};

// One u32 filter per peer. A u32 hash table holds at most 4095 filters in a bucket, so past a few
// thousand peers a script must hash them: a 256-bucket table keyed on the destination's last byte,
// linked from the root (LARTC's "hashing filters"). No gact action on the kernels measured (no
// `action drop`), so matching packets go to an htb class whose qdisc is `blackhole`.
class U32Filters : public ScriptMethod {
 public:
  using ScriptMethod::ScriptMethod;
  std::string name() const override { return "tc-u32"; }

  void Prepare(const std::vector<uint32_t>& before, const std::vector<uint32_t>& after) override {
    const std::string& dev = options_.interface;
    // Explicit handles (2:BUCKET:NODE) so that the change can delete a peer's filter by its handle.
    std::map<uint32_t, std::string> handles;
    std::map<uint32_t, int> nodes;
    auto handle = [&](uint32_t peer) -> const std::string& {
      auto [it, added] = handles.try_emplace(peer);
      if (added) {
        uint32_t bucket = (kFirstPeer + peer) & 0xff;
        it->second = Cat("2:", std::hex, bucket, ":", std::hex, ++nodes[bucket]);
      }
      return it->second;
    };
    auto add = [&](uint32_t peer) {
      return Cat("filter add dev ", dev, " parent 1: prio 1 protocol ip handle ", handle(peer),
                 " u32 ht 2:", std::hex, (kFirstPeer + peer) & 0xff, std::dec, ": match ip dst ",
                 Address(peer), "/32 flowid 1:2\n");
    };
    std::string batch =
        Cat("filter add dev ", dev, " parent 1: prio 1 handle 2: protocol ip u32 divisor 256\n",
            "filter add dev ", dev, " parent 1: prio 1 protocol ip u32 ht 800:: ",
            "match ip dst 0.0.0.0/0 hashkey mask 0x000000ff at 16 link 2:\n");
    for (uint32_t peer : before) batch += add(peer);
    WriteFile(Path("apply.tc"), batch);
    WriteFile(Path("apply.sh"),
              Cat("set -e\n", "tc qdisc add dev ", dev, " root handle 1: htb default 1\n",
                  "tc class add dev ", dev, " parent 1: classid 1:1 htb rate 100gbit\n", "tc class add dev ",
                  dev, " parent 1: classid 1:2 htb rate 100gbit\n", "tc qdisc add dev ", dev,
                  " parent 1:2 handle 2: blackhole\n", "tc -batch ", Path("apply.tc"), "\n"));
    std::string change;
    for (uint32_t peer : before) {
      if (!std::binary_search(after.begin(), after.end(), peer)) {
        change +=
            Cat("filter del dev ", dev, " parent 1: prio 1 protocol ip handle ", handle(peer), " u32\n");
      }
    }
    for (uint32_t peer : after) {
      if (!std::binary_search(before.begin(), before.end(), peer)) change += add(peer);
    }
    WriteFile(Path("change.tc"), change);
    WriteFile(Path("change.sh"), Cat("set -e\ntc -batch ", Path("change.tc"), "\n"));
    WriteFile(Path("clear.sh"), Cat("tc qdisc del dev ", dev, " root\n"));
  }

  long Count() override {
    std::string text =
        Read(Cat("tc filter show dev ", options_.interface, " parent 1: | grep -c 'flowid 1:2'"));
    return text.empty() ? -1 : std::stol(text);
  }
};

struct Result {
  std::vector<double> apply, change;
  std::string error;  // the first failure; "timed out" when a step hit the cap
  long counted = -1;
};

std::string Ms(const std::vector<double>& values, const std::string& error, int cap_ms) {
  if (values.empty()) return error == "timed out" ? Cat("> ", cap_ms / 1000, " s") : "–";
  double v = Percentile(values, 50);
  return Cat(std::fixed, std::setprecision(v < 10 ? 2 : v < 1000 ? 1 : 0), v, " ms");
}

int Main(const Options& options) {
  auto stub = ctl::ConnectAgent(options.agent);
  if (!stub.ok()) {
    std::cerr << "many-peers: " << stub.status().message() << "\n";
    return 1;
  }
  {
    // The first call also connects: it is not part of any measurement.
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::CapabilitiesResponse caps;
    if (grpc::Status s = (*stub)->Capabilities(&context, {}, &caps); !s.ok()) {
      std::cerr << "many-peers: the agent does not answer: " << s.error_message() << "\n";
      return 1;
    }
  }
  const std::string load_before = LoadAverage();
  std::vector<std::unique_ptr<Method>> methods;
  methods.push_back(std::make_unique<Faultline>(**stub, options));
  methods.push_back(std::make_unique<Ipset>(options));
  methods.push_back(std::make_unique<U32Filters>(options));

  std::ofstream csv(options.out + "/many-peers.csv", std::ios::trunc);
  csv << "method,peers,rep,apply_ms,change_ms,error\n";
  std::map<std::pair<std::string, int>, Result> results;
  std::set<std::string> given_up;  // timed out at a smaller N: larger ones would too
  for (int n : options.peers) {
    std::vector<uint32_t> before(static_cast<size_t>(n)), after;
    for (uint32_t i = 0; i < before.size(); i++) before[i] = i;
    const uint32_t replaced = static_cast<uint32_t>(std::max(1, n / 2));
    for (uint32_t i = 0; i < replaced; i++) after.push_back(static_cast<uint32_t>(n) + i);
    for (uint32_t i = replaced; i < before.size(); i++) after.push_back(i);
    std::sort(after.begin(), after.end());
    // Repetitions interleave the methods, so that a slow moment of the machine does not fall on one.
    const int reps = n <= 100 ? 20 : n <= 10'000 ? 5 : 3;
    for (int rep = 0; rep < reps; rep++) {
      for (auto& method : methods) {
        Result& result = results[{method->name(), n}];
        if (given_up.contains(method->name())) {
          result.error = "timed out";
          continue;
        }
        if (!result.error.empty()) continue;
        method->Prepare(before, after);
        Step apply = method->Apply();
        if (apply.ms && rep == 0) result.counted = method->Count();
        Step change = apply.ms ? method->Change() : Step{};
        method->Clear();
        auto cell = [](const Step& s) { return s.ms ? Cat(std::fixed, std::setprecision(3), *s.ms) : ""; };
        std::string error = !apply.ms ? apply.error : !change.ms ? change.error : "";
        std::replace(error.begin(), error.end(), ',', ' ');
        csv << method->name() << "," << n << "," << rep << "," << cell(apply) << "," << cell(change) << ","
            << error << "\n";
        if (apply.ms) result.apply.push_back(*apply.ms);
        if (change.ms) result.change.push_back(*change.ms);
        if (!error.empty()) result.error = error;
        if (error == "timed out") given_up.insert(method->name());
      }
    }
    for (auto& method : methods) {
      const Result& r = results[{method->name(), n}];
      std::cout << n << " peers, " << method->name() << ": apply " << Ms(r.apply, r.error, options.cap_ms)
                << ", change " << Ms(r.change, r.error, options.cap_ms)
                << (r.counted >= 0 ? Cat(" (kernel holds ", r.counted, ")") : "")
                << (r.error.empty() ? "" : " — " + r.error) << std::endl;
    }
  }
  csv.close();

  std::ofstream chart(options.out + "/many-peers-summary.csv", std::ios::trunc);
  chart << "method,peers,step,median_ms\n";
  std::ostringstream md;
  md << "# A partition aimed at many peers\n\n"
     << "Time to apply a partition to N peer /32s (egress, one veth in the bench's namespace), and to change "
        "the set (half of the peers replaced by new ones). Median over 20 repetitions (N ≤ 100), 5 (10 000) "
        "or 3 (100 000); load average "
     << load_before << " before, " << LoadAverage() << " after. A step over " << options.cap_ms / 1000
     << " s is stopped and shown as \"> " << options.cap_ms / 1000 << " s\".\n\n"
     << "- **faultline**: one gRPC Inject with N peers (apply); Revert, then Inject with the new set "
        "(change: "
        "the API has no in-place update of a running experiment).\n"
     << "- **ipset+iptables**: `ipset restore` of a hash:net set, then one `iptables -A OUTPUT -m set` rule "
        "(apply); one `ipset restore` of the deletions and additions (change).\n"
     << "- **tc-u32**: htb root, a class with a blackhole qdisc, and one u32 filter per peer in a 256-bucket "
        "hash table, in one `tc -batch` (apply); one `tc -batch` deleting and adding filters by handle "
        "(change).\n"
     << "- Scripts are timed from spawning `ip netns exec NS sh SCRIPT` to its exit; their input files are "
        "written beforehand, as faultline's request is built beforehand.\n\n"
     << "| peers | method | apply | change | apply ÷ faultline | change ÷ faultline | kernel holds |\n"
     << "|---:|---|---:|---:|---:|---:|---:|\n";
  for (int n : options.peers) {
    const Result& ours = results[{"faultline", n}];
    for (auto& method : methods) {
      const Result& r = results[{method->name(), n}];
      auto ratio = [&](const std::vector<double>& theirs, const std::vector<double>& mine) {
        if (method->name() == "faultline") return std::string("1");
        if (theirs.empty() && r.error == "timed out" && !mine.empty())
          return Cat("> ", std::fixed, std::setprecision(0), options.cap_ms / Percentile(mine, 50), "×");
        if (theirs.empty() || mine.empty()) return std::string("–");
        return Cat(std::fixed, std::setprecision(1), Percentile(theirs, 50) / Percentile(mine, 50), "×");
      };
      md << "| " << n << " | " << method->name() << " | " << Ms(r.apply, r.error, options.cap_ms) << " | "
         << Ms(r.change, r.error, options.cap_ms) << " | " << ratio(r.apply, ours.apply) << " | "
         << ratio(r.change, ours.change) << " | " << (r.counted >= 0 ? Cat(r.counted) : "–") << " |\n";
      if (!r.error.empty() && r.error != "timed out") md << "|  | | error: " << r.error << " | | | | |\n";
      if (!r.apply.empty())
        chart << method->name() << "," << n << ",apply," << Percentile(r.apply, 50) << "\n";
      if (!r.change.empty())
        chart << method->name() << "," << n << ",change," << Percentile(r.change, 50) << "\n";
    }
  }
  md << "\nRaw: many-peers.csv (one row per repetition).\n";
  WriteFile(options.out + "/many-peers.md", md.str());
  std::cout << "\n" << md.str();
  return 0;
}

}  // namespace
}  // namespace faultline::bench

int main(int argc, char** argv) {
  faultline::bench::Options options;
  CLI::App app{"faultline-bench-peers: a partition aimed at many peers (see bench/many-peers)"};
  app.add_option("--agent", options.agent, "the agent's address, unix:PATH")->required();
  app.add_option("--host-netns", options.host_netns,
                 "the namespace faults apply in (fl-sbx-*, scripts/sandbox)")
      ->required();
  app.add_option("--interface", options.interface, "an interface in it");
  app.add_option("--out", options.out, "directory for the results");
  app.add_option("--work", options.work, "directory for the scripts and their input files");
  app.add_option("--peers", options.peers, "the numbers of peers to measure")->delimiter(',');
  app.add_option("--cap-ms", options.cap_ms, "longest a step may take before it is stopped");
  CLI11_PARSE(app, argc, argv);
  return faultline::bench::Main(options);
}

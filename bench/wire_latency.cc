// Section 1 of the benchmarks: how long a fault takes to show on the wire after a client asks for it,
// and to go away after it asks for a revert, for faultline (one gRPC call on the agent's unix socket)
// and for the shell script a user would otherwise run (tc, iptables, ipset, as chaosd, Pumba and
// ChaosBlade do). Run by bench/inject-latency, which makes the namespaces and starts the agent.
//
// The wire: a UDP stream from the host namespace to a peer, one 1000-byte datagram every 100 µs, each
// carrying its sequence number; the send time of every sequence and the arrival time of every one that
// arrives are kept (CLOCK_MONOTONIC, shared by all namespaces of a kernel). A datagram is "affected"
// when it never arrives, or (shaping faults) arrives later than a threshold after it was sent.
//   inject time: from just before the call (faultline: Inject; script: its spawn) to the send time of
//                the first datagram that is affected, and so are the two after it.
//   revert time: from just before the revert call to the arrival of the first datagram sent after it
//                that is not affected, and neither are the two after it.
// Resolution: the 100 µs between datagrams (plus, for bandwidth, the few datagrams the token bucket
// lets through before a queue builds: the same for both tools).
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <future>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "agent_client.h"
#include "faultline/api/cat.h"
#include "timed_command.h"

namespace faultline::bench {
namespace {

using api::Cat;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr uint16_t kPort = 47000;
constexpr size_t kPayload = 1000;
constexpr std::chrono::nanoseconds kInterval = std::chrono::microseconds(100);
constexpr int kConfirm = 3;  // datagrams in a row that must agree, so one stray loss or stall does not count

int64_t NowNs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
}

// Moves the calling thread (only it: setns of a net namespace is per thread) into `path`.
bool EnterNetns(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool entered = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  return entered;
}

// The stream's threads wake every 100 µs; at normal priority on a 2-CPU machine, the agent or a script
// would delay them by milliseconds and the delay would be measured as the fault's. The work measured
// stays at normal priority.
void RaisePriority() {
  sched_param param{};
  param.sched_priority = 10;
  pthread_setschedparam(pthread_self(), SCHED_FIFO, &param);
  prctl(PR_SET_TIMERSLACK, 1);
}

// The numbered UDP stream. Bounded: at most `max_seconds`, and never more datagrams than it has room for.
class UdpStream {
 public:
  UdpStream(std::string from_netns, std::string to_netns, std::string from, std::string to, int max_seconds)
      : from_netns_(std::move(from_netns)),
        to_netns_(std::move(to_netns)),
        from_(std::move(from)),
        to_(std::move(to)),
        capacity_(static_cast<size_t>(max_seconds) * 1'000'000'000 / static_cast<size_t>(kInterval.count())),
        sent_ns_(capacity_, 0),
        arrived_ns_(capacity_, 0),
        deadline_(Clock::now() + std::chrono::seconds(max_seconds)) {}

  ~UdpStream() { Stop(); }

  // Starts both threads and waits until datagrams arrive; false (and why) when none do within 2 s.
  bool Start(std::string* error) {
    auto bound = bound_.get_future();
    receiver_ = std::thread([this] { Receive(); });
    if (!bound.get()) {
      *error = Cat("cannot bind a UDP socket to ", to_, ":", kPort, " in ", to_netns_);
      return false;
    }
    sender_ = std::thread([this] { Send(); });
    for (int i = 0; i < 200; i++) {
      std::this_thread::sleep_for(milliseconds(10));
      if (received_.load() > 100) return true;
    }
    *error =
        Cat("the stream ", from_, " -> ", to_, " does not flow (", received_.load(), " datagrams arrived)");
    return false;
  }

  // Stops sending, gives late datagrams `drain` to arrive, then stops receiving.
  void Stop(milliseconds drain = milliseconds(200)) {
    if (stopped_) return;
    stopped_ = true;
    stop_sending_ = true;
    if (sender_.joinable()) sender_.join();
    std::this_thread::sleep_for(drain);
    stop_receiving_ = true;
    if (receiver_.joinable()) receiver_.join();
  }

  bool exhausted() const { return sent_.load() >= capacity_ || Clock::now() >= deadline_; }
  size_t sent() const { return sent_.load(); }
  int64_t sent_ns(size_t seq) const { return sent_ns_[seq]; }
  int64_t arrived_ns(size_t seq) const { return arrived_ns_[seq]; }
  // The first sequence sent at or after `ns` (sent() when none): send times only grow.
  size_t FirstSentAt(int64_t ns) const {
    auto end = sent_ns_.begin() + static_cast<std::ptrdiff_t>(sent());
    return static_cast<size_t>(std::lower_bound(sent_ns_.begin(), end, ns) - sent_ns_.begin());
  }

 private:
  void Send() {
    RaisePriority();
    if (!EnterNetns(from_netns_)) return;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(kPort);
    inet_pton(AF_INET, to_.c_str(), &to.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      close(fd);
      return;
    }
    char payload[kPayload] = {};
    int64_t next = NowNs();
    for (size_t seq = 0; seq < capacity_ && !stop_sending_ && Clock::now() < deadline_; seq++) {
      next += kInterval.count();
      // After a stall, start again from now rather than sending the missed datagrams in a burst.
      if (int64_t now = NowNs(); next < now - kInterval.count()) next = now;
      timespec at{static_cast<time_t>(next / 1'000'000'000), static_cast<long>(next % 1'000'000'000)};
      clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr);
      const uint32_t sequence = static_cast<uint32_t>(seq);
      std::memcpy(payload, &sequence, sizeof(sequence));
      sent_ns_[seq] = NowNs();
      // A failed send (iptables' DROP in OUTPUT returns EPERM, a full qdisc ENOBUFS) is a datagram that
      // does not arrive, which is what is measured.
      send(fd, payload, sizeof(payload), MSG_DONTWAIT);
      sent_.store(seq + 1);
    }
    close(fd);
  }

  void Receive() {
    RaisePriority();
    int fd = -1;
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_port = htons(kPort);
    inet_pton(AF_INET, to_.c_str(), &at.sin_addr);
    if (EnterNetns(to_netns_)) fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int size = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    timeval timeout{0, 20'000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof(at)) != 0) {
      bound_.set_value(false);
      if (fd >= 0) close(fd);
      return;
    }
    bound_.set_value(true);
    char payload[kPayload];
    while (!stop_receiving_) {
      ssize_t n = recv(fd, payload, sizeof(payload), 0);
      int64_t now = NowNs();
      if (n < static_cast<ssize_t>(sizeof(uint32_t))) continue;
      uint32_t seq;
      std::memcpy(&seq, payload, sizeof(seq));
      if (seq < capacity_ && arrived_ns_[seq] == 0) arrived_ns_[seq] = now;
      received_++;
    }
    close(fd);
  }

  std::string from_netns_, to_netns_, from_, to_;
  size_t capacity_;
  // Written by one thread each, read after Stop(): the joins order the reads after the writes.
  std::vector<int64_t> sent_ns_;
  std::vector<int64_t> arrived_ns_;
  Clock::time_point deadline_;
  std::atomic<size_t> sent_{0};
  std::atomic<int> received_{0};
  std::atomic<bool> stop_sending_{false};
  std::atomic<bool> stop_receiving_{false};
  bool stopped_ = false;
  std::promise<bool> bound_;  // the receiver's socket is bound (or could not be)
  std::thread sender_, receiver_;
};

// One way to switch a fault on or off; false (and why) when it failed.
using Action = std::function<bool(std::string* error)>;

struct Row {
  std::string fault;    // partition, loss, bandwidth, delay
  std::string tool;     // faultline, or the script's name
  std::string skipped;  // why not measured here; empty when measured
  Action inject, revert;
  int64_t threshold_ns = 0;  // 0: only a lost datagram is affected; else also one delayed past this
  milliseconds hold{30};     // how long the fault stays on (after the inject call returned)
};

struct RunTimes {
  int64_t t0, t1, t2, t3;  // inject called, returned; revert called, returned
  bool ok = true;
  std::string error;
};

struct Measured {
  std::optional<double> inject_ms, revert_ms, revert_send_ms;
};

Measured Analyze(const UdpStream& stream, const RunTimes& run, int64_t next_run_ns, int64_t threshold_ns) {
  auto affected = [&](size_t seq) {
    int64_t arrived = stream.arrived_ns(seq);
    return arrived == 0 || (threshold_ns > 0 && arrived - stream.sent_ns(seq) > threshold_ns);
  };
  auto run_of = [&](size_t seq, bool want) {
    if (seq + kConfirm > stream.sent()) return false;
    for (int i = 0; i < kConfirm; i++) {
      if (affected(seq + static_cast<size_t>(i)) != want) return false;
    }
    return true;
  };
  Measured measured;
  size_t seq = stream.FirstSentAt(run.t0);
  for (; seq < stream.sent() && stream.sent_ns(seq) < run.t2; seq++) {
    if (run_of(seq, true)) {
      measured.inject_ms = static_cast<double>(stream.sent_ns(seq) - run.t0) / 1e6;
      break;
    }
  }
  for (seq = stream.FirstSentAt(run.t2); seq < stream.sent() && stream.sent_ns(seq) < next_run_ns; seq++) {
    if (run_of(seq, false)) {
      measured.revert_ms = static_cast<double>(stream.arrived_ns(seq) - run.t2) / 1e6;
      measured.revert_send_ms = static_cast<double>(stream.sent_ns(seq) - run.t2) / 1e6;
      break;
    }
  }
  return measured;
}

struct Options {
  std::string agent;
  std::string host_netns, peer_netns;  // names under /run/netns
  std::string interface = "veth-host";
  std::string host_address = "198.18.0.1", peer_address = "198.18.0.2";
  std::string out = ".";
  std::string work = ".";  // the scripts' files
  int runs = 200;
  int cap_ms = 10'000;
};

class Bench {
 public:
  explicit Bench(Options options) : options_(std::move(options)) {}

  int Run() {
    auto stub = ctl::ConnectAgent(options_.agent);
    if (!stub.ok()) return Fail(std::string(stub.status().message()));
    stub_ = *std::move(stub);
    // The first call also connects: it is not part of any measurement.
    grpc::ClientContext context;
    context.set_wait_for_ready(true);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::CapabilitiesResponse caps;
    if (grpc::Status s = stub_->Capabilities(&context, {}, &caps); !s.ok())
      return Fail("the agent does not answer: " + s.error_message());
    std::string netem_missing = "this kernel has no netem (" + caps.kernel_release() + ")";
    for (const auto& feature : caps.features()) {
      if (feature.name() == "netem" && feature.available()) netem_missing.clear();
    }
    kernel_ = caps.kernel_release();
    load_before_ = LoadAverage();

    std::vector<Row> rows = Rows(netem_missing);
    csv_.open(options_.out + "/inject-latency.csv", std::ios::trunc);
    csv_ << "fault,tool,run,inject_ms,revert_ms,revert_send_ms,inject_call_ms,revert_call_ms,error\n";
    MeasureFloors();
    for (Row& row : rows) Measure(row);
    csv_.close();
    WriteSummary();
    return 0;
  }

 private:
  static int Fail(const std::string& message) {
    std::cerr << "inject-latency: " << message << "\n";
    return 1;
  }

  std::string NetnsPath(const std::string& name) const { return "/run/netns/" + name; }

  v1::Fault Targeted() const {
    v1::Fault fault;
    v1::Target* target = fault.mutable_target();
    target->set_netns_path(NetnsPath(options_.host_netns));
    target->set_interface(options_.interface);
    target->set_direction(v1::DIRECTION_EGRESS);
    target->add_peers(options_.peer_address + "/32");
    return fault;
  }

  // faultline: one Inject and one Revert on the already connected channel.
  void Faultline(Row& row, const v1::Fault& fault) {
    row.tool = "faultline";
    auto id = std::make_shared<std::string>();
    row.inject = [this, fault, id, name = row.fault](std::string* error) {
      // The agent keeps ended experiments, and an Inject with an id it knows changes nothing
      // (created: false): ids carry this process's pid, so that a second bench run against the same
      // agent applies its faults too.
      *id = Cat("wire-", getpid(), "-", name, "-", counter_++);
      v1::InjectRequest request;
      v1::Experiment* experiment = request.mutable_experiment();
      experiment->set_id(*id);
      experiment->mutable_duration()->set_seconds(60);  // ends by itself even if the bench dies
      *experiment->add_faults() = fault;
      return Call(
          [&](grpc::ClientContext* c) {
            v1::InjectResponse response;
            grpc::Status status = stub_->Inject(c, request, &response);
            if (status.ok() && !response.created()) {
              return grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                                  "the agent already had " + request.experiment().id());
            }
            return status;
          },
          error);
    };
    row.revert = [this, id](std::string* error) {
      v1::RevertRequest request;
      request.set_id(*id);
      return Call(
          [&](grpc::ClientContext* c) {
            v1::ExperimentStatus status;
            return stub_->Revert(c, request, &status);
          },
          error);
    };
  }

  bool Call(const std::function<grpc::Status(grpc::ClientContext*)>& call, std::string* error) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + milliseconds(options_.cap_ms));
    grpc::Status status = call(&context);
    if (!status.ok()) *error = status.error_message();
    return status.ok();
  }

  // A baseline: two script files run in the host namespace.
  void Script(Row& row, const std::string& tool, const std::string& inject, const std::string& revert) {
    row.tool = tool;
    std::string base = Cat(options_.work, "/", row.fault, "-", tool);
    WriteFile(base + ".inject.sh", "set -e\n" + inject);
    WriteFile(base + ".revert.sh", "set -e\n" + revert);
    scripts_ += Cat("- ", row.fault, ", ", tool, ": inject `", Oneline(inject), "`; revert `",
                    Oneline(revert), "`\n");
    auto run = [this](std::string path) {
      return [this, path](std::string* error) {
        TimedRun run = RunScriptInNetns(options_.host_netns, path, milliseconds(options_.cap_ms));
        if (!run.finished || run.exit_code != 0) *error = run.finished ? run.output : "timed out";
        return run.finished && run.exit_code == 0;
      };
    };
    row.inject = run(base + ".inject.sh");
    row.revert = run(base + ".revert.sh");
  }

  std::vector<Row> Rows(const std::string& netem_missing) {
    const std::string& dev = options_.interface;
    const std::string peer = options_.peer_address + "/32";
    std::vector<Row> rows;
    rows.reserve(16);  // add() hands out references that must stay valid
    auto add = [&](const std::string& fault) -> Row& {
      rows.push_back(Row{});
      rows.back().fault = fault;
      return rows.back();
    };

    v1::Fault partition = Targeted();
    partition.mutable_partition();
    Faultline(add("partition"), partition);
    // chaosd's and Chaos Mesh's partition: an ipset of the peers and one iptables rule matching it.
    Script(add("partition"), "ipset+iptables",
           Cat("ipset create flb-partition hash:net\n", "ipset add flb-partition ", peer, "\n",
               "iptables -w -A OUTPUT -m set --match-set flb-partition dst -j DROP\n"),
           Cat("iptables -w -D OUTPUT -m set --match-set flb-partition dst -j DROP\n",
               "ipset destroy flb-partition\n"));

    v1::Fault loss = Targeted();
    loss.mutable_loss()->set_percent(100);
    loss.mutable_loss()->set_model(v1::Loss::MODEL_EBPF);
    Faultline(add("loss"), loss);
    Script(add("loss"), "iptables-statistic",
           Cat("iptables -w -A OUTPUT -d ", peer, " -m statistic --mode random --probability 1 -j DROP\n"),
           Cat("iptables -w -D OUTPUT -d ", peer, " -m statistic --mode random --probability 1 -j DROP\n"));
    Row& netem_loss = add("loss");
    Script(netem_loss, "tc-netem", Cat("tc qdisc add dev ", dev, " root netem loss 100%\n"),
           Cat("tc qdisc del dev ", dev, " root\n"));
    netem_loss.skipped = netem_missing;

    // 8 Mbit/s against the stream's 80: a queue builds behind the bucket's first few datagrams at once.
    v1::Fault bandwidth = Targeted();
    bandwidth.mutable_bandwidth()->set_rate_bits_per_second(8'000'000);
    bandwidth.mutable_bandwidth()->set_burst_bytes(3028);
    Row& our_bandwidth = add("bandwidth");
    Faultline(our_bandwidth, bandwidth);
    our_bandwidth.threshold_ns = 2'000'000;
    Row& tbf = add("bandwidth");
    Script(tbf, "tc-tbf", Cat("tc qdisc add dev ", dev, " root tbf rate 8mbit burst 3028 latency 50ms\n"),
           Cat("tc qdisc del dev ", dev, " root\n"));
    tbf.threshold_ns = 2'000'000;

    v1::Fault delay = Targeted();
    delay.mutable_delay()->mutable_latency()->set_nanos(50'000'000);
    Row& our_delay = add("delay");
    Faultline(our_delay, delay);
    Row& netem_delay = add("delay");
    Script(netem_delay, "tc-netem", Cat("tc qdisc add dev ", dev, " root netem delay 50ms\n"),
           Cat("tc qdisc del dev ", dev, " root\n"));
    for (Row* row : {&our_delay, &netem_delay}) {
      row->threshold_ns = 25'000'000;  // half the delay: nothing else on a veth comes near it
      row->hold = milliseconds(80);    // long enough for delayed datagrams to arrive while it is on
      row->skipped = netem_missing;
    }
    return rows;
  }

  // What every script pays before its first command (`ip netns exec` and a shell), and what every call
  // to the agent pays (a gRPC round trip on its unix socket: a Get of an experiment it does not know),
  // under the stream the rows run with. Reported apart, so that a reader can tell the tools' own work
  // from them.
  void MeasureFloors() {
    std::string path = options_.work + "/floor.sh";
    WriteFile(path, "true\n");
    UdpStream stream(NetnsPath(options_.host_netns), NetnsPath(options_.peer_netns), options_.host_address,
                     options_.peer_address, 30 + options_.runs / 10);
    std::string error;
    if (!stream.Start(&error)) std::cout << "floors measured without the stream: " << error << "\n";
    std::vector<double> script, call;
    for (int i = 0; i < options_.runs && !stream.exhausted(); i++) {
      std::this_thread::sleep_for(milliseconds(20));
      script.push_back(RunScriptInNetns(options_.host_netns, path, milliseconds(options_.cap_ms)).ms);
      std::this_thread::sleep_for(milliseconds(20));
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + milliseconds(options_.cap_ms));
      v1::GetRequest request;
      request.set_id("floor-no-such-experiment");
      v1::ExperimentStatus status;
      const int64_t before = NowNs();
      (void)stub_->Get(&context, request, &status);  // NOT_FOUND, after the whole round trip
      call.push_back(static_cast<double>(NowNs() - before) / 1e6);
    }
    stream.Stop();
    std::ofstream csv(options_.out + "/inject-latency-floors.csv", std::ios::trunc);
    csv << "floor,run,ms\n";
    for (size_t i = 0; i < script.size(); i++) csv << "empty script," << i << "," << script[i] << "\n";
    for (size_t i = 0; i < call.size(); i++) csv << "empty call," << i << "," << call[i] << "\n";
    script_floor_ = {Percentile(script, 50), Percentile(script, 99)};
    call_floor_ = {Percentile(call, 50), Percentile(call, 99)};
  }

  void Measure(Row& row) {
    Summary& summary = summaries_.emplace_back();
    summary.fault = row.fault;
    summary.tool = row.tool;
    summary.skipped = row.skipped;
    if (!row.skipped.empty()) {
      std::cout << row.fault << " / " << row.tool << ": skipped: " << row.skipped << "\n";
      return;
    }
    std::cout << row.fault << " / " << row.tool << ": " << options_.runs << " runs" << std::flush;
    // Bounded: about 110 ms (fault on and off, gaps) to 300 ms (slow scripts) a run.
    const int max_seconds = 30 + options_.runs * static_cast<int>(row.hold.count() + 250) / 1000;
    UdpStream stream(NetnsPath(options_.host_netns), NetnsPath(options_.peer_netns), options_.host_address,
                     options_.peer_address, max_seconds);
    std::string error;
    if (!stream.Start(&error)) {
      summary.skipped = "the stream did not flow: " + error;
      std::cout << ": " << summary.skipped << "\n";
      return;
    }
    std::vector<RunTimes> runs;
    for (int i = 0; i < options_.runs && !stream.exhausted(); i++) {
      std::this_thread::sleep_for(milliseconds(20));  // the stream flows freely before each inject
      RunTimes& run = runs.emplace_back();
      run.t0 = NowNs();
      run.ok = row.inject(&run.error);
      run.t1 = NowNs();
      std::this_thread::sleep_for(row.hold);
      run.t2 = NowNs();
      if (run.ok) {
        run.ok = row.revert(&run.error);
      }
      run.t3 = NowNs();
      std::this_thread::sleep_for(milliseconds(30));
      if (!run.ok) break;  // a failing tool fails every time: one error is reported, not 200
    }
    stream.Stop();
    for (size_t i = 0; i < runs.size(); i++) {
      const RunTimes& run = runs[i];
      Measured m{};
      if (run.ok) {
        int64_t next = i + 1 < runs.size() ? runs[i + 1].t0 : std::numeric_limits<int64_t>::max();
        m = Analyze(stream, run, next, row.threshold_ns);
      }
      auto cell = [](const std::optional<double>& v) {
        return v ? Cat(std::fixed, std::setprecision(3), *v) : "";
      };
      std::string error_cell = run.error;
      for (char& c : error_cell) {
        if (c == ',' || c == '\n') c = ' ';
      }
      if (run.ok && !m.inject_ms) error_cell = "inject not seen on the wire";
      if (run.ok && m.inject_ms && !m.revert_ms) error_cell = "revert not seen on the wire";
      csv_ << row.fault << "," << row.tool << "," << i << "," << cell(m.inject_ms) << "," << cell(m.revert_ms)
           << "," << cell(m.revert_send_ms) << ","
           << Cat(std::fixed, std::setprecision(3), static_cast<double>(run.t1 - run.t0) / 1e6) << ","
           << (run.ok ? Cat(std::fixed, std::setprecision(3), static_cast<double>(run.t3 - run.t2) / 1e6)
                      : "")
           << "," << error_cell << "\n";
      if (m.inject_ms) summary.inject.push_back(*m.inject_ms);
      if (m.revert_ms) summary.revert.push_back(*m.revert_ms);
      summary.runs++;
      if (!error_cell.empty() && summary.error.empty()) summary.error = error_cell;
      if (!error_cell.empty()) summary.failed++;
    }
    std::cout << ": inject p50 " << Percentile(summary.inject, 50) << " ms, p99 "
              << Percentile(summary.inject, 99) << " ms; revert p50 " << Percentile(summary.revert, 50)
              << " ms, p99 " << Percentile(summary.revert, 99) << " ms"
              << (summary.failed ? Cat(" (", summary.failed, " failed: ", summary.error, ")") : "") << "\n";
  }

  struct Summary {
    std::string fault, tool, skipped, error;
    std::vector<double> inject, revert;
    int runs = 0, failed = 0;
  };

  // A script's lines joined with "; ", for the table of scripts.
  static std::string Oneline(std::string script) {
    while (!script.empty() && script.back() == '\n') script.pop_back();
    for (size_t at; (at = script.find('\n')) != std::string::npos;) script.replace(at, 1, "; ");
    return script;
  }

  static std::string Ms(double v) {
    if (std::isnan(v)) return "–";
    return Cat(std::fixed, std::setprecision(v < 10 ? 2 : 1), v);
  }

  void WriteSummary() {
    std::ofstream chart(options_.out + "/inject-latency-summary.csv", std::ios::trunc);
    chart << "step,tool,p50_ms,p99_ms\n";
    std::ostringstream md;
    md << "# Time to inject and to revert, on the wire\n\n"
       << "Kernel " << kernel_ << ", " << std::thread::hardware_concurrency() << " CPUs, " << options_.runs
       << " runs per row; load average " << load_before_ << " before, " << LoadAverage()
       << " after. A UDP stream of 1000-byte datagrams every 100 µs from the host namespace to "
          "the peer; a fault's target is that peer (faultline: a /32 target; scripts as noted).\n\n"
       << "- **inject**: from just before the call (faultline: the gRPC Inject on the agent's unix socket; "
          "script: spawning `ip netns exec NS sh SCRIPT`) to the send time of the first datagram that is "
          "lost (or, for bandwidth, arrives over 2 ms late; delay: over 25 ms), the next two too.\n"
       << "- **revert**: from just before the revert call to the arrival of the first datagram sent "
          "after it that gets through unaffected, the next two too.\n"
       << "- Every script pays `ip netns exec` and `sh` before its first command: " << Ms(script_floor_.p50)
       << " ms p50, " << Ms(script_floor_.p99) << " ms p99 here (an empty script). Every call to the agent "
       << "pays a gRPC round trip: " << Ms(call_floor_.p50) << " ms p50, " << Ms(call_floor_.p99)
       << " ms p99 (a Get of an experiment it does not know). Both under the same stream.\n\n"
       << "| fault | tool | runs | inject p50 | inject p99 | revert p50 | revert p99 | failed |\n"
       << "|---|---|---:|---:|---:|---:|---:|---:|\n";
    for (const Summary& s : summaries_) {
      if (!s.skipped.empty()) {
        md << "| " << s.fault << " | " << s.tool << " | skipped: " << s.skipped << " | | | | | |\n";
        continue;
      }
      md << "| " << s.fault << " | " << s.tool << " | " << s.runs << " | " << Ms(Percentile(s.inject, 50))
         << " ms | " << Ms(Percentile(s.inject, 99)) << " ms | " << Ms(Percentile(s.revert, 50)) << " ms | "
         << Ms(Percentile(s.revert, 99)) << " ms | " << s.failed << (s.failed ? " (" + s.error + ")" : "")
         << " |\n";
      chart << s.fault << " inject," << s.tool << "," << Percentile(s.inject, 50) << ","
            << Percentile(s.inject, 99) << "\n";
      chart << s.fault << " revert," << s.tool << "," << Percentile(s.revert, 50) << ","
            << Percentile(s.revert, 99) << "\n";
    }
    md << "\n## Script ÷ faultline\n\n"
       << "| fault | script | inject p50 | inject p99 | revert p50 | revert p99 |\n"
       << "|---|---|---:|---:|---:|---:|\n";
    for (const Summary& ours : summaries_) {
      if (ours.tool != "faultline" || !ours.skipped.empty()) continue;
      for (const Summary& theirs : summaries_) {
        if (theirs.fault != ours.fault || theirs.tool == "faultline" || !theirs.skipped.empty()) continue;
        auto ratio = [](const std::vector<double>& a, const std::vector<double>& b, double p) {
          double x = Percentile(a, p), y = Percentile(b, p);
          return std::isnan(x) || std::isnan(y) || y <= 0 ? std::string("–")
                                                          : Cat(std::fixed, std::setprecision(1), x / y, "×");
        };
        md << "| " << ours.fault << " | " << theirs.tool << " | " << ratio(theirs.inject, ours.inject, 50)
           << " | " << ratio(theirs.inject, ours.inject, 99) << " | " << ratio(theirs.revert, ours.revert, 50)
           << " | " << ratio(theirs.revert, ours.revert, 99) << " |\n";
      }
    }
    md << "\n## The scripts\n\nEach run as `ip netns exec NS sh FILE` (FILE starts with `set -e`):\n\n"
       << scripts_;
    md << "\nRaw: inject-latency.csv (one row per run; revert_send_ms is the send time of that first "
          "datagram, the call columns are when the call returned); inject-latency-floors.csv (the empty "
          "script's and the empty call's times).\n";
    WriteFile(options_.out + "/inject-latency.md", md.str());
    std::cout << "\n" << md.str();
  }

  Options options_;
  std::unique_ptr<v1::Agent::Stub> stub_;
  std::string kernel_;
  std::string load_before_;
  std::ofstream csv_;
  std::vector<Summary> summaries_;
  struct Floor {
    double p50 = 0, p99 = 0;
  };
  Floor script_floor_, call_floor_;
  std::string scripts_;  // Markdown: what each baseline ran
  int counter_ = 0;
};

}  // namespace
}  // namespace faultline::bench

int main(int argc, char** argv) {
  faultline::bench::Options options;
  CLI::App app{
      "faultline-bench-wire: time to inject and revert faults, on the wire (see bench/inject-latency)"};
  app.add_option("--agent", options.agent, "the agent's address, unix:PATH")->required();
  app.add_option("--host-netns", options.host_netns,
                 "the namespace faults apply in (fl-sbx-*, scripts/sandbox)")
      ->required();
  app.add_option("--peer-netns", options.peer_netns, "the namespace that receives the stream")->required();
  app.add_option("--interface", options.interface, "the host namespace's end of the veth pair");
  app.add_option("--host-address", options.host_address);
  app.add_option("--peer-address", options.peer_address);
  app.add_option("--out", options.out, "directory for the results");
  app.add_option("--work", options.work, "directory for the scripts' files");
  app.add_option("--runs", options.runs, "inject/revert cycles per row")->check(CLI::Range(1, 10000));
  app.add_option("--cap-ms", options.cap_ms, "longest a call or script may take");
  CLI11_PARSE(app, argc, argv);
  return faultline::bench::Bench(options).Run();
}

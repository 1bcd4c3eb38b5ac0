// netem and bandwidth faults through a running faultlined, measured with real traffic between network
// namespaces. Tests that need netem skip on kernels without it (this project's host) and run in the
// VM suite (tests/vm) on Debian's kernels, which have it.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <regex>
#include <thread>

#include "agent_fixture.h"
#include "faultline/api/cat.h"
#include "sandbox.h"
#include "traffic.h"

namespace faultline::test {
namespace {

using api::Cat;
namespace v1 = faultline::v1;

class ShapingFaultsTest : public AgentInSandboxTest {
 protected:
  void Halt() {
    grpc::ClientContext context;
    v1::HaltResponse halted;
    EXPECT_TRUE(agent_->stub().Halt(&context, {}, &halted).ok());
  }

  std::string HostNetnsName() const { return sandbox_->host_netns().substr(11); }

  // The host interface's whole tc tree: qdiscs and classes with every option tc shows, and filters.
  // htb's direct_packets_stat is a counter, not an option: packets sent before its default class
  // existed raise it.
  std::string HostTcTree() const {
    std::string ns = HostNetnsName();
    std::string tree =
        Cat(sandbox_->HostTcState(), "# tc -d qdisc show\n",
            Shell(Cat("tc -n ", ns, " -d qdisc show dev ", Sandbox::kHostInterface)), "# tc -d class show\n",
            Shell(Cat("tc -n ", ns, " -d class show dev ", Sandbox::kHostInterface)));
    return std::regex_replace(tree, std::regex("direct_packets_stat [0-9]+"), "direct_packets_stat N");
  }

  // A numbered stream from `from` to `to`, one datagram every `interval`.
  static UdpStream Stream(const Endpoint& from, const Endpoint& to, int count,
                          std::chrono::microseconds interval, const std::string& capture_interface = "") {
    StreamOptions options;
    options.count = count;
    options.interval = interval;
    options.capture_interface = capture_interface;
    return SendUdpStream(from, to, options);
  }

  // A measured number, in the test's output and its recorded properties (the VM suite keeps both).
  void Measured(const std::string& what, double value) {
    std::cout << "[ MEASURED ] " << what << " = " << value << std::endl;
    RecordProperty(what, Cat(value));
  }

  // The median one-way delays between the host and peer 2, in each direction.
  struct OneWay {
    double host_to_peer_ms;
    double peer_to_host_ms;
  };
  OneWay OneWayMedians(int count) const {
    using std::chrono_literals::operator""ms;
    return {Median(OneWayDelaysMs(Stream(Host(), Peer(2), count, 2ms))),
            Median(OneWayDelaysMs(Stream(Peer(2), Host(), count, 2ms)))};
  }
};

TEST_F(ShapingFaultsTest, BandwidthLimitsOnlyTheTargetedPeer) {
  if (!Lacks("htb").empty() && !Lacks("prio").empty()) GTEST_SKIP() << Lacks("htb");
  v1::Experiment experiment = NewExperiment("bandwidth");
  AddFault(experiment, "198.18.0.2/32")->mutable_bandwidth()->set_rate_bits_per_second(10'000'000);
  ASSERT_TRUE(Inject(experiment).ok());
  double limited = TcpThroughput(Host(), Peer(2), 3);
  double other = TcpThroughput(Host(), Peer(3), 1);
  Revert("bandwidth");
  EXPECT_NEAR(limited, 10e6, 1e6) << "a 10 Mbit/s limit measured " << limited / 1e6 << " Mbit/s";
  EXPECT_GT(other, 100e6) << "an unlisted peer was slowed to " << other / 1e6 << " Mbit/s";
}

TEST_F(ShapingFaultsTest, IngressBandwidthGoesThroughAnIfbAndLimitsOnlyThatDirection) {
  if (!Lacks("ifb").empty()) GTEST_SKIP() << Lacks("ifb");
  if (!Lacks("htb").empty() && !Lacks("prio").empty()) GTEST_SKIP() << Lacks("htb");
  v1::Experiment experiment = NewExperiment("ingress-bandwidth");
  v1::Fault* fault = AddFault(experiment, "198.18.0.2/32");
  fault->mutable_target()->set_direction(v1::DIRECTION_INGRESS);
  fault->mutable_bandwidth()->set_rate_bits_per_second(10'000'000);
  grpc::Status status = Inject(experiment);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::string ns = sandbox_->host_netns().substr(11);
  EXPECT_NE(Shell(Cat("ip -n ", ns, " link show type ifb")).find("ifb-fl-host"), std::string::npos);
  double inbound = TcpThroughput(Peer(2), Host(), 3);
  double outbound = TcpThroughput(Host(), Peer(2), 1);
  Revert("ingress-bandwidth");
  EXPECT_NEAR(inbound, 10e6, 1e6) << "a 10 Mbit/s ingress limit measured " << inbound / 1e6 << " Mbit/s";
  EXPECT_GT(outbound, 100e6) << "egress was slowed to " << outbound / 1e6 << " Mbit/s";
  EXPECT_EQ(Shell(Cat("ip -n ", ns, " link show type ifb")), "") << "the ifb device was left behind";
}

TEST_F(ShapingFaultsTest, NetemFaultsAreRefusedWhereTheKernelLacksNetem) {
  if (Lacks("netem").empty()) GTEST_SKIP() << "this kernel has netem; the refusal cannot happen here";
  v1::Experiment experiment = NewExperiment("no-netem");
  AddFault(experiment, "")->mutable_partition();
  AddFault(experiment, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(50'000'000);
  grpc::Status status = Inject(experiment);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(status.error_message(),
            "faults[1] (delay): delay needs netem, which this kernel lacks (see faultctl caps)");
  EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "the partition before the delay was left applied";
}

TEST_F(ShapingFaultsTest, DelayAddsItsLatencyToTheTargetedPeerOnly) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  constexpr int kProbes = 500;
  double base = Median(EchoRoundTrips(Host(), Peer(2), 100, 2000));
  v1::Experiment experiment = NewExperiment("delay");
  AddFault(experiment, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(50'000'000);
  ASSERT_TRUE(Inject(experiment).ok());
  std::vector<double> delayed = EchoRoundTrips(Host(), Peer(2), kProbes, 2000);
  std::vector<double> other = EchoRoundTrips(Host(), Peer(3), 100, 2000);
  Revert("delay");
  ASSERT_GE(delayed.size(), static_cast<size_t>(kProbes * 0.99));
  double added_ms = (Median(delayed) - base) / 1000;
  EXPECT_NEAR(added_ms, 50, 2.5) << "50 ms of delay added " << added_ms << " ms at the median";
  EXPECT_LT((Median(other) - base) / 1000, 2.5) << "an unlisted peer was delayed";
}

TEST_F(ShapingFaultsTest, NetemLossIsWithinThreeSigmaOfTheBinomial) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  constexpr int kPackets = 5000;
  v1::Experiment experiment = NewExperiment("netem-loss");
  v1::Loss* loss = AddFault(experiment, "198.18.0.2/32")->mutable_loss();
  loss->set_percent(10);
  loss->set_model(v1::Loss::MODEL_NETEM_RANDOM);
  ASSERT_TRUE(Inject(experiment).ok());
  Delivery delivery = SendUdp(Host(), Peer(2), kPackets);
  Revert("netem-loss");
  EXPECT_EQ(delivery.send_errors, 0);
  EXPECT_NEAR(delivery.received, kPackets * 0.9, 3 * std::sqrt(kPackets * 0.1 * 0.9));
}

TEST_F(ShapingFaultsTest, DelayAndLossToTheSamePeersShareOneNetem) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  v1::Experiment experiment = NewExperiment("composed");
  AddFault(experiment, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(20'000'000);
  v1::Loss* loss = AddFault(experiment, "198.18.0.2/32")->mutable_loss();
  loss->set_percent(5);
  loss->set_model(v1::Loss::MODEL_NETEM_RANDOM);
  ASSERT_TRUE(Inject(experiment).ok());
  std::string qdiscs =
      Shell(Cat("tc -n ", sandbox_->host_netns().substr(11), " qdisc show dev ", Sandbox::kHostInterface));
  Revert("composed");
  size_t netems = 0;
  for (size_t at = qdiscs.find("netem"); at != std::string::npos; at = qdiscs.find("netem", at + 1)) netems++;
  EXPECT_EQ(netems, 1u) << qdiscs;
  EXPECT_NE(qdiscs.find("delay 20ms"), std::string::npos) << qdiscs;
  EXPECT_NE(qdiscs.find("loss 5%"), std::string::npos) << qdiscs;

  v1::Experiment conflicting = NewExperiment("two-delays");
  AddFault(conflicting, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(20'000'000);
  AddFault(conflicting, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(30'000'000);
  grpc::Status status = Inject(conflicting);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("faults[1] and faults[0] both set delay"), std::string::npos)
      << status.error_message();
}

// One-way delays come from numbered UDP streams: sender and receiver share the kernel's monotonic
// clock, so each direction is measured on its own, which round trips cannot show.
TEST_F(ShapingFaultsTest, IngressDelayAddsItsLatencyOnlyToArrivingPackets) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  if (std::string lacks = Lacks("ifb"); !lacks.empty()) GTEST_SKIP() << lacks;
  constexpr int kProbes = 500;
  double base_rtt_ms = Median(EchoRoundTrips(Host(), Peer(2), 100, 2000)) / 1000;
  OneWay base = OneWayMedians(200);
  for (v1::Direction direction : {v1::DIRECTION_INGRESS, v1::DIRECTION_BOTH}) {
    SCOPED_TRACE(v1::Direction_Name(direction));
    const bool both = direction == v1::DIRECTION_BOTH;
    std::string id = both ? "delay-both" : "delay-ingress";
    v1::Experiment experiment = NewExperiment(id);
    v1::Fault* fault = AddFault(experiment, "198.18.0.2/32");
    fault->mutable_target()->set_direction(direction);
    fault->mutable_delay()->mutable_latency()->set_nanos(50'000'000);
    grpc::Status status = Inject(experiment);
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::vector<double> round_trips = EchoRoundTrips(Host(), Peer(2), kProbes, 2000);
    OneWay delayed = OneWayMedians(300);
    Revert(id);
    ASSERT_GE(round_trips.size(), static_cast<size_t>(kProbes * 0.99));
    double added_rtt_ms = Median(round_trips) / 1000 - base_rtt_ms;
    double expected_rtt_ms = both ? 100 : 50;
    std::string name = both ? "both" : "ingress";
    Measured(name + ".base_rtt_ms", base_rtt_ms);
    Measured(name + ".added_rtt_ms", added_rtt_ms);
    EXPECT_NEAR(added_rtt_ms, expected_rtt_ms, expected_rtt_ms * 0.05)
        << "50 ms " << v1::Direction_Name(direction) << " added " << added_rtt_ms
        << " ms of RTT at the median";
    double inbound_ms = delayed.peer_to_host_ms - base.peer_to_host_ms;
    double outbound_ms = delayed.host_to_peer_ms - base.host_to_peer_ms;
    Measured(name + ".added_peer_to_host_ms", inbound_ms);
    Measured(name + ".added_host_to_peer_ms", outbound_ms);
    EXPECT_NEAR(inbound_ms, 50, 2.5) << "peer -> host, one way";
    if (both) {
      EXPECT_NEAR(outbound_ms, 50, 2.5) << "host -> peer, one way";
    } else {
      EXPECT_LT(outbound_ms, 2.5) << "an ingress delay slowed host -> peer by " << outbound_ms << " ms";
    }
  }
}

// netem draws each packet's delay on its own (tabledist) and sends packets in the order of their times
// (tfifo), so under jitter packets overtake each other and each packet's one-way delay is one draw.
// Round trips of pings would measure the same only while each is independent: with keep_order, or
// pings sent one after the other's reply, a packet's delay also depends on the ones before it.
TEST_F(ShapingFaultsTest, JitterSpreadsTheDelayAsItsDistributionImplies) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  using std::chrono_literals::operator""ms;
  constexpr int kProbes = 600;  // to each peer
  constexpr double kJitterMs = 10;
  struct Case {
    v1::Delay::Distribution distribution;
    double expected_sd_ms;
  };
  // Uniform on [-j, j) (netem without a table) has a standard deviation of j/sqrt(3); the normal
  // table is in units of one standard deviation.
  for (Case c : {Case{v1::Delay::DISTRIBUTION_UNSPECIFIED, kJitterMs / std::sqrt(3.0)},
                 Case{v1::Delay::DISTRIBUTION_NORMAL, kJitterMs}}) {
    std::string name = v1::Delay::Distribution_Name(c.distribution);
    SCOPED_TRACE(name);
    // Peer 2 gets the jitter, peer 3 the same latency without: one stream alternating between them
    // measures the path's own spread (netem's timer included) under the same conditions. That spread
    // is independent of netem's draw, so the variances add.
    std::string id = Cat("jitter-", c.distribution);
    v1::Experiment experiment = NewExperiment(id);
    v1::Delay* jittered = AddFault(experiment, "198.18.0.2/32")->mutable_delay();
    jittered->mutable_latency()->set_nanos(50'000'000);
    jittered->mutable_jitter()->set_nanos(static_cast<int32_t>(kJitterMs * 1'000'000));
    jittered->set_distribution(c.distribution);
    AddFault(experiment, "198.18.0.3/32")->mutable_delay()->mutable_latency()->set_nanos(50'000'000);
    grpc::Status status = Inject(experiment);
    ASSERT_TRUE(status.ok()) << status.error_message();
    StreamOptions options;
    options.count = 2 * kProbes;
    options.interval = 1ms;
    options.alternate_address = Peer(3).address;
    UdpStream stream = SendUdpStream(Host(), Peer(2), options);
    Revert(id);
    std::vector<double> delays[2];  // [0]: peer 2, jittered; [1]: peer 3, fixed
    for (const Arrival& arrival : stream.arrivals) delays[arrival.sequence % 2].push_back(arrival.one_way_ms);
    // A delay further than five jitters from the median is dropped: neither distribution draws one
    // (uniform stops at one jitter, the normal table at four), but an emulated CPU's late timer does.
    for (int path : {0, 1}) {
      std::vector<double>& d = delays[path];
      ASSERT_GE(d.size(), static_cast<size_t>(kProbes * 0.99));
      double median = Median(d);
      size_t before = d.size();
      std::erase_if(d, [&](double delay) { return std::abs(delay - median) > 5 * kJitterMs; });
      Measured(name + (path == 0 ? ".jittered_outliers" : ".fixed_outliers"),
               static_cast<double>(before - d.size()));
    }
    double sd = StandardDeviation(delays[0]);
    double path_sd = StandardDeviation(delays[1]);
    double added_sd = std::sqrt(std::max(0.0, sd * sd - path_sd * path_sd));
    double shift = Mean(delays[0]) - Mean(delays[1]);
    Measured(name + ".path_sd_ms", path_sd);
    Measured(name + ".sd_ms", sd);
    Measured(name + ".added_sd_ms", added_sd);
    Measured(name + ".mean_shift_ms", shift);
    EXPECT_NEAR(added_sd, c.expected_sd_ms, c.expected_sd_ms * 0.3)
        << "10 ms of " << name << " jitter spread the delay by " << added_sd << " ms (path alone: " << path_sd
        << " ms)";
    // Both distributions are centred on the latency: jitter must not move the mean.
    EXPECT_NEAR(shift, 0, 2.5);
  }
}

// Fidelity next to the baseline a user would otherwise run: faultline's delay against `tc qdisc add
// ... root netem delay` at the same settings, one after the other on the same path, measured by the
// same stream. The [ MEASURED ] lines are the benchmark's numbers (docs/benchmarks.md, "Fidelity"),
// taken in the VM suite's kernels; the assertions hold faultline to netem driven by tc.
TEST_F(ShapingFaultsTest, DelayAndJitterMatchNetemDrivenByTc) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  using std::chrono_literals::operator""ms;
  const std::string ns = HostNetnsName();
  // The mean and standard deviation of one stream's one-way delays, without the delays further than
  // five jitters (or 10 ms) from the median: no setting draws one, an emulated CPU's late timer does.
  auto measure = [&](const std::string& name) {
    std::vector<double> delays = OneWayDelaysMs(Stream(Host(), Peer(2), 500, 1ms));
    EXPECT_GE(delays.size(), 495u) << name;
    return delays;
  };
  struct Setting {
    int latency_ms;
    int jitter_ms;
  };
  for (Setting setting :
       {Setting{10, 0}, Setting{50, 0}, Setting{100, 0}, Setting{50, 10}, Setting{100, 20}}) {
    const std::string name = Cat("delay_", setting.latency_ms, "ms_jitter_", setting.jitter_ms, "ms");
    SCOPED_TRACE(name);
    v1::Experiment experiment = NewExperiment(name);
    v1::Delay* delay = AddFault(experiment, "198.18.0.2/32")->mutable_delay();
    delay->mutable_latency()->set_nanos(setting.latency_ms * 1'000'000);
    if (setting.jitter_ms > 0) delay->mutable_jitter()->set_nanos(setting.jitter_ms * 1'000'000);
    grpc::Status status = Inject(experiment);
    ASSERT_TRUE(status.ok()) << status.error_message();
    std::vector<double> ours = measure(name + " faultline");
    Revert(name);
    Shell(Cat("tc -n ", ns, " qdisc add dev ", Sandbox::kHostInterface, " root netem delay ",
              setting.latency_ms, "ms", setting.jitter_ms > 0 ? Cat(" ", setting.jitter_ms, "ms") : ""));
    std::vector<double> theirs = measure(name + " tc netem");
    Shell(Cat("tc -n ", ns, " qdisc del dev ", Sandbox::kHostInterface, " root"));

    const double cut = std::max(5.0 * setting.jitter_ms, 10.0);
    double stats[2][2];  // [faultline, tc][mean, sd]
    for (auto [delays, tool] : {std::pair{&ours, 0}, std::pair{&theirs, 1}}) {
      double median = Median(*delays);
      std::erase_if(*delays, [&](double d) { return std::abs(d - median) > cut; });
      stats[tool][0] = Mean(*delays);
      stats[tool][1] = StandardDeviation(*delays);
      const char* label = tool == 0 ? "faultline" : "tc_netem";
      Measured(Cat(name, ".", label, ".mean_ms"), stats[tool][0]);
      Measured(Cat(name, ".", label, ".sd_ms"), stats[tool][1]);
    }
    EXPECT_NEAR(stats[0][0], stats[1][0], std::max(2.0, 0.05 * setting.latency_ms))
        << "faultline's mean delay against tc netem's";
    if (setting.jitter_ms > 0) {
      // Uniform jitter (netem's, with no table) has a standard deviation of jitter / sqrt(3).
      EXPECT_NEAR(stats[0][1], stats[1][1], 0.3 * setting.jitter_ms / std::sqrt(3.0))
          << "faultline's jitter against tc netem's";
    }
  }
}

// A delay is on the wire when Inject returns and off when Revert returns, for faultline as for `tc
// qdisc add/del ... netem` run as a script would (`ip netns exec`). The time each call or command
// took is the benchmark's (bench/netem-fidelity, "time to inject and revert"): on the host kernel,
// which has no netem, bench/inject-latency cannot measure a delay.
TEST_F(ShapingFaultsTest, DelayIsOnTheWireWhenInjectReturnsAndOffWhenRevertReturns) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  using std::chrono_literals::operator""ms;
  constexpr int kRuns = 20;
  const std::string ns = HostNetnsName();
  // The first datagram sent once the call returned: delayed by the 50 ms fault or not (25 ms apart).
  auto first_delayed = [&] {
    std::vector<double> delays = OneWayDelaysMs(Stream(Host(), Peer(2), 1, 1ms));
    return !delays.empty() && delays[0] > 25;
  };
  auto milliseconds_since = [](std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  std::vector<double> times[2][2];  // [faultline, tc][inject, revert]
  for (int run = 0; run < kRuns; run++) {
    const std::string id = Cat("delay-time-", run);
    v1::Experiment experiment = NewExperiment(id);
    AddFault(experiment, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(50'000'000);
    auto start = std::chrono::steady_clock::now();
    grpc::Status status = Inject(experiment);
    times[0][0].push_back(milliseconds_since(start));
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(first_delayed()) << "run " << run
                                 << ": faultline's delay was not on the wire when Inject returned";
    start = std::chrono::steady_clock::now();
    Revert(id);
    times[0][1].push_back(milliseconds_since(start));
    EXPECT_FALSE(first_delayed()) << "run " << run << ": faultline's delay was still on when Revert returned";

    for (const char* step : {"add", "del"}) {
      start = std::chrono::steady_clock::now();
      CommandResult result =
          RunCommand(Cat("ip netns exec ", ns, " tc qdisc ", step, " dev ", Sandbox::kHostInterface, " root",
                         std::string(step) == "add" ? " netem delay 50ms" : ""));
      times[1][std::string(step) == "add" ? 0 : 1].push_back(milliseconds_since(start));
      ASSERT_EQ(result.exit_code, 0) << result.output;
      EXPECT_EQ(first_delayed(), std::string(step) == "add") << "run " << run << ": tc qdisc " << step;
    }
  }
  for (int tool : {0, 1}) {
    for (int step : {0, 1}) {
      std::vector<double>& t = times[tool][step];
      std::sort(t.begin(), t.end());
      const std::string name =
          Cat("delay_time.", tool == 0 ? "faultline" : "tc_netem", ".", step == 0 ? "inject" : "revert");
      Measured(name + ".p50_ms", t[t.size() / 2]);
      Measured(name + ".max_ms", t.back());
    }
  }
}

// Loss next to netem driven by tc, as above: faultline's eBPF loss and its netem loss against `tc
// qdisc add ... root netem loss`, 2000 datagrams each.
TEST_F(ShapingFaultsTest, LossMatchesNetemDrivenByTc) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  constexpr int kCount = 2000;
  const std::string ns = HostNetnsName();
  auto lost_percent = [&] {
    Delivery delivery = SendUdp(Host(), Peer(2), kCount);
    return 100.0 * (kCount - delivery.received) / kCount;
  };
  for (double percent : {1.0, 10.0, 25.0}) {
    const std::string name = Cat("loss_", percent, "pct");
    SCOPED_TRACE(name);
    double measured[3];  // faultline eBPF, faultline netem, tc netem
    for (auto model : {v1::Loss::MODEL_EBPF, v1::Loss::MODEL_NETEM_RANDOM}) {
      v1::Experiment experiment = NewExperiment(Cat(name, "-", model));
      v1::Loss* loss = AddFault(experiment, "198.18.0.2/32")->mutable_loss();
      loss->set_percent(percent);
      loss->set_model(model);
      grpc::Status status = Inject(experiment);
      ASSERT_TRUE(status.ok()) << status.error_message();
      measured[model == v1::Loss::MODEL_EBPF ? 0 : 1] = lost_percent();
      Revert(experiment.id());
    }
    Shell(Cat("tc -n ", ns, " qdisc add dev ", Sandbox::kHostInterface, " root netem loss ", percent, "%"));
    measured[2] = lost_percent();
    Shell(Cat("tc -n ", ns, " qdisc del dev ", Sandbox::kHostInterface, " root"));
    Measured(name + ".faultline_ebpf", measured[0]);
    Measured(name + ".faultline_netem", measured[1]);
    Measured(name + ".tc_netem", measured[2]);
    // Each share is binomial: 3 standard deviations of the difference of two, in points.
    const double sigma = 100 * std::sqrt(2 * (percent / 100) * (1 - percent / 100) / kCount);
    EXPECT_NEAR(measured[0], measured[2], 3 * sigma) << "faultline's eBPF loss against tc netem's";
    EXPECT_NEAR(measured[1], measured[2], 3 * sigma) << "faultline's netem loss against tc netem's";
  }
}

TEST_F(ShapingFaultsTest, KeepOrderStopsJitterFromReordering) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  using std::chrono_literals::operator""ms;
  constexpr int kPackets = 1000;
  // A veth hands a packet to the backlog of the CPU that sent it (netif_rx), so two packets netem
  // releases back to back from two CPUs (its timer's, the sender's own qdisc run) can swap there when
  // a CPU stalls, as an emulated VM's do. Steering the peer's receive to one CPU (RPS) keeps a flow in
  // order as a NIC's receive-side scaling does; what reordering remains is netem's.
  Shell(Cat("ip netns exec ", sandbox_->peers_netns().substr(11), " sh -c 'echo 1 > /sys/class/net/",
            Sandbox::kPeersInterface, "/queues/rx-0/rps_cpus'"));
  // Without keep_order the same stream must show reordering, or the check below could not fail.
  for (bool keep_order : {false, true}) {
    SCOPED_TRACE(keep_order ? "keep_order" : "without keep_order");
    std::string id = keep_order ? "keep-order" : "reordering";
    v1::Experiment experiment = NewExperiment(id);
    v1::Delay* delay = AddFault(experiment, "198.18.0.2/32")->mutable_delay();
    delay->mutable_latency()->set_nanos(50'000'000);
    delay->mutable_jitter()->set_nanos(10'000'000);
    delay->set_keep_order(keep_order);
    grpc::Status status = Inject(experiment);
    ASSERT_TRUE(status.ok()) << status.error_message();
    UdpStream stream = Stream(Host(), Peer(2), kPackets, 1ms);
    Revert(id);
    ASSERT_GE(stream.arrivals.size(), static_cast<size_t>(kPackets * 0.99));
    int late = ArrivedAfterALaterOne(stream);
    Measured(id + ".late", late);
    if (keep_order) {
      EXPECT_EQ(late, 0) << late << " of " << kPackets << " datagrams arrived after a later one";
      EXPECT_GE(Median(OneWayDelaysMs(stream)), 50 - 2.5) << "keep_order lost the delay";
    } else {
      EXPECT_GT(late, kPackets / 10) << "10 ms of jitter at 1 ms spacing reordered only " << late;
    }
  }
}

// netem's Gilbert-Elliott chain (loss_gilb_ell) first moves between states, then loses the packet with
// the new state's loss chance. With everything lost in the bad state and nothing in the good one
// (h = 0, k = 0: Gilbert's simple model), a burst is a stay in the bad state: geometric, mean 1/r;
// and the loss share is the bad state's share, p/(p+r).
TEST_F(ShapingFaultsTest, GilbertElliottLossComesInBurstsOfTheModelsMeanLength) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  using std::chrono_literals::operator""us;
  constexpr int kPackets = 10000;
  constexpr double kP = 0.05, kR = 0.25;
  v1::Experiment experiment = NewExperiment("gilbert-elliott");
  v1::Loss* loss = AddFault(experiment, "198.18.0.2/32")->mutable_loss();
  loss->set_model(v1::Loss::MODEL_GILBERT_ELLIOTT);
  loss->mutable_gilbert_elliott()->set_p(kP * 100);
  loss->mutable_gilbert_elliott()->set_r(kR * 100);
  loss->mutable_gilbert_elliott()->set_h(0);
  loss->mutable_gilbert_elliott()->set_k(0);
  grpc::Status status = Inject(experiment);
  ASSERT_TRUE(status.ok()) << status.error_message();
  UdpStream stream = Stream(Host(), Peer(2), kPackets, 100us);
  Revert("gilbert-elliott");
  EXPECT_EQ(stream.delivery.send_errors, 0);
  std::vector<int> bursts = LossBursts(stream);
  ASSERT_FALSE(bursts.empty());
  double lost = 0;
  for (int burst : bursts) lost += burst;
  double mean_burst = lost / static_cast<double>(bursts.size());
  Measured("bursts", static_cast<double>(bursts.size()));
  Measured("mean_burst", mean_burst);
  Measured("loss_share", lost / kPackets);
  EXPECT_NEAR(mean_burst, 1 / kR, 0.2 / kR) << bursts.size() << " bursts, " << lost << " lost";
  // The share of a two-state chain varies more than a binomial one: by (1 + l) / (1 - l), where
  // l = 1 - p - r is the chain's correlation from one packet to the next.
  double share = kP / (kP + kR);
  double l = 1 - kP - kR;
  double sigma = std::sqrt(share * (1 - share) / kPackets * (1 + l) / (1 - l));
  EXPECT_NEAR(lost / kPackets, share, 4 * sigma);
}

TEST_F(ShapingFaultsTest, DuplicateAndCorruptHitTheirShareOfPackets) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  using std::chrono_literals::operator""us;
  constexpr int kPackets = 5000;
  const double three_sigma = 3 * std::sqrt(kPackets * 0.1 * 0.9);

  v1::Experiment duplicate = NewExperiment("duplicate");
  AddFault(duplicate, "198.18.0.2/32")->mutable_duplicate()->set_percent(10);
  grpc::Status status = Inject(duplicate);
  ASSERT_TRUE(status.ok()) << status.error_message();
  UdpStream duplicated = Stream(Host(), Peer(2), kPackets, 100us);
  Revert("duplicate");
  int copies = DuplicatesReceived(duplicated);
  Measured("duplicate.copies", copies);
  EXPECT_EQ(duplicated.delivery.received - copies, kPackets) << "datagrams were lost";
  EXPECT_NEAR(copies, kPackets * 0.1, three_sigma) << "10% duplicate made " << copies << " copies";

  // netem flips one random bit of the frame (Ethernet header included). Counting what the UDP socket
  // misses would be biased: its checksum drops a datagram damaged in the IP or UDP part, and a
  // destination MAC no longer the peer's drops it too, but a flipped source MAC goes unnoticed. So the
  // frames are judged as they arrive on the peer's interface, before any layer checks them.
  v1::Experiment corrupt = NewExperiment("corrupt");
  AddFault(corrupt, "198.18.0.2/32")->mutable_corrupt()->set_percent(10);
  status = Inject(corrupt);
  ASSERT_TRUE(status.ok()) << status.error_message();
  UdpStream corrupted = Stream(Host(), Peer(2), kPackets, 100us, Sandbox::kPeersInterface);
  Revert("corrupt");
  Measured("corrupt.frames_damaged", corrupted.frames_damaged);
  Measured("corrupt.received", corrupted.delivery.received);
  EXPECT_EQ(corrupted.frames_seen, kPackets) << "frames were lost or duplicated";
  EXPECT_NEAR(corrupted.frames_damaged, kPackets * 0.1, three_sigma)
      << "10% corrupt damaged " << corrupted.frames_damaged << " frames";
  // Most damaged datagrams never reach the socket (all but the ~5% damaged in the source MAC).
  EXPECT_LT(corrupted.delivery.received, kPackets - corrupted.frames_damaged / 2);
}

// netem's reorder (netem_enqueue): a packet not inside the last `gap` is, with the reorder chance,
// sent at once instead of delayed, ahead of the delayed packets before it. With gap 1 (what the
// agent sends for 0) every packet is a candidate: a quarter of them go early. With gap 5 the four
// packets after an early one are always delayed, then each is a candidate until one goes: one in
// 4 + 1/0.25 = 8.
TEST_F(ShapingFaultsTest, ReorderSendsItsShareOfPacketsAheadOfDelayedOnes) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  using std::chrono_literals::operator""ms;
  constexpr int kPackets = 2000;
  for (auto [gap, expected_share] : {std::pair{0u, 0.25}, std::pair{5u, 0.125}}) {
    SCOPED_TRACE(Cat("gap ", gap));
    std::string id = Cat("reorder-gap-", gap);
    v1::Experiment experiment = NewExperiment(id);
    AddFault(experiment, "198.18.0.2/32")->mutable_delay()->mutable_latency()->set_nanos(10'000'000);
    v1::Reorder* reorder = AddFault(experiment, "198.18.0.2/32")->mutable_reorder();
    reorder->set_percent(25);
    reorder->set_gap(gap);
    grpc::Status status = Inject(experiment);
    ASSERT_TRUE(status.ok()) << status.error_message();
    // 1 ms apart, about ten delayed packets are in flight for an early one to overtake.
    UdpStream stream = Stream(Host(), Peer(2), kPackets, 1ms);
    Revert(id);
    ASSERT_GE(stream.arrivals.size(), static_cast<size_t>(kPackets * 0.99));
    int early = ArrivedBeforeAnEarlierOne(stream);
    Measured(id + ".early", early);
    // Five times a binomial's sigma, not three: whether an early packet overtakes one depends on
    // timing too, and an emulated VM's stalls spread the count wider (one run on 6.12 counted 568
    // of an expected 500, 4.3 sigma). Still far from gap 5's share or from a percent 10 points off.
    double five_sigma = 5 * std::sqrt(kPackets * expected_share * (1 - expected_share));
    EXPECT_NEAR(early, kPackets * expected_share, five_sigma) << early << " of " << kPackets << " went early";
  }
}

// The agent builds every delay distribution table itself (kernel/netem_tables), so no kernel with netem
// lacks one: each is taken. What is refused is a table with nothing to scale: no jitter.
TEST_F(ShapingFaultsTest, EveryDistributionIsTakenAndOneWithoutJitterIsRefused) {
  if (std::string lacks = Lacks("netem"); !lacks.empty()) GTEST_SKIP() << lacks;
  for (auto distribution : {v1::Delay::DISTRIBUTION_NORMAL, v1::Delay::DISTRIBUTION_PARETO,
                            v1::Delay::DISTRIBUTION_PARETONORMAL}) {
    SCOPED_TRACE(v1::Delay::Distribution_Name(distribution));
    std::string id = Cat("distribution-", distribution);
    v1::Experiment experiment = NewExperiment(id);
    v1::Delay* delay = AddFault(experiment, "198.18.0.2/32")->mutable_delay();
    delay->mutable_latency()->set_nanos(50'000'000);
    delay->mutable_jitter()->set_nanos(10'000'000);
    delay->set_distribution(distribution);
    grpc::Status status = Inject(experiment);
    EXPECT_TRUE(status.ok()) << status.error_message();
    Revert(id);

    delay->clear_jitter();
    experiment.set_id(id + "-no-jitter");
    status = Inject(experiment);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
    EXPECT_NE(status.error_message().find("distribution needs a jitter"), std::string::npos)
        << status.error_message();
    EXPECT_EQ(sandbox_->HostTcState(), clean_state_) << "a refused distribution left kernel state behind";
  }
}

// The device's root before the experiment (the kernel's default, a tbf, an htb tree) comes back as
// it was, with every option, however the experiment ends.
TEST_F(ShapingFaultsTest, TheRootQdiscIsRestoredExactlyHoweverTheExperimentEnds) {
  if (!Lacks("htb").empty() && !Lacks("prio").empty()) GTEST_SKIP() << Lacks("htb");
  if (std::string lacks = Lacks("tbf"); !lacks.empty()) GTEST_SKIP() << lacks;
  const std::string tc = Cat("tc -n ", HostNetnsName(), " ");
  const std::string dev = Cat(" dev ", Sandbox::kHostInterface, " ");
  struct Root {
    std::string name;
    std::vector<std::string> commands;
  };
  const std::vector<Root> roots = {
      {"default", {}},
      {"tbf",
       {"qdisc add" + dev + "root handle 5: tbf rate 800mbit burst 256kb limit 2mb peakrate 1gbit mtu 2kb"}},
      {"htb",
       {"qdisc add" + dev + "root handle 7: htb default 10 r2q 20",
        "class add" + dev + "parent 7: classid 7:1 htb rate 900mbit ceil 1gbit burst 64kb cburst 32kb",
        "class add" + dev + "parent 7:1 classid 7:10 htb rate 500mbit ceil 900mbit prio 2 quantum 3000",
        "qdisc add" + dev + "parent 7:10 handle 70: pfifo limit 500"}},
  };
  enum class End { kRevert, kHalt, kExpiry };
  for (const Root& root : roots) {
    for (End end : {End::kRevert, End::kHalt, End::kExpiry}) {
      const char* ending = end == End::kRevert ? "revert" : end == End::kHalt ? "halt" : "expiry";
      SCOPED_TRACE(Cat(root.name, " root, ", ending));
      for (const std::string& command : root.commands) Shell(tc + command);
      std::string before = HostTcTree();
      std::string id = Cat("root-", root.name, "-", ending);
      v1::Experiment experiment = NewExperiment(id);
      if (end == End::kExpiry) experiment.mutable_duration()->set_seconds(2);
      AddFault(experiment, "198.18.0.2/32")->mutable_bandwidth()->set_rate_bits_per_second(5'000'000);
      grpc::Status status = Inject(experiment);
      ASSERT_TRUE(status.ok()) << status.error_message();
      EXPECT_NE(HostTcTree(), before) << "the fault changed nothing";
      switch (end) {
        case End::kRevert:
          Revert(id);
          break;
        case End::kHalt:
          Halt();
          break;
        case End::kExpiry:
          for (int i = 0; i < 100 && Get(id).state() != v1::STATE_EXPIRED; i++) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
          EXPECT_EQ(Get(id).state(), v1::STATE_EXPIRED);
          break;
      }
      EXPECT_EQ(HostTcTree(), before);
      if (!root.commands.empty()) Shell(tc + "qdisc del" + dev + "root");
    }
  }
}
}  // namespace
}  // namespace faultline::test

// The qdisc layer, checked against the kernel's own view through iproute2: every builder's result is
// compared with `tc` output, most of them with what `tc` itself makes from the same parameters on the
// other end of a veth pair. Needs root; each test makes two scratch network namespaces joined by a
// veth pair (198.18.0.1/30 and 198.18.0.2/30) and deletes them afterwards, whatever happened.
#include "kernel/qdisc.h"

#include <gtest/gtest.h>
#include <linux/pkt_sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "faultline/api/cat.h"
#include "kernel/capabilities.h"
#include "kernel/netem_tables.h"
#include "shell.h"

namespace faultline::kernel {
namespace {

using api::Cat;
using test::CommandResult;
using test::Shell;

constexpr uint32_t Handle(uint32_t major, uint32_t minor = 0) { return TC_H_MAKE(major << 16, minor); }

// What `tc` prints that is not configuration: "refcnt N" counts the kernel's references, and htb's
// direct_packets_stat counts packets (IPv6 router solicitations find no class and go direct).
std::string WithoutCounters(const std::string& text) {
  return std::regex_replace(text, std::regex(" refcnt [0-9]+| direct_packets_stat [0-9]+"), "");
}

const KernelFeatures& Features() {
  static const KernelFeatures features = ProbeKernelFeatures();
  return features;
}

// Why the running kernel cannot run a test that needs `feature`, or nothing.
std::optional<std::string> Missing(std::string_view feature) {
  if (Features().Has(feature)) return std::nullopt;
  const v1::Feature* found = Features().Find(feature);
  return Cat("kernel ", Features().release, " has no ", feature, ": ",
             found ? found->detail() : "not probed");
}

#define REQUIRE_FEATURE(feature) \
  if (auto missing = Missing(feature)) GTEST_SKIP() << *missing

class QdiscTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: the tests create network namespaces, qdiscs and devices";
    pair_.emplace(Cat("fltest-qdisc-", getpid()));
    ASSERT_EQ(pair_->error(), "");
    ns_ = pair_->ns();
    peer_ns_ = pair_->peer_ns();
    auto netns = Netns::Open(Cat("/run/netns/", ns_));
    ASSERT_TRUE(netns.ok()) << netns.status();
    netns_ = *netns;
  }

  void TearDown() override {
    netns_.reset();
    pair_.reset();
  }

  // tc in the test's namespace (fl-a) and in the peer's (fl-b).
  CommandResult Tc(const std::string& args) { return Shell(Cat("ip netns exec ", ns_, " tc ", args)); }
  CommandResult PeerTc(const std::string& args) {
    return Shell(Cat("ip netns exec ", peer_ns_, " tc ", args));
  }

  void MustTc(const std::string& args) {
    CommandResult result = Tc(args);
    ASSERT_EQ(result.exit_code, 0) << "tc " << args << ": " << result.output;
  }

  // Everything `tc` shows of fl-a's egress configuration, in detail, without statistics.
  std::string TreeOfA() {
    return Cat("qdiscs:\n", WithoutCounters(Tc("-d qdisc show dev fl-a").output), "classes:\n",
               Tc("-d class show dev fl-a").output, "filters:\n", Tc("filter show dev fl-a").output);
  }

  // Checks that fl-a's root qdisc looks to tc exactly like the one `tc qdisc add dev fl-b root <spec>`
  // makes on fl-b, and returns tc's line for it.
  std::string ExpectSameRootAsTc(const std::string& spec) {
    CommandResult added = PeerTc(Cat("qdisc add dev fl-b root ", spec));
    EXPECT_EQ(added.exit_code, 0) << "tc qdisc add dev fl-b root " << spec << ": " << added.output;
    std::string ours = WithoutCounters(Tc("-d qdisc show dev fl-a").output);
    std::string theirs = WithoutCounters(PeerTc("-d qdisc show dev fl-b").output);
    EXPECT_EQ(ours, theirs) << "tc made it from: " << spec;
    PeerTc("qdisc del dev fl-b root");
    return ours;
  }

  std::string RootOfA() { return WithoutCounters(Tc("qdisc show dev fl-a root").output); }

  std::string ns_;
  std::string peer_ns_;
  std::optional<test::VethPair> pair_;
  std::shared_ptr<Netns> netns_;
};  // namespace

// The qdisc handle pattern a test looks for in tc's output.
void ExpectContains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "\"" << part << "\" not in:\n" << text;
}

constexpr char kNoqueueRoot[] = "qdisc noqueue 0: root \n";

// --- netem ------------------------------------------------------------------------------------------

NetemParams EveryNetemKnob() {
  NetemParams params;
  params.latency_ns = 50'000'000;
  params.jitter_ns = 10'000'000;
  params.delay_correlation = 25;
  params.distribution = DelayDistribution::kNormal;
  params.loss_percent = 10;
  params.loss_correlation = 5;
  params.duplicate_percent = 5;
  params.corrupt_percent = 1;
  params.reorder_percent = 25;
  params.gap = 5;
  params.rate_bytes_per_second = 1'250'000;  // 10 Mbit/s
  return params;
}

TEST_F(QdiscTest, NetemMatchesTc) {
  REQUIRE_FEATURE("netem");
  auto netem = Qdisc::AddNetem(netns_, "fl-a", TC_H_ROOT, Handle(0x10), EveryNetemKnob());
  ASSERT_TRUE(netem.ok()) << netem.status();
  // The kernel never reports netem's delay table, so tc's twin needs no .dist file to look the same.
  std::string line = ExpectSameRootAsTc(
      "handle 10: netem delay 50ms 10ms 25% loss 10% 5% duplicate 5% corrupt 1% reorder 25% gap 5 rate "
      "10mbit");
  for (const char* part : {"qdisc netem 10: root", "limit 1000", "delay 50ms  10ms 25%", "loss 10% 5%",
                           "duplicate 5%", "reorder 25%", "corrupt 1%", "rate 10Mbit", "gap 5"}) {
    ExpectContains(line, part);
  }
  EXPECT_EQ((*netem)->Describe(), Cat("netem 10: root on fl-a in netns /run/netns/", ns_));
  netem->reset();
  EXPECT_EQ(RootOfA(), kNoqueueRoot);
}

TEST_F(QdiscTest, NetemGilbertElliottMatchesTc) {
  REQUIRE_FEATURE("netem");
  NetemParams params;
  params.gilbert_elliott = GilbertElliott{.p = 1, .r = 10, .loss_in_bad = 70, .loss_in_good = 0.1};
  auto netem = Qdisc::AddNetem(netns_, "fl-a", TC_H_ROOT, Handle(0x10), params);
  ASSERT_TRUE(netem.ok()) << netem.status();
  std::string line = ExpectSameRootAsTc("handle 10: netem loss gemodel 1% 10% 70% 0.1%");
  ExpectContains(line, "loss gemodel p 1% r 10% 1-h 70% 1-k 0.1%");
}

// Latency above 2^32 ns (4.29 s) needs TCA_NETEM_LATENCY64, a rate above 2^32 bytes/s TCA_NETEM_RATE64.
TEST_F(QdiscTest, NetemTakesSixtyFourBitLatencyAndRate) {
  REQUIRE_FEATURE("netem");
  NetemParams params;
  params.latency_ns = 5'000'000'000;
  params.rate_bytes_per_second = 5'000'000'000;  // 40 Gbit/s
  auto netem = Qdisc::AddNetem(netns_, "fl-a", TC_H_ROOT, Handle(0x10), params);
  ASSERT_TRUE(netem.ok()) << netem.status();
  std::string line = ExpectSameRootAsTc("handle 10: netem delay 5s rate 40gbit");
  ExpectContains(line, "delay 5s");
  ExpectContains(line, "rate 40Gbit");
}

TEST_F(QdiscTest, NetemChangesInPlace) {
  REQUIRE_FEATURE("netem");
  NetemParams params = EveryNetemKnob();
  auto netem = Qdisc::AddNetem(netns_, "fl-a", TC_H_ROOT, Handle(0x10), params);
  ASSERT_TRUE(netem.ok()) << netem.status();

  // Everything left out goes back to netem's defaults, not to what it had before.
  NetemParams changed;
  changed.latency_ns = 20'000'000;
  changed.jitter_ns = 5'000'000;
  changed.distribution = DelayDistribution::kPareto;
  changed.gilbert_elliott = GilbertElliott{.p = 2, .r = 20};
  changed.limit_packets = 500;
  ASSERT_TRUE((*netem)->ChangeNetem(changed).ok());
  ExpectSameRootAsTc("handle 10: netem limit 500 delay 20ms 5ms loss gemodel 2% 20%");

  // netem would keep the Pareto table: uniform jitter needs a new qdisc.
  changed.distribution = DelayDistribution::kUniform;
  absl::Status refused = (*netem)->ChangeNetem(changed);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  ExpectContains(std::string(refused.message()), "pareto");
}

TEST_F(QdiscTest, NetemUnderAPrioBand) {
  REQUIRE_FEATURE("netem");
  REQUIRE_FEATURE("prio");
  auto prio = Qdisc::AddPrioRoot(netns_, "fl-a", Handle(1), 3);
  ASSERT_TRUE(prio.ok()) << prio.status();
  NetemParams params;
  params.latency_ns = 30'000'000;
  auto netem = Qdisc::AddNetem(netns_, "fl-a", Handle(1, 2), Handle(0x20), params);
  ASSERT_TRUE(netem.ok()) << netem.status();
  ExpectContains(Tc("qdisc show dev fl-a").output, "qdisc netem 20: parent 1:2 limit 1000 delay 30ms");
  EXPECT_EQ((*netem)->Describe(), Cat("netem 20: parent 1:2 on fl-a in netns /run/netns/", ns_));
  // A band that holds someone's qdisc is not taken over.
  auto again = Qdisc::AddNetem(netns_, "fl-a", Handle(1, 2), Handle(0x21), params);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  netem->reset();
  EXPECT_EQ(Tc("qdisc show dev fl-a").output.find("netem"), std::string::npos)
      << Tc("qdisc show dev fl-a").output;
  prio->reset();
  EXPECT_EQ(RootOfA(), kNoqueueRoot);
}

// Round-trip times in ms of `count` pings from fl-a to fl-b, 10 ms apart.
std::vector<double> PingTimes(const std::string& ns, int count) {
  CommandResult ping = Shell(Cat("ip netns exec ", ns, " ping -n -c ", count, " -i 0.01 -W 2 198.18.0.2"));
  std::vector<double> times;
  const std::regex time(R"(time=([0-9.]+) ms)");
  for (auto it = std::sregex_iterator(ping.output.begin(), ping.output.end(), time);
       it != std::sregex_iterator(); ++it) {
    times.push_back(std::stod((*it)[1]));
  }
  EXPECT_GE(times.size(), static_cast<size_t>(count) * 9 / 10) << ping.output;
  return times;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

// The delay table checked by traffic: it reaches the kernel, scaled to the jitter. With 50 ms of
// latency and 10 ms of jitter, uniform jitter keeps every packet within 10 ms of the median; the
// normal table sends 27% of them further (|z| > 1.1). Counting those is robust to the occasional long
// stall of an emulated CPU, which a standard deviation is not.
TEST_F(QdiscTest, NetemNormalTableShapesTheDelay) {
  REQUIRE_FEATURE("netem");
  double baseline = Median(PingTimes(ns_, 20));
  auto straying = [&](DelayDistribution distribution) -> double {
    NetemParams params;
    params.latency_ns = 50'000'000;
    params.jitter_ns = 10'000'000;
    params.distribution = distribution;
    auto netem = Qdisc::AddNetem(netns_, "fl-a", TC_H_ROOT, Handle(0x10), params);
    EXPECT_TRUE(netem.ok()) << netem.status();
    if (!netem.ok()) return 0;
    std::vector<double> times = PingTimes(ns_, 200);
    double median = Median(times);
    EXPECT_NEAR(median - baseline, 50, 5) << DelayDistributionName(distribution);
    auto far = std::count_if(times.begin(), times.end(), [&](double t) { return std::abs(t - median) > 11; });
    return times.empty() ? 0 : static_cast<double>(far) / static_cast<double>(times.size());
  };
  double uniform = straying(DelayDistribution::kUniform);
  double normal = straying(DelayDistribution::kNormal);
  RecordProperty("uniform_beyond_11ms", Cat(uniform));
  RecordProperty("normal_beyond_11ms", Cat(normal));
  EXPECT_LT(uniform, 0.08);
  EXPECT_GT(normal, 0.17);
  EXPECT_LT(normal, 0.40);
}

TEST_F(QdiscTest, NetemMissingIsAClearError) {
  if (Features().Has("netem")) GTEST_SKIP() << "kernel " << Features().release << " has netem";
  NetemParams params;
  params.latency_ns = 1'000'000;
  auto netem = Qdisc::AddNetem(netns_, "fl-a", TC_H_ROOT, Handle(0x10), params);
  EXPECT_EQ(netem.status().code(), absl::StatusCode::kFailedPrecondition) << netem.status();
  EXPECT_EQ(netem.status().message(),
            Cat("interface fl-a in netns /run/netns/", ns_,
                ": cannot add netem qdisc 10: as root: Specified qdisc kind is unknown (ENOENT)"));
  EXPECT_EQ(RootOfA(), kNoqueueRoot);
}

TEST(NetemParamsTest, RefusesWhatNetemWouldNotDoAsAsked) {
  auto code = [](const NetemParams& params) { return ValidateNetemParams(params).code(); };
  NetemParams params;
  EXPECT_EQ(code(params), absl::StatusCode::kOk);
  params.loss_percent = 120;
  EXPECT_EQ(code(params), absl::StatusCode::kInvalidArgument);
  params = {};
  params.loss_percent = 1;
  params.gilbert_elliott = GilbertElliott{.p = 1};
  EXPECT_EQ(code(params), absl::StatusCode::kInvalidArgument);
  params = {};
  params.reorder_percent = 10;  // without a latency
  EXPECT_EQ(code(params), absl::StatusCode::kInvalidArgument);
  params = {};
  params.latency_ns = 1'000'000;
  params.distribution = DelayDistribution::kNormal;  // without a jitter
  EXPECT_EQ(code(params), absl::StatusCode::kInvalidArgument);
  params.jitter_ns = uint64_t{3} << 30;  // above netem's 32-bit jitter
  EXPECT_EQ(code(params), absl::StatusCode::kInvalidArgument);
  params = {};
  params.gap = 3;  // without a reorder chance
  EXPECT_EQ(code(params), absl::StatusCode::kInvalidArgument);
  params = {};
  params.limit_packets = 0;
  EXPECT_EQ(code(params), absl::StatusCode::kInvalidArgument);
  params = {};
  params.loss_percent = -1;
  EXPECT_EQ(ValidateNetemParams(params).message(), "netem: loss_percent -1 is not a percentage (0 to 100)");
}

// --- tbf, htb, prio -----------------------------------------------------------------------------------

TEST_F(QdiscTest, TbfMatchesTc) {
  REQUIRE_FEATURE("tbf");
  auto tbf = Qdisc::AddTbf(
      netns_, "fl-a", TC_H_ROOT, Handle(2),
      TbfParams{.rate_bytes_per_second = 625'000, .burst_bytes = 32 * 1024, .limit_bytes = 64 * 1024});
  ASSERT_TRUE(tbf.ok()) << tbf.status();
  // -r shows the raw bucket (64 ns ticks) and the limit, which tc otherwise turns into a latency.
  CommandResult added = PeerTc("qdisc add dev fl-b root handle 2: tbf rate 5mbit burst 32k limit 64k");
  ASSERT_EQ(added.exit_code, 0) << added.output;
  std::string ours = WithoutCounters(Tc("-d -r qdisc show dev fl-a").output);
  EXPECT_EQ(ours, WithoutCounters(PeerTc("-d -r qdisc show dev fl-b").output));
  for (const char* part : {"qdisc tbf 2:[00020000] root", "rate 5Mbit", "burst 32Kb", "limit 64Kb"}) {
    ExpectContains(ours, part);
  }
  EXPECT_EQ((*tbf)->Describe(), Cat("tbf 2: root on fl-a in netns /run/netns/", ns_));
  tbf->reset();
  EXPECT_EQ(RootOfA(), kNoqueueRoot);
}

TEST_F(QdiscTest, TbfTakesSixtyFourBitRates) {
  REQUIRE_FEATURE("tbf");
  auto tbf = Qdisc::AddTbf(
      netns_, "fl-a", TC_H_ROOT, Handle(2),
      TbfParams{.rate_bytes_per_second = 5'000'000'000, .burst_bytes = 1'000'000, .limit_bytes = 2'000'000});
  ASSERT_TRUE(tbf.ok()) << tbf.status();
  CommandResult added =
      PeerTc("qdisc add dev fl-b root handle 2: tbf rate 40gbit burst 1000000 limit 2000000");
  ASSERT_EQ(added.exit_code, 0) << added.output;
  std::string ours = WithoutCounters(Tc("-d -r qdisc show dev fl-a").output);
  EXPECT_EQ(ours, WithoutCounters(PeerTc("-d -r qdisc show dev fl-b").output));
  ExpectContains(ours, "rate 40Gbit");
}

TEST_F(QdiscTest, HtbRootAndClasses) {
  REQUIRE_FEATURE("htb");
  auto htb = Qdisc::AddHtbRoot(netns_, "fl-a", Handle(1), 0x10);
  ASSERT_TRUE(htb.ok()) << htb.status();
  ExpectSameRootAsTc("handle 1: htb default 10");
  auto shaped = HtbClass::Add(netns_, "fl-a", Handle(1), Handle(1, 0x10), 625'000, 1'250'000);
  ASSERT_TRUE(shaped.ok()) << shaped.status();
  // 40 and 50 Gbit/s: above 2^32 bytes/s, so in TCA_HTB_RATE64 and TCA_HTB_CEIL64.
  auto fast = HtbClass::Add(netns_, "fl-a", Handle(1), Handle(1, 0x20), 5'000'000'000, 6'250'000'000);
  ASSERT_TRUE(fast.ok()) << fast.status();
  std::string classes = Tc("class show dev fl-a").output;
  ExpectContains(classes, "class htb 1:10 root prio 0 rate 5Mbit ceil 10Mbit");
  ExpectContains(classes, "class htb 1:20 root prio 0 rate 40Gbit ceil 50Gbit");
  EXPECT_EQ((*shaped)->Describe(), Cat("htb class 1:10 parent 1: on fl-a in netns /run/netns/", ns_));

  auto taken = HtbClass::Add(netns_, "fl-a", Handle(1), Handle(1, 0x10), 625'000, 0);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists) << taken.status();
  auto foreign = HtbClass::Add(netns_, "fl-a", Handle(1), Handle(2, 0x10), 625'000, 0);
  EXPECT_EQ(foreign.status().code(), absl::StatusCode::kInvalidArgument) << foreign.status();

  shaped->reset();
  classes = Tc("class show dev fl-a").output;
  EXPECT_EQ(classes.find("1:10"), std::string::npos) << classes;
  ExpectContains(classes, "1:20");
  fast->reset();
  htb->reset();
  EXPECT_EQ(RootOfA(), kNoqueueRoot);
}

TEST_F(QdiscTest, PrioRootSendsEveryPriorityToBandOne) {
  REQUIRE_FEATURE("prio");
  auto prio = Qdisc::AddPrioRoot(netns_, "fl-a", Handle(1), 4);
  ASSERT_TRUE(prio.ok()) << prio.status();
  std::string line = ExpectSameRootAsTc("handle 1: prio bands 4 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0");
  ExpectContains(line, "bands 4 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0");
  EXPECT_EQ(Qdisc::AddPrioRoot(netns_, "fl-a", Handle(3), 17).status().code(),
            absl::StatusCode::kInvalidArgument);
  prio->reset();
  EXPECT_EQ(RootOfA(), kNoqueueRoot);
}

// --- placement and errors -----------------------------------------------------------------------------

TEST_F(QdiscTest, RootIsReplacedButNeverModified) {
  REQUIRE_FEATURE("htb");
  REQUIRE_FEATURE("tbf");
  MustTc("qdisc add dev fl-a root handle 1: htb default 10");
  std::string before = TreeOfA();
  // Same handle: the kernel would change the existing qdisc instead of replacing it.
  auto same = Qdisc::AddHtbRoot(netns_, "fl-a", Handle(1), 0x20);
  EXPECT_EQ(same.status().code(), absl::StatusCode::kAlreadyExists) << same.status();
  EXPECT_EQ(TreeOfA(), before);
  auto replacing =
      Qdisc::AddTbf(netns_, "fl-a", TC_H_ROOT, Handle(2), TbfParams{625'000, 32 * 1024, 64 * 1024});
  ASSERT_TRUE(replacing.ok()) << replacing.status();
  ExpectContains(RootOfA(), "qdisc tbf 2: root");
}

TEST_F(QdiscTest, ErrorsNameInterfaceNetnsAndKernelReason) {
  REQUIRE_FEATURE("tbf");
  TbfParams params{625'000, 32 * 1024, 64 * 1024};
  auto orphan = Qdisc::AddTbf(netns_, "fl-a", Handle(5, 1), Handle(2), params);
  EXPECT_EQ(orphan.status().code(), absl::StatusCode::kFailedPrecondition) << orphan.status();
  std::string prefix =
      Cat("interface fl-a in netns /run/netns/", ns_, ": cannot add tbf qdisc 2: under 5:1: ");
  EXPECT_EQ(orphan.status().message().substr(0, prefix.size()), prefix) << orphan.status();
  EXPECT_TRUE(std::string(orphan.status().message()).ends_with("(ENOENT)")) << orphan.status();

  auto nowhere = Qdisc::AddTbf(netns_, "fl-nope", TC_H_ROOT, Handle(2), params);
  EXPECT_EQ(nowhere.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(nowhere.status().message(), Cat("interface fl-nope: no such device in netns /run/netns/", ns_));

  EXPECT_EQ(Qdisc::AddTbf(netns_, "fl-a", TC_H_ROOT, Handle(2, 1), params).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Qdisc::AddTbf(netns_, "fl-a", TC_H_ROOT, Handle(2), TbfParams{}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RootOfA(), kNoqueueRoot);
}

// What faultline made is undone on the device it made it on, whatever that device is called by then.
TEST_F(QdiscTest, FollowsTheDeviceNotTheName) {
  REQUIRE_FEATURE("tbf");
  auto tbf = Qdisc::AddTbf(netns_, "fl-a", TC_H_ROOT, Handle(2), TbfParams{625'000, 32 * 1024, 64 * 1024});
  ASSERT_TRUE(tbf.ok()) << tbf.status();
  CommandResult renamed = Shell(Cat("ip -n ", ns_, " link set fl-a down && ip -n ", ns_,
                                    " link set fl-a name fl-c && ip -n ", ns_, " link set fl-c up"));
  ASSERT_EQ(renamed.exit_code, 0) << renamed.output;
  ExpectContains(Tc("qdisc show dev fl-c").output, "qdisc tbf 2: root");
  tbf->reset();
  EXPECT_EQ(WithoutCounters(Tc("qdisc show dev fl-c root").output), kNoqueueRoot);
}

TEST(TcHandleTest, SpelledAsTcDoes) {
  EXPECT_EQ(FormatTcHandle(TC_H_ROOT), "root");
  EXPECT_EQ(FormatTcHandle(0), "none");
  EXPECT_EQ(FormatTcHandle(Handle(1)), "1:");
  EXPECT_EQ(FormatTcHandle(Handle(0x10, 0x2a)), "10:2a");
  EXPECT_EQ(FormatTcHandle(Handle(0, 1)), "0:1");
}

// --- ifb --------------------------------------------------------------------------------------------

TEST_F(QdiscTest, IfbDeviceIsCreatedUpAndDeleted) {
  REQUIRE_FEATURE("ifb");
  auto ifb = IfbDevice::Create(netns_, "fl-ifb0");
  ASSERT_TRUE(ifb.ok()) << ifb.status();
  CommandResult shown = Shell(Cat("ip -n ", ns_, " -d -o link show fl-ifb0"));
  ASSERT_EQ(shown.exit_code, 0) << shown.output;
  EXPECT_TRUE(shown.output.starts_with(Cat((*ifb)->ifindex(), ": fl-ifb0: "))) << shown.output;
  ExpectContains(shown.output, ",UP");
  ExpectContains(shown.output, " ifb ");
  EXPECT_EQ((*ifb)->Describe(), Cat("ifb device fl-ifb0 in netns /run/netns/", ns_));

  auto again = IfbDevice::Create(netns_, "fl-ifb0");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();
  auto veth = IfbDevice::Create(netns_, "fl-a");  // never adopts a device faultline did not make
  EXPECT_EQ(veth.status().code(), absl::StatusCode::kAlreadyExists) << veth.status();
  EXPECT_EQ(IfbDevice::Create(netns_, "has space").status().code(), absl::StatusCode::kInvalidArgument);

  ifb->reset();
  EXPECT_NE(Shell(Cat("ip -n ", ns_, " link show fl-ifb0")).exit_code, 0);
  EXPECT_EQ(Shell(Cat("ip -n ", ns_, " link show fl-a")).exit_code, 0);
}

TEST_F(QdiscTest, ShapingOnAnIfbRoot) {
  REQUIRE_FEATURE("ifb");
  REQUIRE_FEATURE("tbf");
  auto ifb = IfbDevice::Create(netns_, "fl-ifb0");
  ASSERT_TRUE(ifb.ok()) << ifb.status();
  auto root = RootQdisc::Take(netns_, "fl-ifb0");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_TRUE(root->is_default());
  auto tbf = Qdisc::AddTbf(netns_, "fl-ifb0", TC_H_ROOT, Handle(2), TbfParams{625'000, 32 * 1024, 64 * 1024});
  ASSERT_TRUE(tbf.ok()) << tbf.status();
  ExpectContains(Tc("qdisc show dev fl-ifb0").output, "qdisc tbf 2: root");
}

// --- RootQdisc ----------------------------------------------------------------------------------------

TEST_F(QdiscTest, DefaultRootComesBack) {
  REQUIRE_FEATURE("htb");
  std::string before = TreeOfA();
  auto root = RootQdisc::Take(netns_, "fl-a");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_TRUE(root->is_default());
  EXPECT_EQ(root->handle(), 0u);
  EXPECT_EQ(root->Describe(), Cat("the default root (noqueue) of fl-a in netns /run/netns/", ns_));

  auto htb = Qdisc::AddHtbRoot(netns_, "fl-a", Handle(1), 0x10);
  ASSERT_TRUE(htb.ok()) << htb.status();
  auto cls = HtbClass::Add(netns_, "fl-a", Handle(1), Handle(1, 0x10), 625'000, 0);
  ASSERT_TRUE(cls.ok()) << cls.status();
  ASSERT_NE(TreeOfA(), before);
  // Restore with faultline's root still there: it goes, and destroying its owners afterwards finds
  // nothing to delete.
  ASSERT_TRUE(root->Restore().ok());
  EXPECT_EQ(TreeOfA(), before);
  cls->reset();
  htb->reset();
  EXPECT_EQ(TreeOfA(), before);
}

TEST_F(QdiscTest, CustomTbfRootComesBack) {
  REQUIRE_FEATURE("tbf");
  REQUIRE_FEATURE("htb");
  MustTc("qdisc add dev fl-a root handle 5: tbf rate 5mbit burst 32k limit 64k");
  std::string before = TreeOfA();
  auto root = RootQdisc::Take(netns_, "fl-a");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_FALSE(root->is_default());
  EXPECT_EQ(root->handle(), Handle(5));
  EXPECT_EQ(root->Describe(), Cat("root tbf 5: of fl-a in netns /run/netns/", ns_));

  auto htb = Qdisc::AddHtbRoot(netns_, "fl-a", Handle(1), 0x10);
  ASSERT_TRUE(htb.ok()) << htb.status();
  ExpectContains(RootOfA(), "qdisc htb 1: root");
  htb->reset();
  ASSERT_TRUE(root->Restore().ok());
  EXPECT_EQ(TreeOfA(), before);
}

TEST_F(QdiscTest, CustomHtbTreeComesBack) {
  REQUIRE_FEATURE("htb");
  REQUIRE_FEATURE("tbf");
  for (const char* command : {
           "qdisc add dev fl-a root handle 1: htb default 10 r2q 5",
           "class add dev fl-a parent 1: classid 1:1 htb rate 10mbit",
           "class add dev fl-a parent 1:1 classid 1:10 htb rate 5mbit ceil 10mbit",
           "class add dev fl-a parent 1:1 classid 1:20 htb rate 2mbit ceil 10mbit prio 1 quantum 3000",
           "qdisc add dev fl-a parent 1:20 handle 20: pfifo limit 50",
       }) {
    MustTc(command);
  }
  std::string before = TreeOfA();
  auto root = RootQdisc::Take(netns_, "fl-a");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(root->Describe(),
            Cat("root htb 1: (with 3 classes and 1 qdisc under it) of fl-a in netns /run/netns/", ns_));

  // faultline's own root with the same handle: Take() told the caller which one to avoid.
  ASSERT_EQ(root->handle(), Handle(1));
  auto tbf = Qdisc::AddTbf(netns_, "fl-a", TC_H_ROOT, Handle(2), TbfParams{625'000, 32 * 1024, 64 * 1024});
  ASSERT_TRUE(tbf.ok()) << tbf.status();
  EXPECT_EQ(Tc("class show dev fl-a").output.find("htb"), std::string::npos);
  tbf->reset();
  ASSERT_TRUE(root->Restore().ok());
  EXPECT_EQ(TreeOfA(), before);
  // Restoring twice gives the same tree again.
  ASSERT_TRUE(root->Restore().ok());
  EXPECT_EQ(TreeOfA(), before);
}

TEST_F(QdiscTest, CustomNetemRootComesBackUnlessItHasJitter) {
  REQUIRE_FEATURE("netem");
  MustTc(
      "qdisc add dev fl-a root handle 7: netem limit 300 delay 20ms loss 1% 10% reorder 5% gap 3 rate 1mbit");
  std::string before = TreeOfA();
  auto root = RootQdisc::Take(netns_, "fl-a");
  ASSERT_TRUE(root.ok()) << root.status();
  MustTc("qdisc del dev fl-a root");
  ASSERT_TRUE(root->Restore().ok());
  EXPECT_EQ(TreeOfA(), before);

  MustTc("qdisc replace dev fl-a root handle 7: netem delay 20ms 5ms");
  auto jittered = RootQdisc::Take(netns_, "fl-a");
  EXPECT_EQ(jittered.status().code(), absl::StatusCode::kFailedPrecondition);
  ExpectContains(std::string(jittered.status().message()),
                 "the root netem 7: has a jitter drawn from a delay distribution table");
}

TEST_F(QdiscTest, RootWithAFilterIsRefusedAndLeftAlone) {
  REQUIRE_FEATURE("htb");
  MustTc("qdisc add dev fl-a root handle 1: htb default 10");
  MustTc("class add dev fl-a parent 1: classid 1:10 htb rate 5mbit");
  CommandResult filter =
      Tc("filter add dev fl-a parent 1: protocol ip prio 7 u32 match ip dst 198.18.0.2/32 flowid 1:10");
  if (filter.exit_code != 0) GTEST_SKIP() << "tc cannot add a u32 filter here: " << filter.output;
  std::string before = TreeOfA();
  auto root = RootQdisc::Take(netns_, "fl-a");
  EXPECT_EQ(root.status().code(), absl::StatusCode::kFailedPrecondition) << root.status();
  EXPECT_EQ(
      root.status().message(),
      Cat("interface fl-a in netns /run/netns/", ns_,
          ": faultline could not put the root qdisc back exactly, so it changes nothing: the u32 filter "
          "(pref 7) on 1: would be lost, as faultline does not re-create filters"));
  EXPECT_EQ(TreeOfA(), before);
}

TEST_F(QdiscTest, RootOfAnUnknownKindIsRefused) {
  // pfifo_fast is built into every kernel (net/sched/sch_generic.c), but faultline does not restore it.
  MustTc("qdisc add dev fl-a root handle 9: pfifo_fast");
  std::string before = TreeOfA();
  auto root = RootQdisc::Take(netns_, "fl-a");
  EXPECT_EQ(root.status().code(), absl::StatusCode::kFailedPrecondition) << root.status();
  ExpectContains(std::string(root.status().message()),
                 "changes nothing: the root pfifo_fast 9: is of a kind faultline does not re-create");
  EXPECT_EQ(TreeOfA(), before);
}

// --- delay distribution tables ----------------------------------------------------------------------

struct Moments {
  double mean = 0;
  double sd = 0;
};

Moments MomentsOf(const std::vector<int16_t>& table) {
  Moments m;
  for (int16_t v : table) m.mean += v;
  m.mean /= static_cast<double>(table.size());
  for (int16_t v : table) m.sd += (v - m.mean) * (v - m.mean);
  m.sd = std::sqrt(m.sd / static_cast<double>(table.size()));
  return m;
}

TEST(NetemTablesTest, UniformNeedsNoTable) {
  EXPECT_TRUE(NetemDistributionTable(DelayDistribution::kUniform).empty());
}

TEST(NetemTablesTest, NormalIsAStandardNormalInUnitsOfTheScale) {
  std::vector<int16_t> table = NetemDistributionTable(DelayDistribution::kNormal);
  ASSERT_EQ(table.size(), kNetemTableSize);
  EXPECT_TRUE(std::is_sorted(table.begin(), table.end()));
  Moments m = MomentsOf(table);
  EXPECT_NEAR(m.mean, 0, 0.01 * kNetemDistScale);
  EXPECT_NEAR(m.sd, kNetemDistScale, 0.02 * kNetemDistScale);
  // Quantiles: the median is 0, and 95.4% of the mass lies within 2 sigma.
  EXPECT_NEAR(table[kNetemTableSize / 2], 0, 10);
  auto within =
      std::count_if(table.begin(), table.end(), [](int16_t v) { return std::abs(v) <= 2 * kNetemDistScale; });
  EXPECT_NEAR(static_cast<double>(within) / kNetemTableSize, 0.9545, 0.005);
  // Only the first quantile (below -4 sigma) is clamped to 16 bits.
  EXPECT_EQ(table.front(), -32768);
  EXPECT_GT(table[1], -4 * kNetemDistScale);
  EXPECT_LT(table.back(), 4 * kNetemDistScale);
}

// Pareto with shape 3, shifted to mean 0: bounded below at -2/3 of a jitter, a long tail above.
TEST(NetemTablesTest, ParetoHasAHeavyRightTail) {
  std::vector<int16_t> table = NetemDistributionTable(DelayDistribution::kPareto);
  ASSERT_EQ(table.size(), kNetemTableSize);
  EXPECT_TRUE(std::is_sorted(table.begin(), table.end()));
  EXPECT_EQ(table.front(), -5461);  // (1 - 1.5) * 4/3 * 8192
  int16_t median = table[kNetemTableSize / 2];
  EXPECT_LT(median, 0);
  EXPECT_EQ(table.back(), 32767);  // clamped
  EXPECT_GT(table.back() - median, 5 * (median - table.front()));
  Moments m = MomentsOf(table);
  EXPECT_NEAR(m.mean, 0, 0.05 * kNetemDistScale);  // slightly below 0: the tail is clamped
  EXPECT_GT(m.mean, median);
}

TEST(NetemTablesTest, ParetoNormalLiesBetween) {
  std::vector<int16_t> mixed = NetemDistributionTable(DelayDistribution::kParetoNormal);
  std::vector<int16_t> normal = NetemDistributionTable(DelayDistribution::kNormal);
  std::vector<int16_t> pareto = NetemDistributionTable(DelayDistribution::kPareto);
  ASSERT_EQ(mixed.size(), kNetemTableSize);
  for (size_t i = 1; i + 1 < kNetemTableSize; ++i) {
    EXPECT_LE(mixed[i], std::max(normal[i], pareto[i]) + 1) << i;
    EXPECT_GE(mixed[i], std::min(normal[i], pareto[i]) - 1) << i;
  }
  EXPECT_NEAR(MomentsOf(mixed).mean, 0, 0.05 * kNetemDistScale);
}

TEST(NetemTablesTest, NamesAreTcs) {
  for (auto distribution : {DelayDistribution::kUniform, DelayDistribution::kNormal,
                            DelayDistribution::kPareto, DelayDistribution::kParetoNormal}) {
    EXPECT_EQ(DelayDistributionFromName(DelayDistributionName(distribution)), distribution);
  }
  EXPECT_EQ(DelayDistributionName(DelayDistribution::kParetoNormal), "paretonormal");
  EXPECT_EQ(DelayDistributionFromName("experimental"), std::nullopt);
}

// iproute2's .dist files come from NIST Net's generators; ours should reproduce them.
TEST(NetemTablesTest, SameAsIproute2DistFiles) {
  std::string directory;
  for (const char* candidate : {"/usr/lib/tc", "/usr/lib64/tc", "/usr/lib/x86_64-linux-gnu/tc",
                                "/usr/share/tc", "/usr/local/lib/tc", "/lib/tc"}) {
    if (std::filesystem::exists(Cat(candidate, "/normal.dist"))) {
      directory = candidate;
      break;
    }
  }
  if (directory.empty()) GTEST_SKIP() << "no iproute2 .dist files on this machine to compare with";
  for (auto distribution :
       {DelayDistribution::kNormal, DelayDistribution::kPareto, DelayDistribution::kParetoNormal}) {
    std::string path = Cat(directory, "/", DelayDistributionName(distribution), ".dist");
    std::ifstream file(path);
    ASSERT_TRUE(file.is_open()) << path;
    std::vector<int> theirs;
    std::string line;
    while (std::getline(file, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream numbers(line);
      for (int value; numbers >> value;) theirs.push_back(value);
    }
    std::vector<int16_t> ours = NetemDistributionTable(distribution);
    ASSERT_EQ(ours.size(), theirs.size()) << path;
    int max_difference = 0;
    size_t differing = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      int difference = std::abs(ours[i] - theirs[i]);
      max_difference = std::max(max_difference, difference);
      differing += difference != 0;
    }
    RecordProperty(Cat(DelayDistributionName(distribution), "_max_difference"), max_difference);
    EXPECT_EQ(max_difference, 0) << path << ": " << differing << " entries differ";
  }
}

}  // namespace
}  // namespace faultline::kernel

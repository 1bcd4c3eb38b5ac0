#include "faultline/api/units.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "faultline/api/cat.h"

namespace faultline::api {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

google::protobuf::Duration MakeDuration(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Duration duration;
  duration.set_seconds(seconds);
  duration.set_nanos(nanos);
  return duration;
}

// Asserts that `status` refuses `text` as INVALID_ARGUMENT with a message that quotes it.
void ExpectRefused(const absl::Status& status, std::string_view text, std::string_view what) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(std::string(status.message()), StartsWith(Cat("\"", text, "\" is not ", what))) << text;
}

// Durations.

struct DurationCase {
  std::string_view text;
  int64_t seconds;
  int32_t nanos;
};

TEST(ParseDuration, AcceptsUnitsAndCombinations) {
  const DurationCase cases[] = {
      {"100ms", 0, 100'000'000}, {"1.5s", 1, 500'000'000},    {"2m30s", 150, 0},     {"1h", 3600, 0},
      {"1h30m", 5400, 0},        {"1.5h", 5400, 0},           {"250us", 0, 250'000}, {"10ns", 0, 10},
      {"0.000000001s", 0, 1},    {"1m0.5s", 60, 500'000'000}, {"0s", 0, 0},          {" 5s ", 5, 0},
      {"1H", 3600, 0},
  };
  for (const DurationCase& c : cases) {
    absl::StatusOr<google::protobuf::Duration> duration = ParseDuration(c.text);
    ASSERT_TRUE(duration.ok()) << c.text << ": " << duration.status();
    EXPECT_EQ(duration->seconds(), c.seconds) << c.text;
    EXPECT_EQ(duration->nanos(), c.nanos) << c.text;
  }
}

TEST(ParseDuration, RefusesTextWithoutAUnitOrWithANegativeOrUnknownOne) {
  for (std::string_view text :
       {"", "10", "1.5", "-1s", "1s-1s", "5x", "s", "1 s", "nan", "infs", "1e400s", "3000000000h"}) {
    absl::StatusOr<google::protobuf::Duration> duration = ParseDuration(text);
    ASSERT_FALSE(duration.ok()) << text << " parsed as " << FormatDuration(*duration);
    ExpectRefused(duration.status(), text, "a duration");
  }
}

TEST(ParseDuration, SaysWhyItRefuses) {
  EXPECT_EQ(std::string(ParseDuration("10").status().message()),
            "\"10\" is not a duration: a unit (h, m, s, ms, us, ns) is required");
  EXPECT_EQ(std::string(ParseDuration("5x").status().message()),
            "\"5x\" is not a duration: unknown unit \"x\"");
  EXPECT_EQ(std::string(ParseDuration("-1s").status().message()),
            "\"-1s\" is not a duration: expected a non-negative number followed by h, m, s, ms, us or ns");
  EXPECT_EQ(std::string(ParseDuration("").status().message()), "\"\" is not a duration: empty");
  EXPECT_EQ(std::string(ParseDuration("3000000000h").status().message()),
            "\"3000000000h\" is not a duration: too long");
}

TEST(FormatDuration, PrintsTheShortestExactForm) {
  EXPECT_EQ(FormatDuration(MakeDuration(0)), "0s");
  EXPECT_EQ(FormatDuration(MakeDuration(90)), "1m30s");
  EXPECT_EQ(FormatDuration(MakeDuration(0, 250'000'000)), "250ms");
  EXPECT_EQ(FormatDuration(MakeDuration(0, 250'000)), "250us");
  EXPECT_EQ(FormatDuration(MakeDuration(0, 7)), "7ns");
  EXPECT_EQ(FormatDuration(MakeDuration(1, 500'000'000)), "1.5s");
  EXPECT_EQ(FormatDuration(MakeDuration(3600)), "1h");
  EXPECT_EQ(FormatDuration(MakeDuration(3601)), "1h1s");
  EXPECT_EQ(FormatDuration(MakeDuration(3600, 1)), "1h0.000000001s");
  EXPECT_EQ(FormatDuration(MakeDuration(-90)), "-1m30s");
  EXPECT_EQ(FormatDuration(MakeDuration(0, -500'000'000)), "-500ms");
}

// Seconds times 10^9 overflows int64 past 292 years; the printed value must still be the real one.
TEST(FormatDuration, PrintsDurationsBeyondInt64Nanoseconds) {
  EXPECT_EQ(FormatDuration(MakeDuration(18'446'744'074)), "5124095h34m34s");
  EXPECT_EQ(FormatDuration(MakeDuration(std::numeric_limits<int64_t>::max())), "2562047788015215h30m7s");
  EXPECT_EQ(FormatDuration(MakeDuration(std::numeric_limits<int64_t>::min())), "-2562047788015215h30m8s");
}

TEST(FormatDuration, RoundTripsThroughParseDuration) {
  for (std::string_view text : {"0s", "10ns", "250us", "100ms", "1.5s", "59.999999999s", "2m30s", "1h",
                                "1h1s", "25h0.5s", "1h1m1.001s"}) {
    absl::StatusOr<google::protobuf::Duration> duration = ParseDuration(text);
    ASSERT_TRUE(duration.ok()) << text << ": " << duration.status();
    EXPECT_EQ(FormatDuration(*duration), text);
  }
}

// Percentages.

TEST(ParsePercent, AcceptsANumberFrom0To100WithOrWithoutPercentSign) {
  const std::pair<std::string_view, double> cases[] = {{"12.5", 12.5}, {"12.5%", 12.5}, {"0", 0},
                                                       {"100", 100},   {"100%", 100},   {" 7% ", 7}};
  for (const auto& [text, expected] : cases) {
    absl::StatusOr<double> percent = ParsePercent(text);
    ASSERT_TRUE(percent.ok()) << text << ": " << percent.status();
    EXPECT_DOUBLE_EQ(*percent, expected) << text;
  }
}

TEST(ParsePercent, RefusesNumbersOutsideTheRangeAndOtherText) {
  for (std::string_view text : {"101", "100.5", "-1", "", "%", "abc", "12.5%%", "12 %", "nan", "inf"}) {
    absl::StatusOr<double> percent = ParsePercent(text);
    ASSERT_FALSE(percent.ok()) << text << " parsed as " << *percent;
    ExpectRefused(percent.status(), text, "a percentage");
  }
  EXPECT_EQ(std::string(ParsePercent("101").status().message()),
            "\"101\" is not a percentage: must be between 0 and 100");
}

// Rates, in tc's units: bit is bits per second, bps is bytes per second, prefixes are decimal.

TEST(ParseRate, UsesTcUnits) {
  const std::pair<std::string_view, uint64_t> cases[] = {
      {"10mbit", 10'000'000},
      {"1mbps", 8'000'000},
      {"1gbit", 1'000'000'000},
      {"500kbit", 500'000},
      {"1kbps", 8'000},
      {"100bit", 100},
      {"100bps", 800},
      {"1.5mbit", 1'500'000},
      {"10Mbit", 10'000'000},
      {"2tbit", 2'000'000'000'000},
      // Above int64_t, below uint64_t.
      {"10000000tbit", 10'000'000'000'000'000'000u},
  };
  for (const auto& [text, expected] : cases) {
    absl::StatusOr<uint64_t> rate = ParseRate(text);
    ASSERT_TRUE(rate.ok()) << text << ": " << rate.status();
    EXPECT_EQ(*rate, expected) << text;
  }
}

TEST(ParseRate, RefusesTextWithoutAUnitOrTooLarge) {
  for (std::string_view text : {"10", "10mb", "-1mbit", "mbit", "", "10 mbit", "20000000tbit"}) {
    absl::StatusOr<uint64_t> rate = ParseRate(text);
    ASSERT_FALSE(rate.ok()) << text << " parsed as " << *rate;
    ExpectRefused(rate.status(), text, "a rate");
  }
  EXPECT_EQ(std::string(ParseRate("20000000tbit").status().message()),
            "\"20000000tbit\" is not a rate: too large");
}

// Sizes, in bytes, with binary prefixes as in tc.

TEST(ParseSize, UsesBinaryPrefixes) {
  const std::pair<std::string_view, uint64_t> cases[] = {
      {"64k", 65'536},
      {"512MiB", 536'870'912},
      {"1GiB", 1'073'741'824},
      {"1g", 1'073'741'824},
      {"64KB", 65'536},
      {"1.5k", 1'536},
      {"100", 100},
      {"100b", 100},
      {"0", 0},
      // Above int64_t, below uint64_t.
      {"16000000000g", 17'179'869'184'000'000'000u},
  };
  for (const auto& [text, expected] : cases) {
    absl::StatusOr<uint64_t> size = ParseSize(text);
    ASSERT_TRUE(size.ok()) << text << ": " << size.status();
    EXPECT_EQ(*size, expected) << text;
  }
}

TEST(ParseSize, RefusesUnknownUnitsNegativeAndTooLarge) {
  for (std::string_view text : {"64x", "-1k", "k", "", "64 k", "18000000000g"}) {
    absl::StatusOr<uint64_t> size = ParseSize(text);
    ASSERT_FALSE(size.ok()) << text << " parsed as " << *size;
    ExpectRefused(size.status(), text, "a size");
  }
  EXPECT_EQ(std::string(ParseSize("64x").status().message()), "\"64x\" is not a size: unknown unit \"x\"");
}

// Ports.

TEST(ParsePortRange, AcceptsAPortOrAnInclusiveRange) {
  const std::tuple<std::string_view, uint32_t, uint32_t> cases[] = {
      {"80", 80, 80},          {"8000-8100", 8000, 8100}, {"1", 1, 1},
      {"65535", 65535, 65535}, {"1-65535", 1, 65535},     {"443-443", 443, 443}};
  for (const auto& [text, first, last] : cases) {
    absl::StatusOr<faultline::v1::PortRange> range = ParsePortRange(text);
    ASSERT_TRUE(range.ok()) << text << ": " << range.status();
    EXPECT_EQ(range->first(), first) << text;
    EXPECT_EQ(range->last(), last) << text;
  }
}

TEST(ParsePortRange, RefusesPortsOutside1To65535AndReversedRanges) {
  for (std::string_view text :
       {"0", "70000", "1-70000", "0-80", "8100-8000", "80-", "-80", "http", "80-90-100", "", "8o"}) {
    absl::StatusOr<faultline::v1::PortRange> range = ParsePortRange(text);
    ASSERT_FALSE(range.ok()) << text << " parsed as " << range->first() << "-" << range->last();
    ExpectRefused(range.status(), text, "a port or port range");
  }
  EXPECT_EQ(std::string(ParsePortRange("0").status().message()),
            "\"0\" is not a port or port range: ports start at 1");
  EXPECT_EQ(std::string(ParsePortRange("1-70000").status().message()),
            "\"1-70000\" is not a port or port range: 70000 is over 65535");
  EXPECT_EQ(std::string(ParsePortRange("8100-8000").status().message()),
            "\"8100-8000\" is not a port or port range: it ends before it starts");
  EXPECT_EQ(std::string(ParsePortRange("http").status().message()),
            "\"http\" is not a port or port range: expected N or N-M");
}

// CIDRs.

TEST(ParseCidr, ClearsHostBitsAndDefaultsToAHostPrefix) {
  const std::tuple<std::string_view, int, std::string_view> cases[] = {
      {"10.1.2.3/8", 4, "10.0.0.0/8"},
      {"198.18.0.0/15", 4, "198.18.0.0/15"},
      {"198.19.255.255/15", 4, "198.18.0.0/15"},
      {"10.255.255.255/31", 4, "10.255.255.254/31"},
      {"192.168.1.1", 4, "192.168.1.1/32"},
      {"10.1.2.3/0", 4, "0.0.0.0/0"},
      {" 10.0.0.1/32 ", 4, "10.0.0.1/32"},
      {"2001:db8::1", 6, "2001:db8::1/128"},
      {"2001:db8:abcd::1/32", 6, "2001:db8::/32"},
      {"2001:db8::ffff/127", 6, "2001:db8::fffe/127"},
      {"fe80::1/10", 6, "fe80::/10"},
      {"::/0", 6, "::/0"},
      {"::ffff:10.1.2.3/104", 6, "::ffff:10.0.0.0/104"},
  };
  for (const auto& [text, family, formatted] : cases) {
    absl::StatusOr<Cidr> cidr = ParseCidr(text);
    ASSERT_TRUE(cidr.ok()) << text << ": " << cidr.status();
    EXPECT_EQ(cidr->family, family) << text;
    EXPECT_EQ(FormatCidr(*cidr), formatted) << text;
  }
}

TEST(ParseCidr, KeepsTheAddressInNetworkByteOrder) {
  absl::StatusOr<Cidr> cidr = ParseCidr("10.1.2.3/24");
  ASSERT_TRUE(cidr.ok()) << cidr.status();
  EXPECT_EQ(cidr->prefix_length, 24);
  EXPECT_EQ(cidr->address[0], 10);
  EXPECT_EQ(cidr->address[1], 1);
  EXPECT_EQ(cidr->address[2], 2);
  EXPECT_EQ(cidr->address[3], 0);
  for (size_t i = 4; i < cidr->address.size(); i++) EXPECT_EQ(cidr->address[i], 0) << i;
}

TEST(ParseCidr, RefusesBadAddressesAndPrefixLengths) {
  for (std::string_view text :
       {"10.0.0.0/33", "2001:db8::/129", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/abc", "10.0.0.0/8/8",
        "10.0.0.0/ 8", "example.com", "10.0.0", "10.0.0.256", "", "fe80::1%eth0", "/8"}) {
    absl::StatusOr<Cidr> cidr = ParseCidr(text);
    ASSERT_FALSE(cidr.ok()) << text << " parsed as " << FormatCidr(*cidr);
    ExpectRefused(cidr.status(), text, "a CIDR");
  }
}

TEST(ParseCidr, SaysWhyItRefuses) {
  EXPECT_EQ(std::string(ParseCidr("10.0.0.0/33").status().message()),
            "\"10.0.0.0/33\" is not a CIDR: prefix length 33 is over 32");
  EXPECT_EQ(std::string(ParseCidr("2001:db8::/129").status().message()),
            "\"2001:db8::/129\" is not a CIDR: prefix length 129 is over 128");
  EXPECT_EQ(std::string(ParseCidr("10.0.0.0/-1").status().message()),
            "\"10.0.0.0/-1\" is not a CIDR: the prefix length is not a number");
  EXPECT_EQ(std::string(ParseCidr("example.com/24").status().message()),
            "\"example.com/24\" is not a CIDR: \"example.com\" is not an IPv4 or IPv6 address");
}

// Network endpoints.

TEST(ParseHostPort, TakesNamesAddressesAndBracketedIpv6) {
  struct Case {
    std::string_view text;
    std::string_view host;
    uint16_t port;
  };
  for (const Case& c : std::initializer_list<Case>{{"agent1.example:7443", "agent1.example", 7443},
                                                   {"127.0.0.1:0", "127.0.0.1", 0},
                                                   {"[::1]:65535", "::1", 65535},
                                                   {"[2001:db8::5]:80", "2001:db8::5", 80}}) {
    absl::StatusOr<HostPort> endpoint = ParseHostPort(c.text);
    ASSERT_TRUE(endpoint.ok()) << c.text << ": " << endpoint.status();
    EXPECT_EQ(endpoint->host, c.host);
    EXPECT_EQ(endpoint->port, c.port);
  }
}

TEST(ParseHostPort, RefusesWhatIsNotHostColonPort) {
  for (std::string_view text :
       {"agent1.example", ":7443", "host:", "host:65536", "host:-1", "host:80x", "::1:7443", "[::1]",
        "[not-v6]:80", "[]:80", "unix:/run/faultline/faultlined.sock"}) {
    absl::StatusOr<HostPort> endpoint = ParseHostPort(text);
    EXPECT_FALSE(endpoint.ok()) << text << " parsed as " << endpoint->host << " port " << endpoint->port;
    if (!endpoint.ok()) ExpectRefused(endpoint.status(), text, "HOST:PORT");
  }
  EXPECT_EQ(std::string(ParseHostPort("::1:7443").status().message()),
            "\"::1:7443\" is not HOST:PORT: write an IPv6 address in brackets: [::1]:7443");
}

TEST(IsLoopbackHost, OnlyThisMachinesAddresses) {
  for (std::string_view host : {"localhost", "127.0.0.1", "127.1.2.3", "::1"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (std::string_view host : {"0.0.0.0", "::", "198.18.0.1", "128.0.0.1", "::2", "::ffff:127.0.0.1",
                                "localhost.example", "127.0.0.1/8", "agent1.example", ""}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

}  // namespace
}  // namespace faultline::api

// Parsing and printing of the units users type: durations, percentages, rates, sizes, ports, CIDRs,
// network endpoints.
// Errors name the text and the reason; callers prefix the field path.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "faultline/v1/experiment.pb.h"
#include "google/protobuf/duration.pb.h"

namespace faultline::api {

// "100ms", "1.5s", "2m30s", "1h", "250us", "10ns". A bare number is refused: the unit is required.
absl::StatusOr<google::protobuf::Duration> ParseDuration(std::string_view text);
// The shortest exact form: "1m30s", "250ms", "0s".
std::string FormatDuration(const google::protobuf::Duration& duration);

// "12.5" or "12.5%": a number from 0 to 100.
absl::StatusOr<double> ParsePercent(std::string_view text);

// tc's rate units, in bits per second: "10mbit", "1gbit", "500kbit", "100bit"; "bps" suffixes are
// bytes per second ("1mbps" = 8 Mbit/s). Decimal prefixes (k = 1000) as in tc.
absl::StatusOr<uint64_t> ParseRate(std::string_view text);

// "64k", "512MiB", "1GiB", "100" (bytes). k/m/g and KiB/MiB/GiB are binary, as in tc.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// "80" or "8000-8100".
absl::StatusOr<faultline::v1::PortRange> ParsePortRange(std::string_view text);

struct Cidr {
  int family = 0;                     // 4 or 6
  std::array<uint8_t, 16> address{};  // network byte order; host bits cleared
  int prefix_length = 0;
};

// "198.18.0.0/15", "2001:db8::/32", or a bare address (a /32 or /128).
absl::StatusOr<Cidr> ParseCidr(std::string_view text);
std::string FormatCidr(const Cidr& cidr);

struct HostPort {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without its brackets
  uint16_t port = 0;
};

// "agent1.example:7443", "127.0.0.1:7443", "[::1]:7443". Port 0 is accepted (a listener's "any free
// port"); callers that connect refuse it.
absl::StatusOr<HostPort> ParseHostPort(std::string_view text);
// Whether `host` can only mean this machine: "localhost", 127.0.0.0/8 or ::1.
bool IsLoopbackHost(std::string_view host);

}  // namespace faultline::api

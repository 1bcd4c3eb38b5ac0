#include "faultline/api/units.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "faultline/api/cat.h"

namespace faultline::api {
namespace {

absl::Status Invalid(std::string_view text, std::string_view what, std::string_view why = {}) {
  return absl::InvalidArgumentError(Cat("\"", text, "\" is not ", what, why.empty() ? "" : ": ", why));
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

// Splits "12.5mbit" into the number 12.5 and the suffix "mbit". Returns false without a number.
bool SplitNumber(std::string_view text, double& number, std::string_view& suffix) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, number);
  if (ec != std::errc() || !std::isfinite(number)) return false;
  suffix = std::string_view(ptr, static_cast<size_t>(end - ptr));
  return true;
}

// Multiplies by a suffix taken from `units`, case-insensitively; nullopt when the suffix is unknown.
std::optional<double> Scale(double number, std::string_view suffix,
                            const std::vector<std::pair<std::string_view, double>>& units) {
  std::string lower(suffix);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [name, factor] : units) {
    if (lower == name) return number * factor;
  }
  return std::nullopt;
}

uint64_t Magnitude(int64_t value) {
  return value < 0 ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
}

// Rounds a non-negative count to uint64_t; nullopt when it does not fit. (std::llround would overflow
// int64_t above 9.2e18, which uint64_t still holds.)
std::optional<uint64_t> RoundToUint64(double value) {
  double rounded = std::round(value);
  if (!(rounded >= 0) || rounded >= 18446744073709551616.0) return std::nullopt;
  return static_cast<uint64_t>(rounded);
}

}  // namespace

absl::StatusOr<google::protobuf::Duration> ParseDuration(std::string_view text) {
  static const std::vector<std::pair<std::string_view, double>> kUnits = {
      {"h", 3600e9}, {"m", 60e9}, {"s", 1e9}, {"ms", 1e6}, {"us", 1e3}, {"ns", 1}};
  std::string_view rest = Trim(text);
  if (rest.empty()) return Invalid(text, "a duration", "empty");
  long double total_ns = 0;
  while (!rest.empty()) {
    double number = 0;
    std::string_view suffix;
    if (!SplitNumber(rest, number, suffix) || number < 0) {
      return Invalid(text, "a duration", "expected a non-negative number followed by h, m, s, ms, us or ns");
    }
    size_t unit_len = 0;
    while (unit_len < suffix.size() && std::isalpha(static_cast<unsigned char>(suffix[unit_len]))) unit_len++;
    if (unit_len == 0) return Invalid(text, "a duration", "a unit (h, m, s, ms, us, ns) is required");
    std::optional<double> ns = Scale(number, suffix.substr(0, unit_len), kUnits);
    if (!ns) return Invalid(text, "a duration", Cat("unknown unit \"", suffix.substr(0, unit_len), "\""));
    total_ns += *ns;
    rest = suffix.substr(unit_len);
  }
  if (total_ns > static_cast<long double>(std::numeric_limits<int64_t>::max())) {
    return Invalid(text, "a duration", "too long");
  }
  auto whole = static_cast<int64_t>(std::llround(total_ns));
  google::protobuf::Duration duration;
  duration.set_seconds(whole / 1'000'000'000);
  duration.set_nanos(static_cast<int32_t>(whole % 1'000'000'000));
  return duration;
}

std::string FormatDuration(const google::protobuf::Duration& duration) {
  // Seconds and nanos are formatted apart: their sum in nanoseconds overflows int64 past 292 years.
  uint64_t seconds = Magnitude(duration.seconds());
  uint64_t frac_ns = Magnitude(duration.nanos());
  seconds += frac_ns / 1'000'000'000;
  frac_ns %= 1'000'000'000;
  if (seconds == 0 && frac_ns == 0) return "0s";
  std::string out = duration.seconds() < 0 || duration.nanos() < 0 ? "-" : "";
  if (seconds == 0) {
    if (frac_ns % 1'000'000 == 0) return Cat(out, frac_ns / 1'000'000, "ms");
    if (frac_ns % 1'000 == 0) return Cat(out, frac_ns / 1'000, "us");
    return Cat(out, frac_ns, "ns");
  }
  if (seconds >= 3600) out += Cat(seconds / 3600, "h");
  if (seconds % 3600 >= 60) out += Cat((seconds % 3600) / 60, "m");
  if (seconds % 60 != 0 || frac_ns != 0) {
    out += Cat(seconds % 60);
    if (frac_ns != 0) {
      std::string frac = Cat(1'000'000'000 + frac_ns).substr(1);
      frac.erase(frac.find_last_not_of('0') + 1);
      out += Cat(".", frac);
    }
    out += Cat("s");
  }
  return out;
}

absl::StatusOr<double> ParsePercent(std::string_view text) {
  std::string_view trimmed = Trim(text);
  double number = 0;
  std::string_view suffix;
  if (!SplitNumber(trimmed, number, suffix) || !(suffix.empty() || suffix == "%")) {
    return Invalid(text, "a percentage", "expected a number such as 12.5 or 12.5%");
  }
  if (number < 0 || number > 100) return Invalid(text, "a percentage", "must be between 0 and 100");
  return number;
}

absl::StatusOr<uint64_t> ParseRate(std::string_view text) {
  static const std::vector<std::pair<std::string_view, double>> kUnits = {
      {"bit", 1}, {"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}, {"tbit", 1e12},
      {"bps", 8}, {"kbps", 8e3}, {"mbps", 8e6}, {"gbps", 8e9}, {"tbps", 8e12}};
  double number = 0;
  std::string_view suffix;
  std::string_view trimmed = Trim(text);
  if (!SplitNumber(trimmed, number, suffix) || number < 0) {
    return Invalid(text, "a rate", "expected a number followed by bit, kbit, mbit, gbit or kbps, mbps, gbps");
  }
  std::optional<double> bits = Scale(number, suffix, kUnits);
  if (!bits)
    return Invalid(text, "a rate", "a unit (bit, kbit, mbit, gbit, bps, kbps, mbps, gbps) is required");
  std::optional<uint64_t> rate = RoundToUint64(*bits);
  if (!rate) return Invalid(text, "a rate", "too large");
  return *rate;
}

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  static const std::vector<std::pair<std::string_view, double>> kUnits = {{"", 1},
                                                                          {"b", 1},
                                                                          {"k", 1024.0},
                                                                          {"kb", 1024.0},
                                                                          {"kib", 1024.0},
                                                                          {"m", 1048576.0},
                                                                          {"mb", 1048576.0},
                                                                          {"mib", 1048576.0},
                                                                          {"g", 1073741824.0},
                                                                          {"gb", 1073741824.0},
                                                                          {"gib", 1073741824.0}};
  double number = 0;
  std::string_view suffix;
  std::string_view trimmed = Trim(text);
  if (!SplitNumber(trimmed, number, suffix) || number < 0) {
    return Invalid(text, "a size", "expected a number optionally followed by k, m, g, KiB, MiB or GiB");
  }
  std::optional<double> bytes = Scale(number, suffix, kUnits);
  if (!bytes) return Invalid(text, "a size", Cat("unknown unit \"", suffix, "\""));
  std::optional<uint64_t> size = RoundToUint64(*bytes);
  if (!size) return Invalid(text, "a size", "too large");
  return *size;
}

absl::StatusOr<faultline::v1::PortRange> ParsePortRange(std::string_view text) {
  std::string_view trimmed = Trim(text);
  std::vector<std::string_view> parts;
  size_t dash = trimmed.find('-');
  parts.push_back(trimmed.substr(0, dash));
  if (dash != std::string_view::npos) parts.push_back(trimmed.substr(dash + 1));
  uint32_t values[2] = {0, 0};
  for (size_t i = 0; i < parts.size(); i++) {
    auto [ptr, ec] = std::from_chars(parts[i].data(), parts[i].data() + parts[i].size(), values[i]);
    if (ec != std::errc() || ptr != parts[i].data() + parts[i].size()) {
      return Invalid(text, "a port or port range", "expected N or N-M");
    }
  }
  faultline::v1::PortRange range;
  range.set_first(values[0]);
  range.set_last(parts.size() == 2 ? values[1] : values[0]);
  if (range.first() == 0 || range.last() == 0) {
    return Invalid(text, "a port or port range", "ports start at 1");
  }
  if (range.first() > 65535 || range.last() > 65535) {
    return Invalid(text, "a port or port range",
                   Cat(std::max(range.first(), range.last()), " is over 65535"));
  }
  if (range.last() < range.first()) return Invalid(text, "a port or port range", "it ends before it starts");
  return range;
}

absl::StatusOr<Cidr> ParseCidr(std::string_view text) {
  std::string_view trimmed = Trim(text);
  size_t slash = trimmed.find('/');
  std::string address(trimmed.substr(0, slash));
  Cidr cidr;
  if (inet_pton(AF_INET, address.c_str(), cidr.address.data()) == 1) {
    cidr.family = 4;
  } else if (inet_pton(AF_INET6, address.c_str(), cidr.address.data()) == 1) {
    cidr.family = 6;
  } else {
    return Invalid(text, "a CIDR", Cat("\"", address, "\" is not an IPv4 or IPv6 address"));
  }
  int max_length = cidr.family == 4 ? 32 : 128;
  cidr.prefix_length = max_length;
  if (slash != std::string_view::npos) {
    std::string_view length = trimmed.substr(slash + 1);
    auto [ptr, ec] = std::from_chars(length.data(), length.data() + length.size(), cidr.prefix_length);
    // from_chars takes a leading '-', which a prefix length never has.
    if (length.empty() || !std::isdigit(static_cast<unsigned char>(length.front())) || ec != std::errc() ||
        ptr != length.data() + length.size()) {
      return Invalid(text, "a CIDR", "the prefix length is not a number");
    }
    if (cidr.prefix_length > max_length) {
      return Invalid(text, "a CIDR", Cat("prefix length ", cidr.prefix_length, " is over ", max_length));
    }
  }
  for (int bit = cidr.prefix_length; bit < max_length; bit++) {
    cidr.address[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  return cidr;
}

std::string FormatCidr(const Cidr& cidr) {
  char buffer[INET6_ADDRSTRLEN] = {};
  inet_ntop(cidr.family == 4 ? AF_INET : AF_INET6, cidr.address.data(), buffer, sizeof(buffer));
  return Cat(buffer, "/", cidr.prefix_length);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  HostPort endpoint;
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return Invalid(text, "HOST:PORT", "the port is missing");
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    in6_addr scratch{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), &scratch) != 1) {
      return Invalid(text, "HOST:PORT", Cat("\"", host, "\" is not an IPv6 address"));
    }
  } else if (host.find(':') != std::string_view::npos) {
    return Invalid(text, "HOST:PORT", "write an IPv6 address in brackets: [::1]:7443");
  }
  if (host.empty()) return Invalid(text, "HOST:PORT", "the host is missing");
  unsigned number = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || !std::isdigit(static_cast<unsigned char>(port.front())) || ec != std::errc() ||
      ptr != port.data() + port.size() || number > 65535) {
    return Invalid(text, "HOST:PORT", Cat("\"", port, "\" is not a port (0-65535)"));
  }
  endpoint.host = std::string(host);
  endpoint.port = static_cast<uint16_t>(number);
  return endpoint;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost") return true;
  if (host.find('/') != std::string_view::npos) return false;  // a CIDR is not a host
  auto address = ParseCidr(host);
  if (!address.ok() || address->prefix_length != (address->family == 4 ? 32 : 128)) return false;
  if (address->family == 4) return address->address[0] == 127;
  static constexpr std::array<uint8_t, 16> kLoopback6 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return address->address == kLoopback6;
}

}  // namespace faultline::api

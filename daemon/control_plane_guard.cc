#include "control_plane_guard.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "faultline/api/cat.h"
#include "log.h"

namespace faultline {
namespace {

using api::Cat;
using kernel::GuardedEndpoint;

// A literal address ("198.18.0.1", "2001:db8::1", "fe80::1%eth0"), or nothing. An IPv4-mapped IPv6
// address is the IPv4 address its packets carry.
std::optional<GuardedEndpoint> ParseAddress(std::string host, uint16_t port) {
  // An IPv6 zone ("%eth0"): the packets carry the address alone.
  if (size_t zone = host.find('%'); zone != std::string::npos) host.resize(zone);
  GuardedEndpoint endpoint;
  endpoint.port = port;
  if (inet_pton(AF_INET, host.c_str(), endpoint.address.data()) == 1) return endpoint;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) != 1) return std::nullopt;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(endpoint.address.data(), &v6.s6_addr[12], 4);
    return endpoint;
  }
  endpoint.family = 6;
  std::memcpy(endpoint.address.data(), &v6, 16);
  return endpoint;
}

bool AllZero(const GuardedEndpoint& endpoint) {
  return std::all_of(endpoint.address.begin(), endpoint.address.end(), [](uint8_t b) { return b == 0; });
}

// gRPC escapes the brackets of an IPv6 peer in some versions: "ipv6:%5B2001:db8::2%5D:40312".
std::string Unescape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] == '%' && i + 2 < text.size()) {
      std::string hex(text.substr(i + 1, 2));
      char* end = nullptr;
      long value = std::strtol(hex.c_str(), &end, 16);
      if (end == hex.c_str() + 2 && (value == '[' || value == ']' || value == '%')) {
        out += static_cast<char>(value);
        i += 2;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

}  // namespace

absl::StatusOr<GuardedEndpoint> EndpointOfPeer(std::string_view peer) {
  if (!peer.starts_with("ipv4:") && !peer.starts_with("ipv6:")) {
    return absl::NotFoundError(Cat("peer ", peer, " is not a TCP peer"));
  }
  std::string address = Unescape(peer.substr(5));
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError(Cat("peer ", peer, ": no port"));
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  char* end = nullptr;
  const std::string port_text = address.substr(colon + 1);
  unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end != '\0' || port == 0 || port > 65535) {
    return absl::InvalidArgumentError(Cat("peer ", peer, ": \"", port_text, "\" is not a port"));
  }
  std::optional<GuardedEndpoint> endpoint = ParseAddress(host, static_cast<uint16_t>(port));
  if (!endpoint) return absl::InvalidArgumentError(Cat("peer ", peer, ": \"", host, "\" is not an address"));
  return *endpoint;
}

absl::Status ControlPlaneGuard::Add(const GuardedEndpoint& endpoint) {
  return map_ == nullptr ? absl::OkStatus() : map_->Add(endpoint);
}

absl::Status ControlPlaneGuard::GuardListener(std::string_view flag, const api::HostPort& listener) {
  std::vector<GuardedEndpoint> endpoints;
  std::optional<GuardedEndpoint> literal = ParseAddress(listener.host, listener.port);
  if (listener.host.empty() || (literal && AllZero(*literal))) {
    // gRPC binds a wildcard address dual-stack, whichever family it was written in.
    for (int family : {4, 6}) {
      endpoints.push_back({.family = family, .address = {}, .every_address = true, .port = listener.port});
    }
  } else if (literal) {
    endpoints.push_back(*literal);
  } else {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (int err = getaddrinfo(listener.host.c_str(), nullptr, &hints, &found); err != 0) {
      return absl::InvalidArgumentError(Cat(flag, " ", listener.host, ": ", gai_strerror(err)));
    }
    for (addrinfo* each = found; each != nullptr; each = each->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* address =
          each->ai_family == AF_INET
              ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(each->ai_addr)->sin_addr)
              : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(each->ai_addr)->sin6_addr);
      inet_ntop(each->ai_family, address, text, sizeof(text));
      if (auto endpoint = ParseAddress(text, listener.port)) endpoints.push_back(*endpoint);
    }
    freeaddrinfo(found);
  }
  std::lock_guard lock(mutex_);
  for (const GuardedEndpoint& endpoint : endpoints) {
    if (auto s = Add(endpoint); !s.ok()) return s;
    listeners_.emplace_back(std::string(flag), endpoint);
  }
  return absl::OkStatus();
}

void ControlPlaneGuard::GuardController(std::string_view peer) {
  absl::StatusOr<GuardedEndpoint> endpoint = EndpointOfPeer(peer);
  if (!endpoint.ok()) {
    if (!absl::IsNotFound(endpoint.status())) {
      log::Warning("guard.peer_unknown")
          .With("peer", std::string(peer))
          .With("error", std::string(endpoint.status().message()));
    }
    return;
  }
  std::lock_guard lock(mutex_);
  auto known = std::find(controllers_.begin(), controllers_.end(), *endpoint);
  if (known != controllers_.end()) {
    controllers_.splice(controllers_.begin(), controllers_, known);
    return;
  }
  if (absl::Status s = Add(*endpoint); !s.ok()) {
    log::Warning("guard.failed").With("peer", std::string(peer)).With("error", std::string(s.message()));
    return;
  }
  controllers_.push_front(*endpoint);
  log::Debug("guard.controller").With("endpoint", endpoint->Describe());
  if (controllers_.size() > max_controllers_) {
    const GuardedEndpoint& oldest = controllers_.back();
    // A listener may guard the same endpoint; it stays guarded then.
    bool listener = std::any_of(listeners_.begin(), listeners_.end(),
                                [&](const auto& entry) { return entry.second == oldest; });
    if (map_ != nullptr && !listener) map_->Remove(oldest);
    controllers_.pop_back();
  }
}

std::vector<std::string> ControlPlaneGuard::Describe() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> lines;
  for (const auto& [flag, endpoint] : listeners_) lines.push_back(Cat(flag, " ", endpoint.Describe()));
  for (const GuardedEndpoint& endpoint : controllers_)
    lines.push_back(Cat("controller ", endpoint.Describe()));
  return lines;
}

}  // namespace faultline

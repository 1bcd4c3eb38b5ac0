// The control-plane guard: the agent's own traffic, which no fault may touch, so that an experiment
// can never cut the channel that would revert it. The agent's listening endpoints (--listen,
// --insecure-listen, --metrics-listen) and the peer of every admitted caller over TCP (a controller)
// go into the kernel's guard map (kernel/guard_map.h), which every BPF program and classifier
// consults before its target. Capabilities lists them.
#pragma once

#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "faultline/api/units.h"
#include "kernel/guard_map.h"

namespace faultline {

class ControlPlaneGuard {
 public:
  static constexpr size_t kMaxControllers = 256;

  // `map`: nullptr when the kernel has no BPF, so that no fault could cut anything; the guard then
  // only lists. Not owned.
  explicit ControlPlaneGuard(kernel::GuardMap* map, size_t max_controllers = kMaxControllers)
      : map_(map), max_controllers_(max_controllers) {}
  ControlPlaneGuard(const ControlPlaneGuard&) = delete;
  ControlPlaneGuard& operator=(const ControlPlaneGuard&) = delete;

  // A listening endpoint as bound (for port 0, the port the kernel picked); `flag` names it. A
  // wildcard host (0.0.0.0, [::]) guards the port on every address of both families, as gRPC listens
  // dual-stack there; a name guards each address it resolves to.
  absl::Status GuardListener(std::string_view flag, const api::HostPort& endpoint);

  // The peer of an admitted call as gRPC names it: "ipv4:198.18.0.2:40312", "ipv6:[2001:db8::2]:40312"
  // (an IPv4-mapped IPv6 address is guarded as the IPv4 address its packets carry). Other peers
  // (unix:) send no packets to guard. Past `max_controllers`, the one heard from longest ago is
  // forgotten: its connection is most likely closed, and its port free for any other traffic.
  void GuardController(std::string_view peer);

  // One line per guarded endpoint: "--listen [::]:7443", "controller 198.18.0.2:40312".
  std::vector<std::string> Describe() const;

 private:
  absl::Status Add(const kernel::GuardedEndpoint& endpoint);

  kernel::GuardMap* const map_;
  const size_t max_controllers_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, kernel::GuardedEndpoint>> listeners_;  // flag, endpoint
  std::list<kernel::GuardedEndpoint> controllers_;                          // most recently heard first
};

// The endpoint of a gRPC peer string (see GuardController); NOT_FOUND for peers that are not TCP,
// INVALID_ARGUMENT for text that is not a peer.
absl::StatusOr<kernel::GuardedEndpoint> EndpointOfPeer(std::string_view peer);

}  // namespace faultline

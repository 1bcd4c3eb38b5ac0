// The control-plane guard's map (bpf/target.bpf.h: `guarded`): the TCP endpoints whose packets no
// program matches, so that no experiment cuts the connection that would revert it. One map for the
// whole agent: every program loaded after Install() shares it (PrepareTarget reuses its fd), so a
// controller guarded now is guarded by the programs of experiments already active, too.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace faultline::kernel {

// An endpoint of TCP traffic: an address and a port, or a port on every address of a family.
struct GuardedEndpoint {
  int family = 4;                     // 4 or 6
  std::array<uint8_t, 16> address{};  // network byte order; IPv4 in the first 4 bytes; 0 for every address
  bool every_address = false;
  uint16_t port = 0;

  auto operator<=>(const GuardedEndpoint&) const = default;
  // "198.18.0.1:7443", "[2001:db8::1]:7443"; every address: "0.0.0.0:7443", "[::]:7443".
  std::string Describe() const;
};

class GuardMap {
 public:
  // Creates the (empty) map. Needs BPF: FAILED_PRECONDITION without it.
  static absl::StatusOr<std::unique_ptr<GuardMap>> Create();
  ~GuardMap();
  GuardMap(const GuardMap&) = delete;
  GuardMap& operator=(const GuardMap&) = delete;

  // Both take effect at once in every program that shares the map.
  absl::Status Add(const GuardedEndpoint& endpoint);
  void Remove(const GuardedEndpoint& endpoint);

  int fd() const { return fd_; }

  // The map the programs loaded from now on share; nullptr uninstalls (each program then gets an
  // empty map of its own). Not owned.
  static void Install(GuardMap* map);
  static GuardMap* Installed();

 private:
  explicit GuardMap(int fd) : fd_(fd) {}
  const int fd_;
};

}  // namespace faultline::kernel

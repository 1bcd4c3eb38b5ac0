// What the control-plane guard takes from gRPC's peer strings and the agent's listeners, and what it
// lists, without a kernel map (the BPF side is tests/bpf/guard_test.cc).
#include "control_plane_guard.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace faultline {
namespace {

std::string Endpoint(std::string_view peer) {
  auto endpoint = EndpointOfPeer(peer);
  return endpoint.ok() ? endpoint->Describe() : std::string(endpoint.status().message());
}

TEST(ControlPlaneGuardTest, ReadsGrpcPeers) {
  EXPECT_EQ(Endpoint("ipv4:198.18.0.2:40312"), "198.18.0.2:40312");
  EXPECT_EQ(Endpoint("ipv6:[2001:db8::2]:40312"), "[2001:db8::2]:40312");
  EXPECT_EQ(Endpoint("ipv6:%5B2001:db8::2%5D:40312"), "[2001:db8::2]:40312");
  EXPECT_EQ(Endpoint("ipv6:[fe80::2%25fl-host]:40312"), "[fe80::2]:40312");
  // A dual-stack listener sees IPv4 clients as IPv4-mapped; their packets carry the IPv4 address.
  EXPECT_EQ(Endpoint("ipv6:[::ffff:198.18.0.2]:40312"), "198.18.0.2:40312");
  EXPECT_EQ(EndpointOfPeer("ipv4:198.18.0.2:40312")->family, 4);
  EXPECT_EQ(EndpointOfPeer("ipv6:[::ffff:198.18.0.2]:40312")->family, 4);

  EXPECT_TRUE(absl::IsNotFound(EndpointOfPeer("unix:").status()));
  EXPECT_TRUE(absl::IsNotFound(EndpointOfPeer("unix:/run/faultline/faultlined.sock").status()));
  EXPECT_EQ(Endpoint("ipv4:198.18.0.2"), "peer ipv4:198.18.0.2: no port");
  EXPECT_EQ(Endpoint("ipv4:198.18.0.2:0"), "peer ipv4:198.18.0.2:0: \"0\" is not a port");
  EXPECT_EQ(Endpoint("ipv4:nowhere:80"), "peer ipv4:nowhere:80: \"nowhere\" is not an address");
}

TEST(ControlPlaneGuardTest, ListsListenersAndControllers) {
  ControlPlaneGuard guard(nullptr);
  ASSERT_TRUE(guard.GuardListener("--listen", {"198.18.0.1", 7443}).ok());
  ASSERT_TRUE(guard.GuardListener("--insecure-listen", {"::1", 7444}).ok());
  guard.GuardController("ipv4:198.18.0.2:40312");
  guard.GuardController("unix:");
  EXPECT_EQ(guard.Describe(),
            (std::vector<std::string>{"--listen 198.18.0.1:7443", "--insecure-listen [::1]:7444",
                                      "controller 198.18.0.2:40312"}));
}

TEST(ControlPlaneGuardTest, AWildcardListenerGuardsEveryAddressOfBothFamilies) {
  for (const char* host : {"0.0.0.0", "::", ""}) {
    ControlPlaneGuard guard(nullptr);
    ASSERT_TRUE(guard.GuardListener("--metrics-listen", {host, 9464}).ok());
    EXPECT_EQ(guard.Describe(),
              (std::vector<std::string>{"--metrics-listen 0.0.0.0:9464", "--metrics-listen [::]:9464"}))
        << host;
  }
}

TEST(ControlPlaneGuardTest, ANameGuardsTheAddressesItResolvesTo) {
  ControlPlaneGuard guard(nullptr);
  ASSERT_TRUE(guard.GuardListener("--insecure-listen", {"localhost", 7444}).ok());
  std::vector<std::string> lines = guard.Describe();
  ASSERT_FALSE(lines.empty());
  for (const auto& line : lines) {
    EXPECT_TRUE(line == "--insecure-listen 127.0.0.1:7444" || line == "--insecure-listen [::1]:7444") << line;
  }
}

TEST(ControlPlaneGuardTest, ForgetsTheControllerHeardFromLongestAgo) {
  ControlPlaneGuard guard(nullptr, 2);
  guard.GuardController("ipv4:198.18.0.2:1001");
  guard.GuardController("ipv4:198.18.0.2:1002");
  guard.GuardController("ipv4:198.18.0.2:1001");  // heard from again: now the most recent
  guard.GuardController("ipv4:198.18.0.2:1003");
  EXPECT_EQ(guard.Describe(),
            (std::vector<std::string>{"controller 198.18.0.2:1003", "controller 198.18.0.2:1001"}));
}

}  // namespace
}  // namespace faultline

// Real traffic between the sandbox's namespaces, counted at the receiving socket.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace faultline::test {

struct Endpoint {
  std::string netns;    // /run/netns/NAME
  std::string address;  // IPv4 or IPv6
};

struct Delivery {
  int sent = 0;         // send calls that succeeded
  int send_errors = 0;  // send calls that failed (a silent fault never makes one fail)
  int received = 0;     // packets or messages that reached the receiver
};

// `count` UDP datagrams, paced so that nothing but the fault can drop them.
Delivery SendUdp(const Endpoint& from, const Endpoint& to, int count);

// `count` ICMP (or ICMPv6) echo requests through raw sockets, counted by a raw socket at `to`.
Delivery SendIcmp(const Endpoint& from, const Endpoint& to, int count);

// Connects first, runs `connected` (which injects the fault), then writes `count` small messages on
// the established connection; `received` counts the messages `to` read.
Delivery SendTcp(const Endpoint& from, const Endpoint& to, int count, const std::function<void()>& connected);

// A bulk TCP transfer from `from` to `to` for `seconds`; the receiver's goodput in bits per second.
double TcpThroughput(const Endpoint& from, const Endpoint& to, double seconds);

// `count` ICMP echo round trips, one sent every `interval_us` (several in flight), each reply matched
// to its request; the round-trip times in microseconds of those answered.
std::vector<double> EchoRoundTrips(const Endpoint& from, const Endpoint& to, int count, int interval_us);

// Sends one UDP datagram every 10 ms until one arrives or `limit_ms` passes; returns the milliseconds
// until the first arrival, or -1.
int MillisecondsUntilUdpFlows(const Endpoint& from, const Endpoint& to, int limit_ms);

}  // namespace faultline::test

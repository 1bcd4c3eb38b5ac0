// Real traffic between the sandbox's namespaces, counted at the receiving socket.
#pragma once

#include <chrono>
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
  // TCP only: sends cut short (part of the message taken) or refused (EAGAIN) for a full send
  // buffer. Under a partition no ACK comes back, so the buffer may fill, as it does for any peer that
  // has gone silent; that is not an error.
  int blocked = 0;
  int received = 0;  // packets or messages that reached the receiver
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

// One datagram of a numbered UDP stream, as the receiving socket got it.
struct Arrival {
  int sequence = 0;
  // From just before the sender's sendto to just after the receiver's recv. Both read CLOCK_MONOTONIC,
  // which every network namespace of one kernel shares, so this is the one-way delay itself.
  double one_way_ms = 0;
};

struct StreamOptions {
  int count = 1000;
  std::chrono::microseconds interval{1000};  // at least this long between two sends
  // An interface in `to`'s namespace whose arriving frames are checked bit for bit (see UdpStream).
  std::string capture_interface;
  // Another address in `to`'s namespace: odd sequences go there, even ones to `to`. Two paths measured
  // in one stream see the same conditions (an emulated CPU's stalls, for one).
  std::string alternate_address;
};

struct UdpStream {
  int count = 0;                  // datagrams the stream had: sequences 0 to count - 1
  Delivery delivery;              // received counts every copy of a duplicated datagram
  std::vector<Arrival> arrivals;  // in the order they arrived
  // With a capture interface: the stream's frames an AF_PACKET socket there saw arrive (before the IP
  // and UDP layers check anything), and how many of them differ from what was sent in any bit.
  int frames_seen = 0;
  int frames_damaged = 0;
};

// A numbered, timestamped UDP stream from `from` to `to` (IPv4), received by a UDP socket. It is sent
// through a raw socket that writes the whole UDP checksum itself: a UDP socket's datagrams leave a veth
// with the checksum left to offload, so a captured frame could not be checked.
UdpStream SendUdpStream(const Endpoint& from, const Endpoint& to, const StreamOptions& options);

// What a stream's arrivals show.
std::vector<double> OneWayDelaysMs(const UdpStream& stream);
int DuplicatesReceived(const UdpStream& stream);         // arrivals of a sequence already received
int ArrivedAfterALaterOne(const UdpStream& stream);      // late: a higher sequence had arrived first
int ArrivedBeforeAnEarlierOne(const UdpStream& stream);  // early: overtook a lower sequence
std::vector<int> LossBursts(const UdpStream& stream);    // lengths of runs of sequences never received

double Median(std::vector<double> values);
double Mean(const std::vector<double>& values);
double StandardDeviation(const std::vector<double>& values);

}  // namespace faultline::test

#include "traffic.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "kernel/netns.h"

namespace faultline::test {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint16_t kPort = 47000;
constexpr uint32_t kMagic = 0xfa17f1e5;
constexpr auto kPacing = std::chrono::microseconds(30);
constexpr auto kDrainTime = std::chrono::milliseconds(300);
// Bounds on every traffic loop, far above what a healthy run takes: a machine that stalls fails the
// test with what was sent and received by then, instead of hanging it.
constexpr auto kSendLimit = std::chrono::seconds(60);
constexpr auto kDrainLimit = std::chrono::seconds(5);

// Runs `work` on a thread that lives in `netns` (setns changes only the calling thread).
template <typename Work>
auto InNetns(const std::string& netns, Work work) {
  return std::async(std::launch::async, [netns, work]() {
    auto handle = kernel::Netns::Open(netns);
    EXPECT_TRUE(handle.ok()) << handle.status();
    auto scope = kernel::NetnsScope::Enter(**handle);
    EXPECT_TRUE(scope.ok()) << scope.status();
    return work();
  });
}

struct Address {
  sockaddr_storage storage{};
  socklen_t length = 0;
  int family = 0;
};

Address Parse(const std::string& text, uint16_t port) {
  Address address;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address.storage);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    address.length = sizeof(*v4);
    address.family = AF_INET;
  } else {
    EXPECT_EQ(inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr), 1) << text;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    address.length = sizeof(*v6);
    address.family = AF_INET6;
  }
  return address;
}

// A socket bound to the wildcard address of `family`, with a receive buffer large enough for a burst.
int BoundSocket(int family, int type, int protocol, uint16_t port) {
  int fd = socket(family, type | SOCK_CLOEXEC, protocol);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  int size = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (type == SOCK_RAW) return fd;
  Address any = Parse(family == AF_INET ? "0.0.0.0" : "::", port);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&any.storage), any.length), 0) << std::strerror(errno);
  return fd;
}

// A sending socket bound to `from`'s address, so a host with several addresses sends from the named one.
int SourceSocket(const Endpoint& from, int type, int protocol) {
  Address source = Parse(from.address, 0);
  int fd = socket(source.family, type | SOCK_CLOEXEC, protocol);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&source.storage), source.length), 0)
      << from.address << ": " << std::strerror(errno);
  return fd;
}

// Whether a receiver goes on: until `stop` is set and the socket has then been quiet for a drain
// time (packets a fault holds back still arrive), and never more than kDrainLimit after `stop`.
class Receiving {
 public:
  explicit Receiving(const std::atomic<bool>& stop) : stop_(stop) {}
  bool operator()() {
    const Clock::time_point now = Clock::now();
    if (!stop_) {
      quiet_since_ = stopped_at_ = now;
      return true;
    }
    return now - quiet_since_ < kDrainTime && now - stopped_at_ < kDrainLimit;
  }
  void Arrived() { quiet_since_ = Clock::now(); }

 private:
  const std::atomic<bool>& stop_;
  Clock::time_point quiet_since_ = Clock::now();
  Clock::time_point stopped_at_ = Clock::now();
};

// Counts what `matches` accepts on `fd` while Receiving says so.
int CountReceived(int fd, const std::atomic<bool>& stop,
                  const std::function<bool(const char*, ssize_t)>& matches) {
  int received = 0;
  char buffer[2048];
  Receiving receiving(stop);
  while (receiving()) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0 && matches(buffer, n)) received++;
    receiving.Arrived();
  }
  return received;
}

uint16_t Checksum(const void* data, size_t length) {
  uint32_t sum = 0;
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i + 1 < length; i += 2) sum += static_cast<uint32_t>(bytes[i] << 8 | bytes[i + 1]);
  if (length % 2) sum += static_cast<uint32_t>(bytes[length - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

// How one kind of datagram is sent and recognised.
struct Datagrams {
  int type;      // SOCK_DGRAM or SOCK_RAW
  int protocol;  // for raw sockets
  uint16_t port;
  std::function<std::vector<uint8_t>(int sequence)> make;
  std::function<bool(const char* data, ssize_t length)> matches;
};

// How an exchange differs from the plain one: a raw sender to a UDP socket, another pace, a capture.
struct ExchangeOptions {
  int receive_type = 0;  // the receiving socket's type when it is not the sender's
  std::chrono::microseconds interval = kPacing;
  // Odd-numbered datagrams go to this address instead (the same port, in `to`'s namespace).
  std::string alternate_address;
  // Also read every frame arriving on this interface of the receiver's namespace, with `captured`.
  std::string capture_interface;
  std::function<bool(const char* frame, ssize_t length)> captured;
};

// An AF_PACKET socket that gets every frame arriving on `interface` of the calling thread's namespace,
// whatever the IP layer later makes of it.
int CaptureSocket(const std::string& interface) {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  EXPECT_GE(fd, 0) << std::strerror(errno);
  int size = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
  int on = 1;
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof(on));
  sockaddr_ll link{};
  link.sll_family = AF_PACKET;
  link.sll_protocol = htons(ETH_P_ALL);
  link.sll_ifindex = static_cast<int>(if_nametoindex(interface.c_str()));
  EXPECT_NE(link.sll_ifindex, 0) << interface << ": " << std::strerror(errno);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&link), sizeof(link)), 0) << std::strerror(errno);
  return fd;
}

// Sends `count` datagrams from `from` to `to`, paced, and counts what a socket bound at `to` recognises.
Delivery Exchange(const Endpoint& from, const Endpoint& to, int count, const Datagrams& kind,
                  const ExchangeOptions& options = {}) {
  Address destination = Parse(to.address, kind.port);
  std::atomic<bool> stop{false};
  std::promise<void> bound;
  auto receiver = InNetns(to.netns, [&] {
    int fd = BoundSocket(destination.family, options.receive_type != 0 ? options.receive_type : kind.type,
                         kind.protocol, kind.port);
    bound.set_value();
    int received = CountReceived(fd, stop, kind.matches);
    close(fd);
    return received;
  });
  bound.get_future().wait();
  std::promise<void> capturing;
  std::future<int> capture;
  if (options.capture_interface.empty()) {
    capturing.set_value();
  } else {
    capture = InNetns(to.netns, [&] {
      int fd = CaptureSocket(options.capture_interface);
      capturing.set_value();
      int captured = CountReceived(fd, stop, options.captured);
      close(fd);
      return captured;
    });
  }
  capturing.get_future().wait();
  Address alternate =
      options.alternate_address.empty() ? destination : Parse(options.alternate_address, kind.port);
  Delivery delivery =
      InNetns(from.netns, [&] {
        Delivery d;
        int fd = SourceSocket(from, kind.type, kind.protocol);
        const Clock::time_point give_up = Clock::now() + kSendLimit;
        for (int i = 0; i < count && Clock::now() < give_up; i++) {
          std::vector<uint8_t> packet = kind.make(i);
          const Address& to_address = i % 2 == 0 ? destination : alternate;
          ssize_t n = sendto(fd, packet.data(), packet.size(), 0,
                             reinterpret_cast<const sockaddr*>(&to_address.storage), to_address.length);
          (n == static_cast<ssize_t>(packet.size()) ? d.sent : d.send_errors)++;
          std::this_thread::sleep_for(options.interval);
        }
        close(fd);
        return d;
      }).get();
  stop = true;
  delivery.received = receiver.get();
  if (capture.valid()) capture.get();
  return delivery;
}

}  // namespace

Delivery SendUdp(const Endpoint& from, const Endpoint& to, int count) {
  Datagrams udp{SOCK_DGRAM, 0, kPort,
                [](int) {
                  std::vector<uint8_t> payload(64);
                  std::memcpy(payload.data(), &kMagic, 4);
                  return payload;
                },
                [](const char* data, ssize_t n) {
                  uint32_t magic;
                  return n >= 4 && (std::memcpy(&magic, data, 4), magic == kMagic);
                }};
  return Exchange(from, to, count, udp);
}

Delivery SendIcmp(const Endpoint& from, const Endpoint& to, int count) {
  const bool v6 = Parse(to.address, 0).family == AF_INET6;
  const uint8_t echo_request = static_cast<uint8_t>(v6 ? int{ICMP6_ECHO_REQUEST} : int{ICMP_ECHO});
  const uint16_t id = htons(static_cast<uint16_t>(std::random_device()()));
  Datagrams icmp{SOCK_RAW, v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP}, 0,
                 [=](int sequence) {
                   std::vector<uint8_t> packet(64);
                   packet[0] = echo_request;
                   uint16_t seq = htons(static_cast<uint16_t>(sequence));
                   std::memcpy(&packet[4], &id, 2);
                   std::memcpy(&packet[6], &seq, 2);
                   // The kernel fills in ICMPv6 checksums (RFC 3542); ICMPv4's is ours to compute.
                   if (!v6) {
                     uint16_t sum = Checksum(packet.data(), packet.size());
                     std::memcpy(&packet[2], &sum, 2);
                   }
                   return packet;
                 },
                 [=](const char* data, ssize_t n) {
                   // IPv4 raw sockets deliver the IP header too; ICMPv6 raw sockets do not.
                   ssize_t offset = v6 ? 0 : (data[0] & 0x0f) * 4;
                   if (n < offset + 8) return false;
                   uint16_t echo_id;
                   std::memcpy(&echo_id, data + offset + 4, 2);
                   return static_cast<uint8_t>(data[offset]) == echo_request && echo_id == id;
                 }};
  return Exchange(from, to, count, icmp);
}

Delivery SendTcp(const Endpoint& from, const Endpoint& to, int count,
                 const std::function<void()>& connected) {
  constexpr size_t kMessage = 32;
  Address destination = Parse(to.address, kPort);
  std::atomic<bool> stop{false};
  std::promise<void> listening;
  auto receiver = InNetns(to.netns, [&] {
    int listener = BoundSocket(destination.family, SOCK_STREAM, 0, kPort);
    listen(listener, 1);
    listening.set_value();
    int fd = accept(listener, nullptr, nullptr);
    close(listener);
    size_t bytes = 0;
    char buffer[4096];
    Receiving receiving(stop);
    while (receiving()) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      bytes += static_cast<size_t>(n);
      receiving.Arrived();
    }
    close(fd);
    return static_cast<int>(bytes / kMessage);
  });
  listening.get_future().wait();
  int fd = InNetns(from.netns, [&] {
             int s = SourceSocket(from, SOCK_STREAM, 0);
             EXPECT_EQ(connect(s, reinterpret_cast<sockaddr*>(&destination.storage), destination.length), 0)
                 << std::strerror(errno);
             int on = 1;
             setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
             return s;
           }).get();
  connected();
  // The socket keeps its namespace; writing needs no setns.
  Delivery delivery;
  char message[kMessage] = {};
  const Clock::time_point give_up = Clock::now() + kSendLimit;
  for (int i = 0; i < count && Clock::now() < give_up; i++) {
    ssize_t n = send(fd, message, sizeof(message), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(sizeof(message))) {
      delivery.sent++;
    } else if (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
      delivery.blocked++;
    } else {
      delivery.send_errors++;
    }
    std::this_thread::sleep_for(kPacing);
  }
  stop = true;
  delivery.received = receiver.get();
  close(fd);
  return delivery;
}

int MillisecondsUntilUdpFlows(const Endpoint& from, const Endpoint& to, int limit_ms) {
  Address destination = Parse(to.address, kPort + 1);
  std::promise<void> bound;
  std::atomic<bool> arrived{false};
  auto receiver = InNetns(to.netns, [&] {
    int fd = BoundSocket(destination.family, SOCK_DGRAM, 0, kPort + 1);
    bound.set_value();
    char buffer[64];
    auto deadline = Clock::now() + std::chrono::milliseconds(limit_ms + 100);
    while (Clock::now() < deadline && !arrived) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 5) > 0 && recv(fd, buffer, sizeof(buffer), 0) > 0) arrived = true;
    }
    close(fd);
    return 0;
  });
  bound.get_future().wait();
  return InNetns(
             from.netns,
             [&] {
               int fd = socket(destination.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
               auto start = Clock::now();
               int result = -1;
               while (Clock::now() - start < std::chrono::milliseconds(limit_ms)) {
                 sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&destination.storage), destination.length);
                 std::this_thread::sleep_for(std::chrono::milliseconds(10));
                 if (arrived) {
                   result = static_cast<int>(
                       std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
                   break;
                 }
               }
               close(fd);
               receiver.wait();
               return result;
             })
      .get();
}

}  // namespace faultline::test

namespace faultline::test {
namespace {

void SetTimeouts(int fd) {
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
}

}  // namespace

double TcpThroughput(const Endpoint& from, const Endpoint& to, double seconds) {
  Address destination = Parse(to.address, kPort + 2);
  std::promise<void> listening;
  auto receiver = InNetns(to.netns, [&] {
    int listener = BoundSocket(destination.family, SOCK_STREAM, 0, kPort + 2);
    // A fault that swallows the handshake must fail the test, not hang it.
    SetTimeouts(listener);
    listen(listener, 1);
    listening.set_value();
    int fd = accept(listener, nullptr, nullptr);
    close(listener);
    if (fd < 0) return 0.0;
    SetTimeouts(fd);
    std::vector<char> buffer(1 << 16);
    uint64_t bytes = 0;
    Clock::time_point first{};
    Clock::time_point last{};
    ssize_t n;
    while ((n = recv(fd, buffer.data(), buffer.size(), 0)) > 0) {
      if (bytes == 0) first = Clock::now();
      bytes += static_cast<uint64_t>(n);
      last = Clock::now();
    }
    close(fd);
    double elapsed = std::chrono::duration<double>(last - first).count();
    return elapsed > 0 ? static_cast<double>(bytes) * 8 / elapsed : 0.0;
  });
  listening.get_future().wait();
  InNetns(from.netns, [&] {
    int fd = SourceSocket(from, SOCK_STREAM, 0);
    SetTimeouts(fd);  // connect() and send() give up after them too
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&destination.storage), destination.length), 0)
        << std::strerror(errno);
    std::vector<char> buffer(1 << 16, 'x');
    auto end = Clock::now() + std::chrono::duration<double>(seconds);
    while (Clock::now() < end) {
      if (send(fd, buffer.data(), buffer.size(), MSG_NOSIGNAL) < 0) break;
    }
    close(fd);
    return 0;
  }).get();
  return receiver.get();
}

std::vector<double> EchoRoundTrips(const Endpoint& from, const Endpoint& to, int count, int interval_us) {
  Address destination = Parse(to.address, 0);
  const bool v6 = destination.family == AF_INET6;
  const int protocol = v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP};
  const uint16_t id = htons(static_cast<uint16_t>(std::random_device()()));
  return InNetns(
             from.netns,
             [&] {
               int fd = SourceSocket(from, SOCK_RAW, protocol);
               std::vector<Clock::time_point> sent(static_cast<size_t>(count));
               std::vector<double> round_trips;
               auto receive = [&](int timeout_ms) {
                 pollfd p{fd, POLLIN, 0};
                 if (poll(&p, 1, timeout_ms) <= 0) return false;
                 char reply[2048];
                 ssize_t n = recv(fd, reply, sizeof(reply), 0);
                 ssize_t offset = v6 ? 0 : (reply[0] & 0x0f) * 4;
                 uint8_t echo_reply = static_cast<uint8_t>(v6 ? int{ICMP6_ECHO_REPLY} : int{ICMP_ECHOREPLY});
                 uint16_t reply_id, seq;
                 if (n < offset + 8 || static_cast<uint8_t>(reply[offset]) != echo_reply) return true;
                 std::memcpy(&reply_id, reply + offset + 4, 2);
                 std::memcpy(&seq, reply + offset + 6, 2);
                 if (reply_id == id && ntohs(seq) < sent.size()) {
                   round_trips.push_back(
                       std::chrono::duration<double, std::micro>(Clock::now() - sent[ntohs(seq)]).count());
                 }
                 return true;
               };
               const Clock::time_point give_up = Clock::now() + kSendLimit;
               for (int i = 0; i < count && Clock::now() < give_up; i++) {
                 uint8_t packet[64] = {};
                 packet[0] = static_cast<uint8_t>(v6 ? int{ICMP6_ECHO_REQUEST} : int{ICMP_ECHO});
                 uint16_t seq = htons(static_cast<uint16_t>(i));
                 std::memcpy(packet + 4, &id, 2);
                 std::memcpy(packet + 6, &seq, 2);
                 if (!v6) {
                   uint16_t sum = Checksum(packet, sizeof(packet));
                   std::memcpy(packet + 2, &sum, 2);
                 }
                 sent[static_cast<size_t>(i)] = Clock::now();
                 sendto(fd, packet, sizeof(packet), 0, reinterpret_cast<sockaddr*>(&destination.storage),
                        destination.length);
                 // Read what has arrived while waiting for the next send.
                 auto next = Clock::now() + std::chrono::microseconds(interval_us);
                 while (Clock::now() < next) {
                   if (!receive(0)) std::this_thread::sleep_for(std::chrono::microseconds(100));
                 }
               }
               const Clock::time_point drained = Clock::now() + kDrainLimit;
               while (Clock::now() < drained && receive(1000)) {
               }
               close(fd);
               return round_trips;
             })
      .get();
}

}  // namespace faultline::test

namespace faultline::test {
namespace {

constexpr uint16_t kStreamPort = kPort + 3;
constexpr uint16_t kStreamSourcePort = kPort + 4;
constexpr size_t kStreamPayload = 100;  // gives 142-byte frames, a length nothing else in the sandbox has
constexpr size_t kEthernetHeader = 14;
constexpr size_t kIpv4Header = 20;
constexpr size_t kUdpHeader = 8;

int64_t MonotonicNanoseconds() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

// The UDP checksum over the IPv4 pseudo-header and `segment` (header and payload); 0 when `segment`
// carries a correct one.
uint16_t UdpChecksum(const in_addr& source, const in_addr& destination, const uint8_t* segment,
                     size_t length) {
  std::vector<uint8_t> summed(12 + length);
  std::memcpy(&summed[0], &source, 4);
  std::memcpy(&summed[4], &destination, 4);
  summed[9] = IPPROTO_UDP;
  uint16_t udp_length = htons(static_cast<uint16_t>(length));
  std::memcpy(&summed[10], &udp_length, 2);
  std::memcpy(&summed[12], segment, length);
  return Checksum(summed.data(), summed.size());
}

// Whether a captured frame is exactly a stream datagram from `source` to one of `destinations`, apart
// from its Ethernet addresses, which the caller compares across frames. A flipped bit anywhere else
// breaks a field compared here, the IPv4 header checksum or the UDP checksum (a one's complement sum
// catches every single-bit error).
bool IntactStreamFrame(const uint8_t* frame, size_t length, const in_addr& source,
                       const std::vector<in_addr>& destinations) {
  const uint8_t* ip = frame + kEthernetHeader;
  const uint8_t* udp = ip + kIpv4Header;
  uint16_t ethertype, total_length, source_port, destination_port, udp_length;
  uint32_t magic;
  in_addr destination;
  std::memcpy(&destination, ip + 16, 4);
  if (std::none_of(destinations.begin(), destinations.end(),
                   [&](const in_addr& d) { return d.s_addr == destination.s_addr; })) {
    return false;
  }
  std::memcpy(&ethertype, frame + 12, 2);
  std::memcpy(&total_length, ip + 2, 2);
  std::memcpy(&source_port, udp, 2);
  std::memcpy(&destination_port, udp + 2, 2);
  std::memcpy(&udp_length, udp + 4, 2);
  std::memcpy(&magic, udp + kUdpHeader, 4);
  return length == kEthernetHeader + kIpv4Header + kUdpHeader + kStreamPayload &&
         ethertype == htons(ETH_P_IP) && ip[0] == 0x45 && ntohs(total_length) == length - kEthernetHeader &&
         ip[9] == IPPROTO_UDP && std::memcmp(ip + 12, &source, 4) == 0 && Checksum(ip, kIpv4Header) == 0 &&
         ntohs(source_port) == kStreamSourcePort && ntohs(destination_port) == kStreamPort &&
         ntohs(udp_length) == kUdpHeader + kStreamPayload && magic == kMagic &&
         UdpChecksum(source, destination, udp, kUdpHeader + kStreamPayload) == 0;
}

}  // namespace

UdpStream SendUdpStream(const Endpoint& from, const Endpoint& to, const StreamOptions& options) {
  UdpStream stream;
  stream.count = options.count;
  in_addr source{};
  std::vector<in_addr> destinations(options.alternate_address.empty() ? 1 : 2);
  if (inet_pton(AF_INET, from.address.c_str(), &source) != 1 ||
      inet_pton(AF_INET, to.address.c_str(), &destinations[0]) != 1 ||
      (destinations.size() == 2 &&
       inet_pton(AF_INET, options.alternate_address.c_str(), &destinations[1]) != 1)) {
    ADD_FAILURE() << "a UDP stream is IPv4: " << from.address << " -> " << to.address << " "
                  << options.alternate_address;
    return stream;
  }
  // Payload: magic, sequence, send time in nanoseconds, then filler.
  Datagrams udp{SOCK_RAW, IPPROTO_UDP, kStreamPort,
                [&](int sequence) {
                  std::vector<uint8_t> segment(kUdpHeader + kStreamPayload, 0x5a);
                  uint16_t ports[2] = {htons(kStreamSourcePort), htons(kStreamPort)};
                  uint16_t length = htons(static_cast<uint16_t>(segment.size()));
                  std::memcpy(&segment[0], ports, 4);
                  std::memcpy(&segment[4], &length, 2);
                  std::memset(&segment[6], 0, 2);
                  int64_t now = MonotonicNanoseconds();
                  std::memcpy(&segment[kUdpHeader], &kMagic, 4);
                  std::memcpy(&segment[kUdpHeader + 4], &sequence, 4);
                  std::memcpy(&segment[kUdpHeader + 8], &now, 8);
                  const in_addr& destination =
                      destinations[static_cast<size_t>(sequence) % destinations.size()];
                  uint16_t sum = UdpChecksum(source, destination, segment.data(), segment.size());
                  if (sum == 0) sum = 0xffff;  // 0 would mean "no checksum" (RFC 768)
                  std::memcpy(&segment[6], &sum, 2);
                  return segment;
                },
                [&](const char* data, ssize_t n) {
                  int64_t now = MonotonicNanoseconds();
                  uint32_t magic;
                  Arrival arrival;
                  int64_t sent;
                  if (n < 16 || (std::memcpy(&magic, data, 4), magic != kMagic)) return false;
                  std::memcpy(&arrival.sequence, data + 4, 4);
                  std::memcpy(&sent, data + 8, 8);
                  arrival.one_way_ms = static_cast<double>(now - sent) / 1e6;
                  stream.arrivals.push_back(arrival);
                  return true;
                }};
  ExchangeOptions exchange;
  exchange.receive_type = SOCK_DGRAM;
  exchange.interval = options.interval;
  exchange.alternate_address = options.alternate_address;
  // Frames are judged once all are in: the Ethernet addresses the most frames carry are the sent ones.
  std::vector<std::pair<std::array<uint8_t, 12>, bool>> frames;
  exchange.capture_interface = options.capture_interface;
  exchange.captured = [&](const char* data, ssize_t n) {
    if (n != static_cast<ssize_t>(kEthernetHeader + kIpv4Header + kUdpHeader + kStreamPayload)) return false;
    const auto* frame = reinterpret_cast<const uint8_t*>(data);
    std::array<uint8_t, 12> addresses;
    std::memcpy(addresses.data(), frame, 12);
    frames.emplace_back(addresses, IntactStreamFrame(frame, static_cast<size_t>(n), source, destinations));
    return true;
  };
  stream.delivery = Exchange(from, to, options.count, udp, exchange);
  std::map<std::array<uint8_t, 12>, int> votes;
  for (const auto& [addresses, intact] : frames) votes[addresses] += intact;
  auto sent_addresses = std::max_element(votes.begin(), votes.end(),
                                         [](const auto& a, const auto& b) { return a.second < b.second; });
  for (const auto& [addresses, intact] : frames) {
    stream.frames_seen++;
    if (!intact || addresses != sent_addresses->first) stream.frames_damaged++;
  }
  return stream;
}

std::vector<double> OneWayDelaysMs(const UdpStream& stream) {
  std::vector<double> delays;
  for (const Arrival& arrival : stream.arrivals) delays.push_back(arrival.one_way_ms);
  return delays;
}

int DuplicatesReceived(const UdpStream& stream) {
  std::set<int> seen;
  int duplicates = 0;
  for (const Arrival& arrival : stream.arrivals) duplicates += !seen.insert(arrival.sequence).second;
  return duplicates;
}

int ArrivedAfterALaterOne(const UdpStream& stream) {
  int late = 0;
  int highest = -1;
  for (const Arrival& arrival : stream.arrivals) {
    late += arrival.sequence < highest;
    highest = std::max(highest, arrival.sequence);
  }
  return late;
}

int ArrivedBeforeAnEarlierOne(const UdpStream& stream) {
  int early = 0;
  int lowest_after = INT_MAX;
  for (auto arrival = stream.arrivals.rbegin(); arrival != stream.arrivals.rend(); ++arrival) {
    early += arrival->sequence > lowest_after;
    lowest_after = std::min(lowest_after, arrival->sequence);
  }
  return early;
}

std::vector<int> LossBursts(const UdpStream& stream) {
  std::vector<bool> received(static_cast<size_t>(stream.count));
  for (const Arrival& arrival : stream.arrivals) {
    if (arrival.sequence >= 0 && arrival.sequence < stream.count)
      received[static_cast<size_t>(arrival.sequence)] = true;
  }
  std::vector<int> bursts;
  int run = 0;
  for (bool got : received) {
    if (!got) {
      run++;
    } else if (run > 0) {
      bursts.push_back(run);
      run = 0;
    }
  }
  if (run > 0) bursts.push_back(run);
  return bursts;
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::nth_element(values.begin(), values.begin() + static_cast<ptrdiff_t>(values.size() / 2), values.end());
  return values[values.size() / 2];
}

double Mean(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  for (double value : values) sum += value;
  return sum / static_cast<double>(values.size());
}

double StandardDeviation(const std::vector<double>& values) {
  if (values.size() < 2) return 0;
  double mean = Mean(values);
  double squares = 0;
  for (double value : values) squares += (value - mean) * (value - mean);
  return std::sqrt(squares / static_cast<double>(values.size() - 1));
}

}  // namespace faultline::test

#include "packets.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <netinet/in.h>

#include <array>
#include <iterator>
#include <utility>

namespace faultline::test {
namespace {

// Appends fields in network byte order.
class Bytes {
 public:
  Bytes& U8(uint8_t value) {
    data_.push_back(value);
    return *this;
  }
  Bytes& U16(uint16_t value) { return U8(static_cast<uint8_t>(value >> 8)).U8(static_cast<uint8_t>(value)); }
  Bytes& U32(uint32_t value) {
    return U16(static_cast<uint16_t>(value >> 16)).U16(static_cast<uint16_t>(value));
  }
  template <typename Range>
  Bytes& Append(const Range& bytes) {
    data_.insert(data_.end(), std::begin(bytes), std::end(bytes));
    return *this;
  }
  Bytes& Zeros(size_t count) {
    data_.resize(data_.size() + count);
    return *this;
  }
  size_t size() const { return data_.size(); }
  std::vector<uint8_t> Take() { return std::move(data_); }

 private:
  std::vector<uint8_t> data_;
};

struct Address {
  int family = 0;
  std::array<uint8_t, 16> bytes{};
  size_t size() const { return family == 4 ? 4 : 16; }
  auto begin() const { return bytes.begin(); }
  auto end() const { return bytes.begin() + static_cast<long>(size()); }
};

Address ParseAddress(const char* text) {
  Address address;
  if (inet_pton(AF_INET, text, address.bytes.data()) == 1) {
    address.family = 4;
  } else if (inet_pton(AF_INET6, text, address.bytes.data()) == 1) {
    address.family = 6;
  } else {
    ADD_FAILURE() << "test bug: \"" << text << "\" is not an address";
  }
  return address;
}

uint8_t IpProtocol(Transport transport, int family) {
  switch (transport) {
    case Transport::kTcp:
      return IPPROTO_TCP;
    case Transport::kUdp:
      return IPPROTO_UDP;
    case Transport::kIcmp:
      return family == 4 ? uint8_t{IPPROTO_ICMP} : uint8_t{IPPROTO_ICMPV6};
    case Transport::kGre:
      return IPPROTO_GRE;
  }
  return 0;
}

std::vector<uint8_t> TransportHeader(const Packet& packet, int family) {
  Bytes header;
  switch (packet.transport) {
    case Transport::kTcp:  // 20 bytes, SYN
      header.U16(packet.sport).U16(packet.dport).U32(1).U32(0).U8(5 << 4).U8(0x02).U16(65535).U16(0).U16(0);
      break;
    case Transport::kUdp:  // 8 bytes and 4 of payload
      header.U16(packet.sport).U16(packet.dport).U16(12).U16(0).U32(0x66617574);
      break;
    case Transport::kIcmp:  // type, code, checksum, then 20 bytes: echo id/seq and data, or NDP's target
      header.U8(packet.icmp_type.value_or(family == 4 ? 8 : 128)).U8(0).U16(0).Zeros(20);
      break;
    case Transport::kGre:  // flags/version and the inner protocol
      header.U16(0).U16(ETH_P_IP);
      break;
  }
  return header.Take();
}

}  // namespace

const char* Name(Transport transport) {
  switch (transport) {
    case Transport::kTcp:
      return "tcp";
    case Transport::kUdp:
      return "udp";
    case Transport::kIcmp:
      return "icmp";
    case Transport::kGre:
      return "gre";
  }
  return "?";
}

std::vector<uint8_t> Frame(const Packet& packet) {
  const Address src = ParseAddress(packet.src);
  const Address dst = ParseAddress(packet.dst);
  EXPECT_EQ(src.family, dst.family) << "test bug: " << packet.src << " -> " << packet.dst;
  const uint8_t protocol = IpProtocol(packet.transport, src.family);
  const std::vector<uint8_t> transport = TransportHeader(packet, src.family);
  const uint16_t fragment = static_cast<uint16_t>(packet.fragment_offset);

  Bytes frame;
  frame.Append(std::array<uint8_t, 12>{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01});  // dst, src MAC
  if (src.family == 4) {
    const size_t header_length = 20 + 4 * packet.ipv4_option_words;
    frame.U16(ETH_P_IP)
        .U8(static_cast<uint8_t>(0x40 | header_length / 4))  // version 4, header length in words
        .U8(0)
        .U16(static_cast<uint16_t>(header_length + transport.size()))
        .U16(0x1234)
        .U16(static_cast<uint16_t>((packet.more_fragments ? 0x2000 : 0) | fragment))
        .U8(64)
        .U8(protocol)
        .U16(0)
        .Append(src)
        .Append(dst)
        .Append(std::vector<uint8_t>(4 * packet.ipv4_option_words, 1))  // NOP options
        .Append(transport);
    return frame.Take();
  }

  std::vector<uint8_t> chain = packet.ipv6_options;
  if (packet.fragment_offset != 0 || packet.more_fragments) chain.push_back(IPPROTO_FRAGMENT);
  chain.push_back(protocol);
  Bytes extensions;
  for (size_t i = 0; i + 1 < chain.size(); i++) {
    const uint8_t next = chain[i + 1];
    if (chain[i] == IPPROTO_FRAGMENT) {
      extensions.U8(next).U8(0).U16(static_cast<uint16_t>(fragment << 3 | (packet.more_fragments ? 1 : 0)));
      extensions.U32(0x42);  // identification
    } else if (chain[i] == IPPROTO_HOPOPTS) {
      // The length field counts 8-byte units after the first 8, so the parser must scale it.
      const uint8_t units = packet.hop_by_hop_units;
      extensions.U8(next).U8(units).Zeros(8 + 8 * size_t{units} - 2);  // Pad1 options filling the rest
    } else {
      extensions.U8(next).U8(0).U8(1).U8(4).Zeros(4);  // 8 bytes: PadN filling the rest
    }
  }
  frame.U16(ETH_P_IPV6)
      .U32(6u << 28)  // version 6, no traffic class or flow label
      .U16(static_cast<uint16_t>(extensions.size() + transport.size()))
      .U8(chain.front())
      .U8(64)
      .Append(src)
      .Append(dst)
      .Append(extensions.Take())
      .Append(transport);
  return frame.Take();
}

std::vector<uint8_t> ArpFrame(const char* sender, const char* target) {
  const std::array<uint8_t, 6> sender_mac{0x02, 0, 0, 0, 0, 0x01};
  Bytes frame;
  frame.Append(std::array<uint8_t, 6>{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}).Append(sender_mac).U16(ETH_P_ARP);
  frame.U16(1).U16(ETH_P_IP).U8(6).U8(4).U16(1);  // Ethernet/IPv4, request
  frame.Append(sender_mac).Append(ParseAddress(sender)).Zeros(6).Append(ParseAddress(target));
  return frame.Take();
}

}  // namespace faultline::test

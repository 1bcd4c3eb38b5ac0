#include "faults/target.h"

#include "faultline/api/cat.h"
#include "target_abi.h"

namespace faultline::faults {
namespace {

uint32_t ProtocolMask(faultline::v1::Protocol protocol) {
  switch (protocol) {
    case faultline::v1::PROTOCOL_TCP:
      return FL_PROTO_TCP;
    case faultline::v1::PROTOCOL_UDP:
      return FL_PROTO_UDP;
    case faultline::v1::PROTOCOL_ICMP:
      return FL_PROTO_ICMP;
    default:
      return FL_PROTO_ALL;
  }
}

std::vector<api::Cidr> Cidrs(const google::protobuf::RepeatedPtrField<std::string>& texts) {
  std::vector<api::Cidr> cidrs;
  for (const std::string& text : texts) cidrs.push_back(*api::ParseCidr(text));  // validated on arrival
  return cidrs;
}

}  // namespace

std::string TargetNetnsPath(const faultline::v1::Target& target) {
  if (target.has_pid()) return api::Cat("/proc/", target.pid(), "/ns/net");
  return target.netns_path();
}

kernel::TargetSpec TargetSpecOf(const faultline::v1::Target& target, uint64_t deadline_ns) {
  kernel::TargetSpec spec;
  spec.peers = Cidrs(target.peers());
  spec.excluded = Cidrs(target.excluded_peers());
  for (const auto& range : target.ports()) {
    spec.ports.emplace_back(range.first(), range.last() == 0 ? range.first() : range.last());
  }
  spec.protocols = ProtocolMask(target.protocol());
  spec.deadline_ns = deadline_ns;
  return spec;
}

}  // namespace faultline::faults

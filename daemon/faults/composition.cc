#include "faults/composition.h"

#include <algorithm>

#include "faultline/api/cat.h"
#include "faultline/api/validate.h"
#include "faults/netem.h"
#include "faults/target.h"
#include "kernel/netns.h"
#include "target_abi.h"

namespace faultline::faults {
namespace {

using api::Cat;
using api::Cidr;
using faultline::v1::Fault;
using faultline::v1::Target;

// Whether every address of `inner` is in `outer`.
bool Contains(const Cidr& outer, const Cidr& inner) {
  if (outer.family != inner.family || outer.prefix_length > inner.prefix_length) return false;
  for (int bit = 0; bit < outer.prefix_length; bit++) {
    uint8_t mask = static_cast<uint8_t>(0x80u >> (bit % 8));
    if ((outer.address[bit / 8] & mask) != (inner.address[bit / 8] & mask)) return false;
  }
  return true;
}

// Whether the union of `excluded` holds every address of `cidr`. Exclusions strictly inside it may
// still cover it together (two /25s cover a /24), so it is split in halves until each half is covered
// by one exclusion or holds none.
bool Covered(const Cidr& cidr, const std::vector<Cidr>& excluded) {
  std::vector<Cidr> inside;
  for (const Cidr& e : excluded) {
    if (Contains(e, cidr)) return true;
    if (Contains(cidr, e)) inside.push_back(e);
  }
  if (inside.empty()) return false;
  // Only exclusions longer than `cidr` are inside it, so it has a bit left to split on.
  Cidr low = cidr;
  low.prefix_length++;
  Cidr high = low;
  high.address[cidr.prefix_length / 8] |= static_cast<uint8_t>(0x80u >> (cidr.prefix_length % 8));
  return Covered(low, inside) && Covered(high, inside);
}

// The target's peers of one family; every address of it when the target lists none.
std::vector<Cidr> PeersOf(const kernel::TargetSpec& spec, int family) {
  if (spec.peers.empty()) return {Cidr{.family = family, .address = {}, .prefix_length = 0}};
  std::vector<Cidr> peers;
  std::copy_if(spec.peers.begin(), spec.peers.end(), std::back_inserter(peers),
               [&](const Cidr& c) { return c.family == family; });
  return peers;
}

bool PeersMayOverlap(const kernel::TargetSpec& a, const kernel::TargetSpec& b) {
  std::vector<Cidr> excluded = a.excluded;
  excluded.insert(excluded.end(), b.excluded.begin(), b.excluded.end());
  for (int family : {4, 6}) {
    for (const Cidr& pa : PeersOf(a, family)) {
      for (const Cidr& pb : PeersOf(b, family)) {
        // Two CIDRs meet only when one holds the other; the narrower one is what they share.
        const Cidr* shared = Contains(pa, pb) ? &pb : Contains(pb, pa) ? &pa : nullptr;
        if (shared != nullptr && !Covered(*shared, excluded)) return true;
      }
    }
  }
  return false;
}

// The protocols a target can match: a packet needs ports (TCP or UDP) to match a port list.
uint32_t ProtocolsOf(const kernel::TargetSpec& spec) {
  return spec.ports.empty() ? spec.protocols : spec.protocols & (FL_PROTO_TCP | FL_PROTO_UDP);
}

bool PortsMayOverlap(const kernel::TargetSpec& a, const kernel::TargetSpec& b) {
  if (a.ports.empty() || b.ports.empty()) return true;
  for (const auto& [a_first, a_last] : a.ports) {
    for (const auto& [b_first, b_last] : b.ports) {
      if (a_first <= b_last && b_first <= a_last) return true;
    }
  }
  return false;
}

// The hooks both targets act at: "egress", "ingress", "egress and ingress", or "".
std::string SharedHooks(const Target& a, const Target& b) {
  auto egress = [](const Target& t) { return t.direction() != v1::DIRECTION_INGRESS; };
  auto ingress = [](const Target& t) { return t.direction() != v1::DIRECTION_EGRESS; };
  bool shared_egress = egress(a) && egress(b);
  bool shared_ingress = ingress(a) && ingress(b);
  if (shared_egress && shared_ingress) return "egress and ingress";
  if (shared_egress) return "egress";
  if (shared_ingress) return "ingress";
  return "";
}

// What a shaping fault does to its packets, as in "both would delay the same packets".
std::string Effect(const Fault& fault) {
  switch (fault.kind_case()) {
    case Fault::kDelay:
      return "delay";
    case Fault::kLoss:
      return "drop";
    case Fault::kDuplicate:
      return "duplicate";
    case Fault::kCorrupt:
      return "corrupt";
    case Fault::kReorder:
      return "reorder";
    case Fault::kBandwidth:
      return "limit the bandwidth of";
    default:
      return "shape";
  }
}

std::string Name(const PlacedFault& placed) {
  return Cat("faults[", placed.index, "] (", api::FaultKindName(placed.fault), ")");
}

// Where two placed faults meet: "fl-host egress in netns /run/netns/x", or "" when they cannot share
// a packet.
std::string WhereTheyMeet(const PlacedFault& a, const PlacedFault& b) {
  const Target& ta = a.fault.target();
  const Target& tb = b.fault.target();
  if (a.netns != b.netns || ta.interface() != tb.interface()) return "";
  std::string hooks = SharedHooks(ta, tb);
  if (hooks.empty() || !PacketsMayOverlap(ta, tb)) return "";
  return Cat(ta.interface(), " ", hooks, " in ", a.netns_name);
}

bool Shapes(const PlacedFault& placed) { return NetemDriver::Handles(placed.fault); }

}  // namespace

bool PacketsMayOverlap(const Target& a, const Target& b) {
  kernel::TargetSpec sa = TargetSpecOf(a, 0);
  kernel::TargetSpec sb = TargetSpecOf(b, 0);
  return (ProtocolsOf(sa) & ProtocolsOf(sb)) != 0 && PortsMayOverlap(sa, sb) && PeersMayOverlap(sa, sb);
}

bool SameTarget(const Target& a, const Target& b) { return a.SerializeAsString() == b.SerializeAsString(); }

std::vector<PlacedFault> Place(const faultline::v1::Experiment& experiment) {
  std::vector<PlacedFault> placed;
  for (int i = 0; i < experiment.faults_size(); i++) {
    const Fault& fault = experiment.faults(i);
    if (!api::IsNetworkFault(fault)) continue;
    auto netns = kernel::Netns::Open(TargetNetnsPath(fault.target()));
    if (!netns.ok()) continue;
    placed.push_back(
        {experiment.id(), i, fault, {(*netns)->device(), (*netns)->inode()}, (*netns)->Describe()});
  }
  return placed;
}

absl::Status CheckComposition(const std::vector<PlacedFault>& incoming,
                              const std::vector<PlacedFault>& active) {
  for (auto fault = incoming.begin(); fault != incoming.end(); ++fault) {
    if (!Shapes(*fault)) continue;
    for (auto sibling = incoming.begin(); sibling != fault; ++sibling) {
      if (!Shapes(*sibling) || SameTarget(fault->fault.target(), sibling->fault.target())) continue;
      if (std::string where = WhereTheyMeet(*fault, *sibling); !where.empty()) {
        return absl::InvalidArgumentError(
            Cat(Name(*fault), " and ", Name(*sibling),
                " have different targets that may match the same packets on ", where,
                ": a packet takes one shaping class, so only one of them would act on it; give them "
                "the same target to compose them, or targets that do not overlap"));
      }
    }
    for (const PlacedFault& other : active) {
      if (!Shapes(other)) continue;
      std::string where = WhereTheyMeet(*fault, other);
      if (where.empty()) continue;
      std::string why =
          fault->fault.kind_case() == other.fault.kind_case()
              ? Cat("both would ", Effect(fault->fault),
                    " the same packets, but a packet takes one shaping class, so only one would")
              : Cat("a packet takes one shaping class, so only one of them would act on it; to compose "
                    "them, put both in one experiment with the same target");
      return absl::FailedPreconditionError(Cat(Name(*fault), " overlaps experiment \"", other.experiment,
                                               "\" ", Name(other), " on ", where, ": ", why));
    }
  }
  return absl::OkStatus();
}

}  // namespace faultline::faults

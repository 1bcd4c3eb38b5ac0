// Which faults can act on one interface together, decided before an experiment touches the kernel.
//
// Drops compose: every drop filter on a clsact hook sees what the filters before it let through
// (they return TC_ACT_UNSPEC), so two partitions, two eBPF losses or a drop next to shaping all hold.
// Shaping does not: a packet takes exactly one class of the device's root (its skb->priority, set by
// whichever classify filter wrote it last; at ingress, the first redirect filter that matches). Two
// shaping faults with their own classes that may match the same packet at the same hook would leave
// one of them silently without effect, so they are refused, naming both. Faults of one experiment
// with the same target share one class (NetemDriver) and are not a conflict here.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "faultline/v1/experiment.pb.h"

namespace faultline::faults {

// Whether some packet could match both targets' peers (less their excluded peers), protocol and
// ports. Peers are compared exactly, CIDR by CIDR, for IPv4 and IPv6; a target without peers matches
// every address of both families. Two port lists overlap when a port is in both, or one is empty;
// a target with ports matches TCP and UDP only. Namespace, interface and direction are not compared.
bool PacketsMayOverlap(const faultline::v1::Target& a, const faultline::v1::Target& b);

// Whether two targets are written the same, field by field: the faults then share one class.
bool SameTarget(const faultline::v1::Target& a, const faultline::v1::Target& b);

// A network fault and the namespace it acts in, by identity: /run/netns/x and /proc/PID/ns/net of a
// process inside x are one namespace.
struct PlacedFault {
  std::string experiment;  // the experiment's id
  int index = 0;           // the fault's place in it
  faultline::v1::Fault fault;
  std::pair<dev_t, ino_t> netns{};  // kernel::Netns::device(), inode()
  std::string netns_name;           // kernel::Netns::Describe(), for messages
};

// The experiment's network faults, placed. A fault whose namespace cannot be opened is left out:
// applying it fails, with the reason.
std::vector<PlacedFault> Place(const faultline::v1::Experiment& experiment);

// Refuses `incoming` (one experiment's placed faults) when one of its shaping faults may take packets
// that another shaping fault takes at the same hook of the same interface:
//   - in `active` (other experiments'): FAILED_PRECONDITION, until that experiment ends;
//   - in `incoming`, with a different target: INVALID_ARGUMENT, the experiment contradicts itself.
// The message names both faults, the interface, the direction and the namespace.
absl::Status CheckComposition(const std::vector<PlacedFault>& incoming,
                              const std::vector<PlacedFault>& active);

}  // namespace faultline::faults

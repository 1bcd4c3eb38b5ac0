// Shaping aimed at some packets: a classful root that faultline puts on a device (an interface for
// egress faults, an ifb device for ingress ones) with one class per shaping fault. BPF programs on the
// interface's clsact hooks pick out a fault's packets and set skb->priority to its class: htb and
// prio both take a packet whose priority names one of their classes straight there, before any
// filter (htb_classify, prio_classify in net/sched), so no classifier sits on the root. Unpicked
// packets take the default class, which shapes nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernel/capabilities.h"
#include "kernel/netns.h"
#include "kernel/qdisc.h"

namespace faultline::faults {

// What a class does to its packets: netem, a bandwidth limit, or both (the limit first).
struct Shaping {
  std::optional<kernel::NetemParams> netem;
  std::optional<kernel::TbfParams> bandwidth;
};

class ShapedClass;

// One device's classful root, shared by every shaping fault on it. The device's own root is taken
// when the first fault arrives and put back when the last one ends.
class ShapedDevice : public std::enable_shared_from_this<ShapedDevice> {
 public:
  static absl::StatusOr<std::shared_ptr<ShapedDevice>> Acquire(std::shared_ptr<kernel::Netns> netns,
                                                               const std::string& device,
                                                               const kernel::KernelFeatures& features);
  // The ingress side of `interface`: an ifb device named after it ("ifb-" and the interface's name,
  // cut to 15 bytes), created with the first ingress fault and deleted with the last, shaped like
  // an egress device. A redirect program on the interface's clsact ingress feeds it.
  static absl::StatusOr<std::shared_ptr<ShapedDevice>> AcquireIngress(std::shared_ptr<kernel::Netns> netns,
                                                                      const std::string& interface,
                                                                      const kernel::KernelFeatures& features);
  ~ShapedDevice();
  ShapedDevice(const ShapedDevice&) = delete;
  ShapedDevice& operator=(const ShapedDevice&) = delete;

  absl::StatusOr<std::unique_ptr<ShapedClass>> AddClass(const Shaping& shaping);
  const std::string& device() const { return device_; }
  // The ifb device's index, for an ingress device; 0 otherwise.
  int ifb_ifindex() const { return ifb_ ? ifb_->ifindex() : 0; }
  std::vector<std::string> KernelObjects() const;

 private:
  ShapedDevice(std::unique_ptr<kernel::IfbDevice> ifb, std::shared_ptr<kernel::Netns> netns,
               std::string device)
      : ifb_(std::move(ifb)), netns_(std::move(netns)), device_(std::move(device)) {}
  friend class ShapedClass;
  void Release(uint32_t minor);

  static absl::StatusOr<std::shared_ptr<ShapedDevice>> Create(std::shared_ptr<kernel::Netns> netns,
                                                              const std::string& device,
                                                              const kernel::KernelFeatures& features,
                                                              std::unique_ptr<kernel::IfbDevice> ifb);

  std::unique_ptr<kernel::IfbDevice> ifb_;  // ingress only; deleted last, after its root is gone
  std::shared_ptr<kernel::Netns> netns_;
  std::string device_;
  std::unique_ptr<kernel::Qdisc> root_;              // puts the device's original root back when destroyed
  bool prio_ = false;                                // prio where the kernel has it, htb where it does not
  uint32_t handle_ = 0;                              // the root's handle: major only
  std::vector<bool> used_;                           // class minors in use; minor 1 is the default class
  std::unique_ptr<kernel::HtbClass> default_class_;  // htb only
};

// One fault's class on a ShapedDevice, with its leaf qdiscs; removed when destroyed.
class ShapedClass {
 public:
  ~ShapedClass();
  ShapedClass(const ShapedClass&) = delete;
  ShapedClass& operator=(const ShapedClass&) = delete;

  // The value of skb->priority that sends a packet here (MAJOR:MINOR).
  uint32_t classid() const { return classid_; }
  std::vector<std::string> KernelObjects() const;

 private:
  friend class ShapedDevice;
  ShapedClass(std::shared_ptr<ShapedDevice> device, uint32_t classid)
      : device_(std::move(device)), classid_(classid) {}
  // Destroyed leaf first, then the class, then (maybe) the device's root.
  std::shared_ptr<ShapedDevice> device_;
  uint32_t classid_;
  std::unique_ptr<kernel::HtbClass> class_;
  std::unique_ptr<kernel::Qdisc> bandwidth_;
  std::unique_ptr<kernel::Qdisc> netem_;
};

}  // namespace faultline::faults

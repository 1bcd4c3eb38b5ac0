#include "faults/shaping.h"

#include <map>
#include <mutex>
#include <tuple>

#include "faultline/api/cat.h"
#include "log.h"

namespace faultline::faults {
namespace {

using api::Cat;

// What "unshaped" means for an htb class: far above any link faultline runs on (100 Gbit/s).
constexpr uint64_t kUnlimitedBytesPerSecond = 12'500'000'000ull;
constexpr uint32_t kPrioBands = 16;    // prio's maximum (TCQ_PRIO_BANDS)
constexpr uint32_t kHtbClasses = 256;  // enough faults on one device for any experiment
// Leaf qdisc majors, distinct per class: tbf 0x2000+minor, netem 0x3000+minor.
constexpr uint32_t kTbfMajor = 0x2000;
constexpr uint32_t kNetemMajor = 0x3000;

uint32_t Handle(uint32_t major, uint32_t minor = 0) { return (major << 16) | minor; }

// One ShapedDevice per (namespace, device) at a time.
using DeviceKey = std::tuple<dev_t, ino_t, std::string>;
// Recursive: a device that fails half-built is destroyed while Acquire holds the lock.
std::recursive_mutex devices_mutex;
std::map<DeviceKey, std::weak_ptr<ShapedDevice>> devices;

}  // namespace

absl::StatusOr<std::shared_ptr<ShapedDevice>> ShapedDevice::Acquire(std::shared_ptr<kernel::Netns> netns,
                                                                    const std::string& device,
                                                                    const kernel::KernelFeatures& features) {
  std::lock_guard lock(devices_mutex);
  DeviceKey key{netns->device(), netns->inode(), device};
  if (auto existing = devices[key].lock()) return existing;
  auto shaped = Create(std::move(netns), device, features, nullptr);
  if (shaped.ok()) devices[key] = *shaped;
  return shaped;
}

absl::StatusOr<std::shared_ptr<ShapedDevice>> ShapedDevice::AcquireIngress(
    std::shared_ptr<kernel::Netns> netns, const std::string& interface,
    const kernel::KernelFeatures& features) {
  std::lock_guard lock(devices_mutex);
  DeviceKey key{netns->device(), netns->inode(), "ingress of " + interface};
  if (auto existing = devices[key].lock()) return existing;
  auto ifb = kernel::IfbDevice::Create(netns, ("ifb-" + interface).substr(0, 15));
  if (!ifb.ok()) return ifb.status();
  std::string name = (*ifb)->name();
  auto shaped = Create(std::move(netns), name, features, *std::move(ifb));
  if (shaped.ok()) devices[key] = *shaped;
  return shaped;
}

absl::StatusOr<std::shared_ptr<ShapedDevice>> ShapedDevice::Create(std::shared_ptr<kernel::Netns> netns,
                                                                   const std::string& device,
                                                                   const kernel::KernelFeatures& features,
                                                                   std::unique_ptr<kernel::IfbDevice> ifb) {
  auto original = kernel::RootQdisc::Take(netns, device);
  if (!original.ok()) return original.status();
  auto shaped = std::shared_ptr<ShapedDevice>(new ShapedDevice(std::move(ifb), netns, device));
  // faultline's root must not reuse the handle of the root it replaces (RootQdisc::Restore).
  uint32_t major = (original->handle() >> 16) == 0xfa17 ? 0xfa18 : 0xfa17;
  shaped->handle_ = Handle(major);
  shaped->prio_ = features.Has("prio");
  absl::StatusOr<std::unique_ptr<kernel::Qdisc>> root =
      shaped->prio_ ? kernel::Qdisc::AddPrioRoot(netns, device, shaped->handle_, kPrioBands, &*original)
                    : kernel::Qdisc::AddHtbRoot(netns, device, shaped->handle_, 1, &*original);
  if (!root.ok()) return root.status();
  shaped->root_ = *std::move(root);
  if (!shaped->prio_) {
    auto default_class = kernel::HtbClass::Add(netns, device, shaped->handle_, Handle(major, 1),
                                               kUnlimitedBytesPerSecond, kUnlimitedBytesPerSecond);
    if (!default_class.ok()) return default_class.status();
    shaped->default_class_ = *std::move(default_class);
  }
  shaped->used_.assign((shaped->prio_ ? kPrioBands : kHtbClasses) + 1, false);
  shaped->used_[0] = shaped->used_[1] = true;  // minor 0 names no class; 1 is the default
  log::Info("kernel.shaped_device")
      .With("device", device)
      .With("netns", netns->Describe())
      .With("root", shaped->root_->Describe())
      .With("replaced", original->Describe());
  return shaped;
}

ShapedDevice::~ShapedDevice() {
  std::lock_guard lock(devices_mutex);
  std::erase_if(devices, [](const auto& entry) { return entry.second.expired(); });
  default_class_.reset();
  root_.reset();  // and the original root is back
}

absl::StatusOr<std::unique_ptr<ShapedClass>> ShapedDevice::AddClass(const Shaping& shaping) {
  uint32_t minor = 0;
  {
    std::lock_guard lock(devices_mutex);
    for (uint32_t candidate = 2; candidate < used_.size() && minor == 0; candidate++) {
      if (!used_[candidate]) minor = candidate;
    }
    if (minor == 0) {
      return absl::ResourceExhaustedError(Cat("device ", device_, " in ", netns_->Describe(), ": all ",
                                              used_.size() - 2, " shaping classes are in use"));
    }
    used_[minor] = true;
  }
  const uint32_t classid = handle_ | minor;
  auto shaped = std::unique_ptr<ShapedClass>(new ShapedClass(shared_from_this(), classid));
  uint32_t leaf_parent = classid;
  if (!prio_) {
    uint64_t rate = shaping.bandwidth ? shaping.bandwidth->rate_bytes_per_second : kUnlimitedBytesPerSecond;
    auto htb_class = kernel::HtbClass::Add(netns_, device_, handle_, classid, rate, rate);
    if (!htb_class.ok()) return htb_class.status();
    shaped->class_ = *std::move(htb_class);
  } else if (shaping.bandwidth) {
    auto tbf = kernel::Qdisc::AddTbf(netns_, device_, classid, Handle(kTbfMajor + minor), *shaping.bandwidth);
    if (!tbf.ok()) return tbf.status();
    shaped->bandwidth_ = *std::move(tbf);
    leaf_parent = Handle(kTbfMajor + minor, 1);  // tbf's one class holds its child qdisc
  }
  if (shaping.netem) {
    auto netem =
        kernel::Qdisc::AddNetem(netns_, device_, leaf_parent, Handle(kNetemMajor + minor), *shaping.netem);
    if (!netem.ok()) return netem.status();
    shaped->netem_ = *std::move(netem);
  }
  return shaped;
}

void ShapedDevice::Release(uint32_t minor) {
  std::lock_guard lock(devices_mutex);
  if (minor < used_.size()) used_[minor] = false;
}

std::vector<std::string> ShapedDevice::KernelObjects() const {
  std::vector<std::string> objects;
  if (ifb_) objects.push_back(ifb_->Describe());
  objects.push_back(Cat(root_->Describe(), " (replacing ", root_->replaced()->Describe(), ")"));
  if (default_class_) objects.push_back(default_class_->Describe() + " (unshaped default)");
  return objects;
}

ShapedClass::~ShapedClass() {
  netem_.reset();
  bandwidth_.reset();
  class_.reset();
  device_->Release(classid_ & 0xffff);
}

std::vector<std::string> ShapedClass::KernelObjects() const {
  std::vector<std::string> objects = device_->KernelObjects();
  if (class_) objects.push_back(class_->Describe());
  if (bandwidth_) objects.push_back(bandwidth_->Describe());
  if (netem_) objects.push_back(netem_->Describe());
  return objects;
}

}  // namespace faultline::faults

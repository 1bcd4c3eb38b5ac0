// Queueing disciplines, htb classes and ifb devices, through rtnetlink (libnl-route), each made inside a
// network namespace and undone there when its owner is destroyed.
//
// Handles are the kernel's 32-bit tc handles: major in the upper 16 bits, minor in the lower
// (TC_H_MAKE(1 << 16, 2) is tc's "1:2"); TC_H_ROOT names the root. Errors name the interface, the
// namespace and the kernel's reason (its extended-ack text where it gave one), e.g.
//   interface veth0 in netns /run/netns/x: cannot add netem qdisc 10: under 1:2: Specified qdisc kind is
//   unknown (ENOENT)
// and map errnos to codes by meaning: an unknown kind or missing parent is FAILED_PRECONDITION, a taken
// handle ALREADY_EXISTS, options the kernel refused INVALID_ARGUMENT, a missing device NOT_FOUND.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernel/journal.h"
#include "kernel/netem_tables.h"
#include "kernel/netns.h"

namespace faultline::kernel {

// tc's spelling of a handle: "1:", "1:2", "root", "none" (0). Hexadecimal, as tc reads and prints them.
std::string FormatTcHandle(uint32_t handle);

// Gilbert-Elliott loss: netem's NETEM_LOSS_GE, tc's "loss gemodel P R 1-H 1-K". A two-state Markov
// chain; for every packet netem first moves between the states, then drops the packet with the loss
// chance of the state it is in (loss_gilb_ell in net/sched/sch_netem.c). Percentages, 0 to 100.
// The fields are the chances that tc takes, named for what they mean: the kernel's own struct keeps
// h, the chance of delivery in the bad state (h = 100% - loss_in_bad), and k1 = loss_in_good. With
// tc's defaults (r = 100 - p, loss_in_bad = 100, loss_in_good = 0) this is Gilbert's simple model.
struct GilbertElliott {
  double p = 0;              // good -> bad, per packet
  double r = 100;            // bad -> good, per packet
  double loss_in_bad = 100;  // tc's 1-H
  double loss_in_good = 0;   // tc's 1-K
};

// Percentages are 0 to 100 and correlations percentages too (netem's "rho": how much of the previous
// draw the next one keeps). Times are in nanoseconds.
struct NetemParams {
  uint64_t latency_ns = 0;
  uint64_t jitter_ns = 0;  // at most INT32_MAX: netem's tabledist takes a 32-bit sigma
  double delay_correlation = 0;
  DelayDistribution distribution = DelayDistribution::kUniform;  // others need a jitter
  double loss_percent = 0;  // random loss; not together with gilbert_elliott
  double loss_correlation = 0;
  std::optional<GilbertElliott> gilbert_elliott;
  double duplicate_percent = 0;
  double duplicate_correlation = 0;
  double corrupt_percent = 0;
  double corrupt_correlation = 0;
  // One packet in `gap` (tc's default when 0: 1, every packet) is a candidate to skip the delay and
  // go to the head of the queue, with this chance. Needs a latency, or nothing is overtaken.
  double reorder_percent = 0;
  double reorder_correlation = 0;
  uint32_t gap = 0;
  uint64_t rate_bytes_per_second = 0;  // netem's own rate limit; 0 = none
  uint32_t limit_packets = 1000;       // netem's queue; packets beyond it are dropped
};

// Checks what the kernel would silently take but not do as asked (INVALID_ARGUMENT naming the field).
absl::Status ValidateNetemParams(const NetemParams& params);

struct TbfParams {
  uint64_t rate_bytes_per_second = 0;
  uint32_t burst_bytes = 0;  // the bucket: bytes that may pass at once after a quiet period
  uint32_t limit_bytes = 0;  // bytes that may wait for tokens; more are dropped
};

// The root qdisc an interface had before faultline replaced it, kept to be put back exactly.
//
// The kernel's default root (noqueue on veth, pfifo_fast, fq_codel or mq on NICs: a root with handle
// 0) comes back by deleting whatever root is there: the kernel then attaches its default again
// (dev_activate). A root someone added is re-created with its handle, its options exactly as the
// kernel reported them, its htb classes and the qdiscs added under it. Take() refuses
// (FAILED_PRECONDITION, saying what and why) a tree it could not re-create exactly: filters anywhere
// in it, kinds it does not know, size tables, rate estimators, netem with a jitter (the kernel never
// reports netem's distribution table), or a default root with qdiscs added under it.
class RootQdisc {
 public:
  static absl::StatusOr<RootQdisc> Take(std::shared_ptr<Netns> netns, const std::string& interface);

  // Deletes the root that is there now (with everything under it) and re-creates what was taken.
  // Destroy faultline's own qdiscs first: one with the same handle as a re-created qdisc would
  // otherwise delete it.
  absl::Status Restore() const;

  bool is_default() const { return root_handle_ == 0; }
  // The taken root's handle, 0 for the kernel's default; a replacement root must use another one.
  uint32_t handle() const { return root_handle_; }
  // "the default root (noqueue) of veth0 in netns /run/netns/x" or
  // "root tbf 1: (with 2 classes and 1 qdisc under it) of veth0 in netns /run/netns/x"
  std::string Describe() const;

  // The journal's record of it (the device, kind, handle and tree of the original), and the
  // RootQdisc such a record describes, for the replay.
  journal::RootReplaced Record() const;
  static RootQdisc FromRecord(std::shared_ptr<Netns> netns, const journal::RootReplaced& recorded);

  // One qdisc or class as the kernel dumped it, and the options to re-create it with.
  struct TcObject {
    bool is_class = false;
    std::string kind;
    uint32_t handle = 0;
    uint32_t parent = 0;
    std::vector<uint8_t> options;  // TCA_OPTIONS' payload
  };

 private:
  RootQdisc(std::shared_ptr<Netns> netns, std::string interface, int ifindex, std::string root_kind,
            uint32_t root_handle, std::vector<TcObject> objects)
      : netns_(std::move(netns)),
        interface_(std::move(interface)),
        ifindex_(ifindex),
        root_kind_(std::move(root_kind)),
        root_handle_(root_handle),
        objects_(std::move(objects)) {}
  std::shared_ptr<Netns> netns_;
  std::string interface_;
  int ifindex_;  // put back on that device, not on one re-created under its name
  std::string root_kind_;
  uint32_t root_handle_;
  std::vector<TcObject> objects_;  // in creation order: root first, parents before children
};

// A qdisc faultline added, deleted (in its namespace) when destroyed. Its children go with it.
// Added at TC_H_ROOT, a qdisc replaces the interface's root (take a RootQdisc first and pass it as
// `replacing` to have the old one put back instead), but never one with the same handle, which the
// kernel would only modify; under a class it is refused if that class already has a qdisc someone
// added. Each is journaled before it is added; a root with the RootQdisc it replaces.
class Qdisc {
 public:
  static absl::StatusOr<std::unique_ptr<Qdisc>> AddNetem(std::shared_ptr<Netns> netns,
                                                         const std::string& interface, uint32_t parent,
                                                         uint32_t handle, const NetemParams& params);
  static absl::StatusOr<std::unique_ptr<Qdisc>> AddTbf(std::shared_ptr<Netns> netns,
                                                       const std::string& interface, uint32_t parent,
                                                       uint32_t handle, const TbfParams& params);
  // An htb root; unclassified packets go to class handle:default_class_minor (0: sent unshaped).
  // `replacing`: the root taken before, put back when this one is destroyed.
  static absl::StatusOr<std::unique_ptr<Qdisc>> AddHtbRoot(std::shared_ptr<Netns> netns,
                                                           const std::string& interface, uint32_t handle,
                                                           uint32_t default_class_minor,
                                                           const RootQdisc* replacing = nullptr);
  // A prio root with `bands` bands (2 to 16), classes handle:1 to handle:bands. Every priority maps to
  // band 1, so traffic no filter classifies takes handle:1; faults go in the other bands.
  static absl::StatusOr<std::unique_ptr<Qdisc>> AddPrioRoot(std::shared_ptr<Netns> netns,
                                                            const std::string& interface, uint32_t handle,
                                                            int bands, const RootQdisc* replacing = nullptr);
  ~Qdisc();
  Qdisc(const Qdisc&) = delete;
  Qdisc& operator=(const Qdisc&) = delete;

  // Updates a netem qdisc in place (RTM_NEWQDISC without NLM_F_CREATE): queued packets stay. netem
  // keeps a delay table it was given until it gets another, so going back to uniform jitter from
  // another distribution is refused (FAILED_PRECONDITION); add a new qdisc instead.
  absl::Status ChangeNetem(const NetemParams& params);

  const std::string& kind() const { return kind_; }
  uint32_t handle() const { return handle_; }
  uint32_t parent() const { return parent_; }
  const std::string& interface() const { return interface_; }
  const Netns& netns() const { return *netns_; }
  // The root this one replaced, for a root added with `replacing`.
  const RootQdisc* replaced() const { return replaced_.get(); }
  // "netem 10: parent 1:2 on veth0 in netns /run/netns/x"
  std::string Describe() const;

 private:
  Qdisc(std::shared_ptr<Netns> netns, std::string interface, int ifindex, std::string kind, uint32_t parent,
        uint32_t handle, DelayDistribution distribution)
      : netns_(std::move(netns)),
        interface_(std::move(interface)),
        ifindex_(ifindex),
        kind_(std::move(kind)),
        parent_(parent),
        handle_(handle),
        distribution_(distribution) {}
  std::shared_ptr<Netns> netns_;
  std::string interface_;
  int ifindex_;  // changed and deleted there, even if the device is renamed
  std::string kind_;
  uint32_t parent_;
  uint32_t handle_;
  DelayDistribution distribution_;  // netem only: the table the kernel holds
  std::unique_ptr<RootQdisc> replaced_;
  JournalEntry entry_;
};

// An htb class, deleted when destroyed. Rates in bytes per second; rates of 4 GiB/s and more go in
// TCA_HTB_RATE64/CEIL64. ceil 0 means ceil = rate (no borrowing).
class HtbClass {
 public:
  static absl::StatusOr<std::unique_ptr<HtbClass>> Add(std::shared_ptr<Netns> netns,
                                                       const std::string& interface, uint32_t parent,
                                                       uint32_t classid, uint64_t rate, uint64_t ceil);
  ~HtbClass();
  HtbClass(const HtbClass&) = delete;
  HtbClass& operator=(const HtbClass&) = delete;

  uint32_t classid() const { return classid_; }
  // "htb class 1:10 parent 1: on veth0 in netns /run/netns/x"
  std::string Describe() const;

 private:
  HtbClass(std::shared_ptr<Netns> netns, std::string interface, int ifindex, uint32_t parent,
           uint32_t classid)
      : netns_(std::move(netns)),
        interface_(std::move(interface)),
        ifindex_(ifindex),
        parent_(parent),
        classid_(classid) {}
  std::shared_ptr<Netns> netns_;
  std::string interface_;
  int ifindex_;
  uint32_t parent_;
  uint32_t classid_;
  JournalEntry entry_;
};

// An ifb device faultline created, up; deleted when destroyed. Ingress faults redirect packets to it
// and shape them on its egress.
class IfbDevice {
 public:
  // ALREADY_EXISTS when the name is taken: a device faultline did not create is never adopted.
  static absl::StatusOr<std::unique_ptr<IfbDevice>> Create(std::shared_ptr<Netns> netns,
                                                           const std::string& name);
  ~IfbDevice();
  IfbDevice(const IfbDevice&) = delete;
  IfbDevice& operator=(const IfbDevice&) = delete;

  int ifindex() const { return ifindex_; }
  const std::string& name() const { return name_; }
  // "ifb device ifb-fl0 in netns /run/netns/x"
  std::string Describe() const;

 private:
  IfbDevice(std::shared_ptr<Netns> netns, std::string name, int ifindex)
      : netns_(std::move(netns)), name_(std::move(name)), ifindex_(ifindex) {}
  std::shared_ptr<Netns> netns_;
  std::string name_;
  int ifindex_;
  JournalEntry entry_;
};

// Replay (Journal::Replay) of recorded qdiscs, classes, roots and ifb devices: what was undone;
// NOT_FOUND when there was nothing left to undo (the namespace, device or object is gone); another
// error when the undo failed. A replaced root is put back only while faultline's root is still there,
// and an ifb device is deleted only if the device of that name is an ifb device.
absl::StatusOr<std::string> UndoRecordedQdisc(const journal::Qdisc& recorded);
absl::StatusOr<std::string> UndoRecordedHtbClass(const journal::HtbClass& recorded);
absl::StatusOr<std::string> UndoRecordedRoot(const journal::RootReplaced& recorded);
absl::StatusOr<std::string> UndoRecordedIfb(const journal::IfbDevice& recorded);

}  // namespace faultline::kernel

// The classify program (bpf/classify.bpf.c): shaping aimed at some peers. A classful root qdisc
// (htb, prio) shapes each fault in its own class; this program, on the interface's clsact egress
// hook, sends the fault's packets there by their priority. Ingress is shaped on an ifb device: a
// redirect program on the interface's clsact ingress picks the fault's packets, priority set, for
// its filter's mirred action to hand to the ifb.
// One instance per fault and role, with its own maps.
#pragma once

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "kernel/target_maps.h"

struct bpf_program;
struct classify;  // the bpftool skeleton

namespace faultline::kernel {

struct ClassifyStats {
  uint64_t matched = 0;  // packets classified into the fault's class, or redirected to the ifb
};

class ClassifyProgram {
 public:
  enum class Role {
    kClassifier,  // fl_classify
    kRedirect,    // fl_redirect
  };

  // fl_classify, for a clsact egress hook: a matching packet gets skb->priority = `classid`
  // (MAJOR:MINOR of a class of the device's root qdisc), which htb and prio follow before any
  // filter. The verdict is always TC_ACT_UNSPEC, so other faults' filters still see the packet.
  static absl::StatusOr<std::unique_ptr<ClassifyProgram>> LoadClassifier(const TargetSpec& target,
                                                                         uint32_t classid);
  // fl_redirect, for a redirect filter on a clsact ingress hook (TcFilter::AttachRedirect): a
  // matching packet (peer = source) gets skb->priority = `classid` (a class on the ifb's root) and
  // FL_REDIRECT_SELECT, which runs the filter's redirect to the ifb; others get FL_REDIRECT_SKIP.
  static absl::StatusOr<std::unique_ptr<ClassifyProgram>> LoadRedirect(const TargetSpec& target,
                                                                       uint32_t classid);
  // Both take an instance the installed ProgramPool loaded ahead, or load one now. This loads the
  // program of `role` only (the other would be a second verified copy of the matching code, never
  // attached), matching nothing (deadline 0): what the pool keeps.
  static absl::StatusOr<std::unique_ptr<ClassifyProgram>> Preload(Role role);
  ~ClassifyProgram();
  ClassifyProgram(const ClassifyProgram&) = delete;
  ClassifyProgram& operator=(const ClassifyProgram&) = delete;

  int fd() const;
  ClassifyStats ReadStats() const;
  // Matches nothing from now on (kernel::Disarm), attached or not.
  void Disarm();

 private:
  ClassifyProgram(classify* skeleton, bpf_program* program) : skeleton_(skeleton), program_(program) {}
  static absl::StatusOr<std::unique_ptr<ClassifyProgram>> Load(Role role, const TargetSpec& target,
                                                               uint32_t classid);
  classify* skeleton_;
  bpf_program* program_;  // the one of the skeleton's programs this instance loaded
};

}  // namespace faultline::kernel

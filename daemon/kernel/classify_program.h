// The classify program (bpf/classify.bpf.c): shaping aimed at some peers. A classful root qdisc
// (htb, prio) shapes each fault in its own class; this program, as a direct-action cls_bpf filter,
// sends the fault's packets there. Ingress is shaped on an ifb device: a redirect program on the
// interface's clsact ingress hands it the fault's packets, and a classifier on the ifb's root sorts them.
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
  // fl_classify: a matching packet gets `classid` and TC_ACT_OK; others TC_ACT_UNSPEC, so the next
  // fault's filter sees them. The kernel keeps only TC_H_MIN(classid) (skb->tc_classid is 16 bits
  // there); cls_bpf takes the major from the filter's own classid (TCA_BPF_CLASSID, which
  // bpf_tc_attach does not set), so htb needs the filter attached with classid MAJOR:0: without it
  // htb finds no class MAJOR 0 and sends every packet to its default class (measured on 6.18).
  // prio reads the minor alone. A minor of 0 is refused: it names no class. `peer_is_source`: the program
  // runs on an ifb fed by LoadRedirect's program, where the peer is the packet's source.
  static absl::StatusOr<std::unique_ptr<ClassifyProgram>> LoadClassifier(const TargetSpec& target,
                                                                         uint32_t classid,
                                                                         bool peer_is_source);
  // fl_redirect, for a clsact ingress hook: a matching packet (peer = source) is redirected to the
  // egress of the device `ifb_ifindex`; others get TC_ACT_UNSPEC.
  static absl::StatusOr<std::unique_ptr<ClassifyProgram>> LoadRedirect(const TargetSpec& target,
                                                                       int ifb_ifindex);
  ~ClassifyProgram();
  ClassifyProgram(const ClassifyProgram&) = delete;
  ClassifyProgram& operator=(const ClassifyProgram&) = delete;

  int fd() const;
  ClassifyStats ReadStats() const;

 private:
  ClassifyProgram(classify* skeleton, bpf_program* program) : skeleton_(skeleton), program_(program) {}
  classify* skeleton_;
  bpf_program* program_;  // the one of the skeleton's programs this instance loaded
};

}  // namespace faultline::kernel

#include "format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>

#include <cstdio>
#include <sstream>

#include "faultline/api/cat.h"
#include "faultline/api/units.h"
#include "faultline/api/validate.h"

namespace faultline::ctl {

using api::Cat;
using google::protobuf::util::TimeUtil;

namespace {

std::string Time(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return "-";
  google::protobuf::Timestamp whole = timestamp;
  whole.set_nanos(0);
  return TimeUtil::ToString(whole);
}

std::string Pad(const std::string& text, size_t width) {
  return text.size() >= width ? text + " " : text + std::string(width - text.size(), ' ');
}

}  // namespace

// Compact: one document per line, so streams (watch, inject --wait) read as JSON lines.
std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

std::string StateName(v1::ExperimentState state) { return v1::ExperimentState_Name(state).substr(6); }

std::string FormatCapabilities(const v1::CapabilitiesResponse& caps) {
  std::ostringstream out;
  out << "agent " << caps.agent_version() << " on kernel " << caps.kernel_release() << "\n";
  out << "max duration " << api::FormatDuration(caps.max_duration()) << "\n";
  if (caps.max_experiments() > 0) out << "max experiments " << caps.max_experiments() << "\n";
  if (caps.guarded_endpoints_size() > 0) {
    out << "never faulted (control plane):";
    for (int i = 0; i < caps.guarded_endpoints_size(); i++)
      out << (i ? ", " : " ") << caps.guarded_endpoints(i);
    out << "\n";
  }
  out << "faults:";
  for (int i = 0; i < caps.implemented_faults_size(); i++)
    out << (i ? ", " : " ") << caps.implemented_faults(i);
  out << "\nkernel features:\n";
  for (const auto& feature : caps.features()) {
    out << "  " << Pad(feature.name(), 9) << (feature.available() ? "yes  " : "no   ") << feature.detail()
        << "\n";
  }
  return out.str();
}

std::string FormatStatus(const v1::ExperimentStatus& status) {
  std::ostringstream out;
  const v1::Experiment& experiment = status.experiment();
  out << "experiment " << experiment.id() << " " << StateName(status.state());
  if (!status.reason().empty()) out << " (" << status.reason() << ")";
  out << "\n  duration " << api::FormatDuration(experiment.duration()) << ", created "
      << Time(status.created_at()) << ", expires " << Time(status.expires_at());
  if (status.has_ended_at()) out << ", ended " << Time(status.ended_at());
  out << "\n";
  if (!experiment.labels().empty()) {
    out << "  labels";
    for (const auto& [key, value] : experiment.labels()) out << " " << key << "=" << value;
    out << "\n";
  }
  // Once an experiment has ended, its kernel objects are gone; they are listed as a record.
  const char* gone = status.has_ended_at() ? " (removed)" : "";
  for (int i = 0; i < experiment.faults_size(); i++) {
    out << "  fault " << i << ": " << api::DescribeFault(experiment.faults(i)) << "\n";
    for (const auto& applied : status.faults()) {
      if (applied.index() != static_cast<uint32_t>(i)) continue;
      if (experiment.faults(i).has_memory()) {
        out << "    resident " << (applied.resident_bytes() >> 20) << " MiB\n";
      } else if (api::IsNetworkFault(experiment.faults(i))) {
        out << "    packets matched " << applied.packets_matched() << ", dropped "
            << applied.packets_dropped() << "\n";
      }
      for (const auto& object : applied.kernel_objects()) out << "    " << object << gone << "\n";
    }
  }
  return out.str();
}

std::string FormatList(const v1::ListResponse& list) {
  std::ostringstream out;
  out << Pad("ID", 24) << Pad("STATE", 10) << Pad("EXPIRES", 22) << "FAULTS\n";
  for (const auto& status : list.experiments()) {
    std::string faults;
    for (const auto& fault : status.experiment().faults()) {
      faults += (faults.empty() ? "" : ", ") + api::DescribeFault(fault);
    }
    out << Pad(status.experiment().id(), 24) << Pad(StateName(status.state()), 10)
        << Pad(Time(status.expires_at()), 22) << faults << "\n";
  }
  return out.str();
}

std::string FormatEvent(const v1::ExperimentEvent& event) {
  return Cat(TimeUtil::ToString(event.time()), " ", event.experiment_id(), " ", StateName(event.state()),
             event.reason().empty() ? "" : " (" + event.reason() + ")", "\n");
}

}  // namespace faultline::ctl

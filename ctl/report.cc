#include "report.h"

#include <ctime>

#include "faultline/api/cat.h"
#include "log.h"

namespace faultline::ctl {

using api::Cat;

const char* Verdict(int exit_code) {
  switch (exit_code) {
    case kRunHeld:
      return "held";
    case kRunError:
      return "error";
    case kRunNotSteady:
      return "not steady before injecting";
    case kRunDeviated:
      return "deviated";
    case kRunAborted:
      return "aborted";
    default:
      return "unknown";
  }
}

std::string FormatTime(SystemTime time) { return log::Timestamp(time); }

std::string EventLine(const RunEvent& event) {
  std::string line = Cat(FormatTime(event.time), " ", event.phase, " ", event.event);
  for (const auto& [key, value] : event.fields) {
    if (!value.empty()) line += Cat(" ", key, "=", value);
  }
  return line;
}

std::string EventJson(const std::string& experiment, const RunEvent& event) {
  std::string json =
      Cat("{\"time\":\"", FormatTime(event.time), "\",\"experiment\":", log::JsonQuote(experiment),
          ",\"phase\":\"", event.phase, "\",\"event\":\"", event.event, "\"");
  for (const auto& [key, value] : event.fields) {
    if (!value.empty()) json += Cat(",", log::JsonQuote(key), ":", log::JsonQuote(value));
  }
  return json + "}";
}

std::string MarkupEscape(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        // XML 1.0 has no place for other control characters, even escaped.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r') {
          escaped += '?';
        } else {
          escaped += c;
        }
    }
  }
  return escaped;
}

std::vector<std::string> SelectedAgents(const RunRecord& run) {
  std::vector<std::string> agents;
  for (const RunEvent& event : run.events) {
    if (event.phase != "select" || event.event != "agents") continue;
    auto list = event.fields.find("agents");
    if (list == event.fields.end()) continue;
    for (size_t start = 0; start <= list->second.size();) {
      size_t comma = list->second.find(',', start);
      if (comma == std::string::npos) comma = list->second.size();
      agents.push_back(list->second.substr(start, comma - start));
      start = comma + 1;
    }
  }
  return agents;
}

}  // namespace faultline::ctl

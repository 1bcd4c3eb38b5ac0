// The HTML report of faultctl runs: one file that needs nothing else (inline CSS and SVG, no script, no
// external resource), one section per run: what was tried and the verdict, a timeline of each agent's
// fault windows and each probe's samples, the agents' windows and every event as tables.
#pragma once

#include <string>
#include <vector>

#include "report.h"

namespace faultline::ctl {

// A whole HTML document titled `title`; every string taken from the records is escaped. A game day passes
// one record per step, in order.
std::string HtmlReport(const std::string& title, const std::vector<RunRecord>& runs);

}  // namespace faultline::ctl

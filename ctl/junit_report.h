// JUnit XML for CI systems (GitHub, GitLab, Jenkins show it as test results): one testsuite per run,
// and in it one testcase per phase (select, steady state before, during and after) and one per
// agent's injection. A failed check is a <failure>, an interruption or an agent's error an <error>,
// and what never came to run is <skipped> with the reason.
#pragma once

#include <string>
#include <vector>

#include "report.h"

namespace faultline::ctl {

std::string JunitReport(const std::string& name, const std::vector<RunRecord>& runs);

}  // namespace faultline::ctl

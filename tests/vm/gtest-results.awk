# Turns googletest's plain output into one line per test that ran:
#   FAULTLINE-RESULT <binary> <Suite.Test> <passed|failed|skipped> <reason>
# The reason is the first line of a GTEST_SKIP message, or "file:line: message" of the first failure.
# googletest 1.12's JSON output carries no skip message, hence the plain output.
# Runs inside the VM (busybox awk) and on the host (mawk or gawk): POSIX awk only.
# Usage: awk -v binary=NAME -f gtest-results.awk LOG

function finish(status, reason) {
  gsub(/[ \t\r]+/, " ", reason)
  sub(/ +$/, "", reason)
  if (length(reason) > 300) reason = substr(reason, 1, 297) "..."
  print "FAULTLINE-RESULT", binary, current, status, reason
  current = ""
}

{ sub(/\r$/, "") }

/^\[ RUN      \] / { current = $4; reason = ""; collecting = 0; next }
current == "" { next }

# gtest prints "file:line: Skipped" or "file:line: Failure", then the message, then a blank line.
collecting && /^\[/ { collecting = 0 }
collecting && $0 == "" { if (reason != first_words) collecting = 0; next }
collecting {
  # A skip needs one line; a failure's first line is often only "Expected equality of these values:".
  reason = (reason == first_words) ? reason $0 : reason " | " $0
  if (kind == "skip" || length(reason) > 200) collecting = 0
  next
}
reason == "" && /: (Skipped|Failure)$/ {
  kind = ($0 ~ /Skipped$/) ? "skip" : "fail"
  location = $0
  sub(/: (Skipped|Failure)$/, "", location)
  sub(/^.*\//, "", location)
  first_words = (kind == "fail") ? location ": " : ""
  reason = first_words
  collecting = 1
  next
}

/^\[       OK \] / && $4 == current { finish("passed", ""); next }
/^\[  SKIPPED \] / && $4 == current { finish("skipped", reason); next }
# A parameterized test's line goes on: "[  FAILED  ] Suite.Test/1, where GetParam() = ...".
/^\[  FAILED  \] / && ($4 == current || $4 == current ",") { finish("failed", reason); next }

END {
  if (current != "") finish("failed", "no result: the binary crashed, hung or was killed in this test " reason)
}

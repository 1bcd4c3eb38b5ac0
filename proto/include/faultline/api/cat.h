// String building for messages. Debian's Abseil is built with its own string_view, so absl::StrCat
// does not take std::string_view; this does, and prints numbers the way users write them.
#pragma once

#include <sstream>
#include <string>

namespace faultline::api {

template <typename... Parts>
std::string Cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

}  // namespace faultline::api

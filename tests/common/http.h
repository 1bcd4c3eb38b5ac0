// One HTTP exchange over TCP, for the tests of the metrics endpoint.
#pragma once

#include <cstdint>
#include <string>

namespace faultline::test {

// Connects to `host`:`port` (a numeric address), sends `request` as it is and returns everything the
// server sends until it closes the connection; "" when it cannot connect.
std::string HttpExchange(const std::string& host, uint16_t port, const std::string& request);

// The body of GET `path`, or "" (the whole response goes to the test's failure message) when the
// status is not 200.
std::string HttpGet(const std::string& host, uint16_t port, const std::string& path);

}  // namespace faultline::test

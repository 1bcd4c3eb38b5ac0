// --metrics-listen: a minimal HTTP/1.1 server on a thread of its own that answers GET /metrics with
// the registry in Prometheus' text format. One request per connection (Connection: close), one
// connection at a time, each bounded by a timeout: a scraper needs nothing more, and a slow client
// cannot hold it for long.
#pragma once

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "faultline/api/units.h"
#include "metrics.h"

namespace faultline::metrics {

class MetricsServer {
 public:
  // Binds `address` (a wildcard host listens on both families) and starts serving `registry`.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const api::HostPort& address,
                                                              const Registry& registry);
  // Stops the thread and closes the socket.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port bound: for port 0, the one the kernel picked.
  uint16_t port() const { return port_; }

 private:
  MetricsServer(int listen_fd, int stop_fd, uint16_t port, const Registry& registry);
  void Serve();
  void Answer(int connection);

  const int listen_fd_;
  const int stop_fd_;  // an eventfd: written to stop the thread
  const uint16_t port_;
  const Registry& registry_;
  std::thread thread_;
};

}  // namespace faultline::metrics

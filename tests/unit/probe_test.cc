// Steady-state probes against real sockets and processes on loopback: a tiny server thread answers
// each HTTP (and Prometheus API) request with a canned response, after an optional delay.
#include "probe.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "faultline/api/cat.h"

namespace faultline::ctl {
namespace {

using api::Cat;
using std::chrono::milliseconds;

// Listens on 127.0.0.1 (a free port) and answers each connection with `response` after `delay`,
// keeping the last request it read. Stops when destroyed.
class CannedServer {
 public:
  explicit CannedServer(std::string response, milliseconds delay = milliseconds(0))
      : response_(std::move(response)), delay_(delay) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), length), 0);
    EXPECT_EQ(listen(fd_, 8), 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedServer() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  std::string Url(const std::string& path = "/") const { return Cat("http://127.0.0.1:", port_, path); }
  uint16_t port() const { return port_; }
  std::string last_request() const { return last_request_; }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      char buffer[4096];
      ssize_t n = recv(client, buffer, sizeof(buffer), 0);
      if (n > 0) last_request_ = std::string(buffer, static_cast<size_t>(n));
      for (auto end = std::chrono::steady_clock::now() + delay_;
           std::chrono::steady_clock::now() < end && !stop_;) {
        std::this_thread::sleep_for(milliseconds(5));
      }
      if (!response_.empty()) send(client, response_.data(), response_.size(), MSG_NOSIGNAL);
      close(client);
    }
  }
  std::string response_;
  milliseconds delay_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::string last_request_;
  std::thread thread_;
};

Probe HttpProbe(const std::string& url) {
  Probe probe;
  probe.kind = Probe::Kind::kHttp;
  probe.url = url;
  probe.timeout = milliseconds(1000);
  return probe;
}

TEST(Probes, HttpIsHealthyWithItsStatusAndBody) {
  CannedServer server("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall ok\n");
  Probe probe = HttpProbe(server.Url("/health?full=1"));
  probe.body_matches = "ok$";
  ProbeResult result = RunProbe(probe);
  EXPECT_TRUE(result.healthy) << result.observed;
  EXPECT_TRUE(result.observed.starts_with("200 in ")) << result.observed;
  EXPECT_TRUE(server.last_request().starts_with("GET /health?full=1 HTTP/1.0\r\n")) << server.last_request();
  probe.body_matches = "^ready";
  EXPECT_FALSE(RunProbe(probe).healthy);
}

TEST(Probes, HttpIsUnhealthyOnAnotherStatusOrWhenSlow) {
  CannedServer unavailable("HTTP/1.1 503 Service Unavailable\r\n\r\n");
  ProbeResult result = RunProbe(HttpProbe(unavailable.Url()));
  EXPECT_FALSE(result.healthy);
  EXPECT_TRUE(result.observed.starts_with("503 in ")) << result.observed;

  CannedServer slow("HTTP/1.1 200 OK\r\n\r\n", milliseconds(300));
  Probe probe = HttpProbe(slow.Url());
  probe.max_latency = milliseconds(100);
  result = RunProbe(probe);
  EXPECT_FALSE(result.healthy);
  EXPECT_NE(result.observed.find("(over 100 ms)"), std::string::npos) << result.observed;
  ASSERT_TRUE(result.value.has_value());
  EXPECT_GE(*result.value, 300);
}

TEST(Probes, AProbeNeverTakesMuchLongerThanItsTimeout) {
  CannedServer silent("", milliseconds(5000));
  Probe probe = HttpProbe(silent.Url());
  probe.timeout = milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  ProbeResult result = RunProbe(probe);
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1000));
  EXPECT_FALSE(result.healthy);
  EXPECT_EQ(result.observed, "timed out after 200 ms");
}

TEST(Probes, TcpConnectsOrSaysWhyNot) {
  CannedServer server("");
  Probe probe;
  probe.kind = Probe::Kind::kTcp;
  probe.address = Cat("127.0.0.1:", server.port());
  ProbeResult result = RunProbe(probe);
  EXPECT_TRUE(result.healthy) << result.observed;
  EXPECT_TRUE(result.observed.starts_with("connected in ")) << result.observed;
  const uint16_t closed = server.port();
  probe.address = Cat("127.0.0.1:", closed == 1 ? 2 : 1);  // nothing listens on port 1 or 2 here
  result = RunProbe(probe);
  EXPECT_FALSE(result.healthy);
  EXPECT_EQ(result.observed, "Connection refused");
}

TEST(Probes, CommandsAreJudgedByExitStatusAndOutput) {
  Probe probe;
  probe.kind = Probe::Kind::kCommand;
  probe.command = {"sh", "-c", "echo ready; exit 0"};
  probe.output_matches = "^ready";
  EXPECT_TRUE(RunProbe(probe).healthy);
  probe.command = {"sh", "-c", "echo ready; exit 3"};
  ProbeResult result = RunProbe(probe);
  EXPECT_FALSE(result.healthy);
  EXPECT_EQ(result.observed, "exit 3");
  probe.exit_code = 3;
  EXPECT_TRUE(RunProbe(probe).healthy);
  probe.command = {"sleep", "5"};
  probe.output_matches.clear();
  probe.timeout = milliseconds(200);
  EXPECT_EQ(RunProbe(probe).observed, "timed out after 200 ms");
  probe.command = {"/nonexistent/faultline-probe"};
  EXPECT_EQ(RunProbe(probe).observed, "cannot run /nonexistent/faultline-probe");
}

TEST(Probes, PrometheusComparesTheQuerysValueWithItsBounds) {
  CannedServer vector(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
      R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764000000.1,"0.31"]}]}})");
  Probe probe;
  probe.kind = Probe::Kind::kPrometheus;
  probe.url = vector.Url("/");
  probe.query = "histogram_quantile(0.99, rate(x[1m])) > 0";
  probe.below = 0.5;
  ProbeResult result = RunProbe(probe);
  EXPECT_TRUE(result.healthy) << result.observed;
  EXPECT_EQ(result.value, 0.31);
  EXPECT_TRUE(vector.last_request().starts_with(
      "GET /api/v1/query?query=histogram_quantile%280.99%2C%20rate%28x%5B1m%5D%29%29%20%3E%200 HTTP/1.0"))
      << vector.last_request();
  probe.below.reset();
  probe.above = 0.5;
  EXPECT_FALSE(RunProbe(probe).healthy);

  CannedServer two(
      "HTTP/1.1 200 OK\r\n\r\n"
      R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}})");
  probe.url = two.Url();
  result = RunProbe(probe);
  EXPECT_FALSE(result.healthy);
  EXPECT_EQ(result.observed, "HTTP 200: the query returned 2 series, not one");
}

}  // namespace
}  // namespace faultline::ctl

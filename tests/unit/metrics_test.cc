// The metrics registry's text format (Prometheus exposition format 0.0.4) and the HTTP endpoint that
// serves it, over loopback.
#include "metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/http.h"
#include "metrics_server.h"

namespace faultline::metrics {
namespace {

TEST(MetricsTest, RendersCountersGaugesAndHistogramsInTheTextFormat) {
  Registry registry;
  Counter& errors = registry.AddCounter("test_errors_total", "Errors, by code.", "code");
  Counter& losses = registry.AddCounter("test_losses_total", "Losses.");
  Gauge& states =
      registry.AddGauge("test_experiments", "Experiments by state.", "state", {"active", "failed"});
  Histogram& latency = registry.AddHistogram("test_seconds", "Latency.", {0.1, 1, 0.01});
  errors.Increment("NOT_FOUND");
  errors.Increment("NOT_FOUND");
  errors.Increment("INTERNAL", 3);
  losses.Increment();
  states.Set("active", 2);
  latency.Observe(0.005);
  latency.Observe(0.01);  // on a bound: that bucket holds it
  latency.Observe(0.5);
  latency.Observe(7);
  EXPECT_EQ(registry.Render(),
            "# HELP test_errors_total Errors, by code.\n"
            "# TYPE test_errors_total counter\n"
            "test_errors_total{code=\"INTERNAL\"} 3\n"
            "test_errors_total{code=\"NOT_FOUND\"} 2\n"
            "# HELP test_losses_total Losses.\n"
            "# TYPE test_losses_total counter\n"
            "test_losses_total 1\n"
            "# HELP test_experiments Experiments by state.\n"
            "# TYPE test_experiments gauge\n"
            "test_experiments{state=\"active\"} 2\n"
            "test_experiments{state=\"failed\"} 0\n"
            "# HELP test_seconds Latency.\n"
            "# TYPE test_seconds histogram\n"
            "test_seconds_bucket{le=\"0.01\"} 2\n"
            "test_seconds_bucket{le=\"0.1\"} 2\n"
            "test_seconds_bucket{le=\"1\"} 3\n"
            "test_seconds_bucket{le=\"+Inf\"} 4\n"
            "test_seconds_sum 7.515\n"
            "test_seconds_count 4\n");
}

TEST(MetricsTest, CollectorsRunBeforeEachRender) {
  Registry registry;
  Gauge& gauge = registry.AddGauge("test_now", "A value read when scraped.");
  int calls = 0;
  registry.OnCollect([&] { gauge.Set("", ++calls); });
  EXPECT_NE(registry.Render().find("test_now 1\n"), std::string::npos);
  EXPECT_NE(registry.Render().find("test_now 2\n"), std::string::npos);
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  Registry registry;
  registry.AddCounter("test_total", "Line one\nline \\two", "path").Increment("/x\"y");
  EXPECT_EQ(registry.Render(),
            "# HELP test_total Line one\\nline \\\\two\n# TYPE test_total "
            "counter\ntest_total{path=\"/x\\\"y\"} 1\n");
}

TEST(MetricsTest, FormatsNumbersShortestFirst) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(42), "42");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatValue(NAN), "NaN");
}

TEST(MetricsTest, TheAgentsMetricsHaveTheirNames) {
  Registry registry;
  AgentMetrics metrics(registry);
  metrics.JournalReplayed(0, 0, 0);  // a clean start replays nothing
  metrics.JournalReplayed(2, 1, 0);
  const std::string text = registry.Render();
  for (const char* line :
       {"faultline_experiments{state=\"active\"} 0\n", "faultline_lease_losses_total 0\n",
        "faultline_journal_replays_total 1\n",
        "faultline_journal_replayed_changes_total{result=\"undone\"} 2\n",
        "faultline_journal_replayed_changes_total{result=\"nothing_to_undo\"} 1\n",
        "faultline_inject_duration_seconds_count 0\n", "faultline_revert_duration_seconds_count 0\n",
        "# TYPE faultline_errors_total counter\n", "# TYPE faultline_faults_active gauge\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line << " is not in\n" << text;
  }
}

std::string Exchange(uint16_t port, const std::string& request) {
  return test::HttpExchange("127.0.0.1", port, request);
}

TEST(MetricsServerTest, AnswersGetMetricsAndNothingElse) {
  Registry registry;
  registry.AddCounter("test_total", "A counter.").Increment();
  auto server = MetricsServer::Start({"127.0.0.1", 0}, registry);
  ASSERT_TRUE(server.ok()) << server.status();
  const uint16_t port = (*server)->port();
  ASSERT_NE(port, 0);

  const std::string body = registry.Render();
  EXPECT_EQ(Exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
  EXPECT_TRUE(Exchange(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_TRUE(Exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n").ends_with("Connection: close\r\n\r\n"));
  EXPECT_TRUE(Exchange(port, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_TRUE(
      Exchange(port, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_TRUE(Exchange(port, "nonsense\r\n\r\n").starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

TEST(MetricsServerTest, AWildcardAddressAnswersOnBothFamilies) {
  Registry registry;
  registry.AddCounter("test_total", "A counter.");
  auto server = MetricsServer::Start({"0.0.0.0", 0}, registry);
  ASSERT_TRUE(server.ok()) << server.status();
  for (const char* host : {"127.0.0.1", "::1"}) {
    EXPECT_EQ(test::HttpGet(host, (*server)->port(), "/metrics"), registry.Render()) << host;
  }
}

TEST(MetricsServerTest, RefusesAnAddressItCannotBind) {
  Registry registry;
  auto first = MetricsServer::Start({"127.0.0.1", 0}, registry);
  ASSERT_TRUE(first.ok());
  auto second = MetricsServer::Start({"127.0.0.1", (*first)->port()}, registry);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("Address already in use"), std::string::npos) << second.status();
}

}  // namespace
}  // namespace faultline::metrics

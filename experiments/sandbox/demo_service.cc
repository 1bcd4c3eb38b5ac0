// faultline-demo-service: the small service the demo and the experiment tests run faults against.
// It answers HTTP/1.0 GETs on every --listen address:
//   /health    200 "ok": the service itself is up
//   /checkout  200 when its --dependency answers /health within --dependency-timeout, else 503: the
//              part of the service a fault between it and its dependency can break
// Run one as the dependency (no --dependency) and one as the service in front of it. It stops on
// SIGTERM or SIGINT.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "faultline/api/cat.h"
#include "faultline/api/units.h"
#include "probe.h"

namespace {

using faultline::api::Cat;

struct Service {
  std::string dependency;  // HOST:PORT, or "" for none
  faultline::ctl::Milliseconds timeout{500};
};

std::string Respond(const Service& service, const std::string& request) {
  auto reply = [](int status, const char* reason, const std::string& body) {
    return Cat("HTTP/1.0 ", status, " ", reason,
               "\r\nContent-Type: text/plain\r\nContent-Length: ", body.size(),
               "\r\nConnection: close\r\n\r\n", body);
  };
  if (request.starts_with("GET /health ")) return reply(200, "OK", "ok\n");
  if (!request.starts_with("GET /checkout ")) return reply(404, "Not Found", "try /health or /checkout\n");
  if (service.dependency.empty()) return reply(200, "OK", "checkout ok (no dependency)\n");
  // The dependency's health, as a steady-state probe takes it.
  faultline::ctl::Probe probe;
  probe.kind = faultline::ctl::Probe::Kind::kHttp;
  probe.url = Cat("http://", service.dependency, "/health");
  probe.timeout = service.timeout;
  const faultline::ctl::ProbeResult result = faultline::ctl::RunProbe(probe);
  if (!result.healthy) return reply(503, "Service Unavailable", Cat("dependency: ", result.observed, "\n"));
  return reply(200, "OK", Cat("checkout ok (dependency: ", result.observed, ")\n"));
}

void Serve(const Service& service, int client) {
  timeval limit{5, 0};  // a client that sends nothing does not hold its thread for long
  setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
  std::string request;
  char buffer[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
    ssize_t got = recv(client, buffer, sizeof(buffer), 0);
    if (got <= 0) break;
    request.append(buffer, static_cast<size_t>(got));
  }
  const std::string response = Respond(service, request);
  for (size_t sent = 0; sent < response.size();) {
    ssize_t wrote = send(client, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
    if (wrote <= 0) break;
    sent += static_cast<size_t>(wrote);
  }
  close(client);
}

int Listen(const std::string& address) {
  auto parsed = faultline::api::ParseHostPort(address);
  if (!parsed.ok()) throw std::runtime_error(Cat("--listen ", address, ": ", parsed.status().message()));
  sockaddr_storage storage{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, parsed->host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(parsed->port);
    length = sizeof(*v4);
  } else if (inet_pton(AF_INET6, parsed->host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(parsed->port);
    length = sizeof(*v6);
  } else {
    throw std::runtime_error(Cat("--listen ", address, ": not an IP address and port"));
  }
  int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0 || listen(fd, 64) != 0)
    throw std::runtime_error(Cat("--listen ", address, ": ", std::strerror(errno)));
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"faultline-demo-service: a tiny HTTP service for faultline's demo and tests"};
  std::vector<std::string> listen;
  Service service;
  std::string timeout = "500ms";
  app.add_option("--listen", listen, "HOST:PORT to serve (repeatable)")->required();
  app.add_option("--dependency", service.dependency, "HOST:PORT of the service /checkout depends on");
  app.add_option("--dependency-timeout", timeout, "how long /checkout waits for its dependency")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto parsed = faultline::api::ParseDuration(timeout);
  if (!parsed.ok()) {
    std::fprintf(stderr, "faultline-demo-service: --dependency-timeout: %s\n",
                 std::string(parsed.status().message()).c_str());
    return 2;
  }
  service.timeout = faultline::ctl::Milliseconds(parsed->seconds() * 1000 + parsed->nanos() / 1'000'000);

  std::vector<int> sockets;
  try {
    for (const std::string& address : listen) sockets.push_back(Listen(address));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "faultline-demo-service: %s\n", error.what());
    return 1;
  }
  std::printf("faultline-demo-service: serving %zu address(es)%s\n", sockets.size(),
              service.dependency.empty() ? "" : Cat(", depending on ", service.dependency).c_str());
  std::fflush(stdout);
  for (int fd : sockets) {
    std::thread([fd, &service] {
      for (;;) {
        int client = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (client >= 0) std::thread(Serve, std::cref(service), client).detach();
      }
    }).detach();
  }
  // SIGTERM and SIGINT end the process by their default action; nothing needs undoing.
  for (;;) pause();
}

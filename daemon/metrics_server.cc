#include "metrics_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "faultline/api/cat.h"
#include "log.h"

namespace faultline::metrics {
namespace {

using api::Cat;

constexpr size_t kMaxRequest = 8192;  // a request line and headers; a scraper sends a few hundred bytes
constexpr timeval kIoTimeout = {2, 0};

absl::Status Errno(const std::string& what) {
  return absl::UnavailableError(Cat(what, ": ", std::strerror(errno)));
}

std::string Response(const char* status, const std::string& content_type, const std::string& body,
                     const std::string& extra_headers = {}) {
  return Cat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type, "\r\nContent-Length: ", body.size(),
             "\r\n", extra_headers, "Connection: close\r\n\r\n", body);
}

void WriteAll(int fd, const std::string& data) {
  for (size_t sent = 0; sent < data.size();) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the scraper left or timed out: nothing more to do for it
    sent += static_cast<size_t>(n);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const api::HostPort& address,
                                                                    const Registry& registry) {
  const std::string flag = Cat("--metrics-listen ", address.host, ":", address.port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(address.port);
  // A wildcard host is "::", dual-stack, as gRPC's listeners are; "0.0.0.0" where IPv6 is off.
  const bool wildcard = address.host.empty() || address.host == "0.0.0.0" || address.host == "::";
  if (int err = getaddrinfo(wildcard ? "::" : address.host.c_str(), port_text.c_str(), &hints, &found);
      err != 0) {
    return absl::InvalidArgumentError(Cat(flag, ": ", gai_strerror(err)));
  }
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 && wildcard && errno == EAFNOSUPPORT) {
    freeaddrinfo(found);
    found = nullptr;
    if (int err = getaddrinfo("0.0.0.0", port_text.c_str(), &hints, &found); err != 0) {
      return absl::InvalidArgumentError(Cat(flag, ": ", gai_strerror(err)));
    }
    fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses(found, freeaddrinfo);
  if (fd < 0) return Errno(flag);
  const int on = 1, off = 0;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  if (found->ai_family == AF_INET6 && wildcard) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 16) != 0) {
    absl::Status status = Errno(flag);
    close(fd);
    return status;
  }
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length);
  uint16_t port = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                                   : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) {
    absl::Status status = Errno("eventfd");
    close(fd);
    return status;
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(fd, stop_fd, port, registry));
}

MetricsServer::MetricsServer(int listen_fd, int stop_fd, uint16_t port, const Registry& registry)
    : listen_fd_(listen_fd), stop_fd_(stop_fd), port_(port), registry_(registry), thread_([this] {
        Serve();
      }) {}

MetricsServer::~MetricsServer() {
  const uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof(one));
  thread_.join();
  close(listen_fd_);
  close(stop_fd_);
}

void MetricsServer::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::Error("metrics.poll_failed").With("error", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    int connection = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (connection < 0) continue;  // the client left before accept; EMFILE passes with time
    setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &kIoTimeout, sizeof(kIoTimeout));
    setsockopt(connection, SOL_SOCKET, SO_SNDTIMEO, &kIoTimeout, sizeof(kIoTimeout));
    Answer(connection);
    close(connection);
  }
}

void MetricsServer::Answer(int connection) {
  std::string request;
  char buffer[1024];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequest) {
    ssize_t n = recv(connection, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    request.append(buffer, static_cast<size_t>(n));
  }
  // The request line: METHOD SP TARGET SP VERSION.
  const std::string line = request.substr(0, request.find("\r\n"));
  const size_t first_space = line.find(' ');
  const size_t second_space = line.find(' ', first_space + 1);
  if (first_space == std::string::npos || second_space == std::string::npos) {
    WriteAll(connection, Response("400 Bad Request", "text/plain", "bad request\n"));
    return;
  }
  const std::string method = line.substr(0, first_space);
  std::string target = line.substr(first_space + 1, second_space - first_space - 1);
  if (size_t query = target.find('?'); query != std::string::npos) target.resize(query);
  if (method != "GET" && method != "HEAD") {
    WriteAll(connection,
             Response("405 Method Not Allowed", "text/plain", "only GET\n", "Allow: GET, HEAD\r\n"));
    return;
  }
  if (target != "/metrics") {
    WriteAll(connection, Response("404 Not Found", "text/plain", "the metrics are at /metrics\n"));
    return;
  }
  std::string response = Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", registry_.Render());
  if (method == "HEAD") response.resize(response.find("\r\n\r\n") + 4);
  WriteAll(connection, response);
}

}  // namespace faultline::metrics

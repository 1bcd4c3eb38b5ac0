#include "probe.h"

#include <fcntl.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <regex>

#include "faultline/api/cat.h"
#include "faultline/api/units.h"

namespace faultline::ctl {
namespace {

using api::Cat;
using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

int Remaining(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// A connected TCP socket to host:port by `deadline`, or -1 with `error` set.
int Connect(const std::string& host, uint16_t port, Clock::time_point deadline, std::string& error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int err = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); err != 0) {
    error = Cat(host, ": ", gai_strerror(err));
    return -1;
  }
  int fd = -1;
  error = Cat("cannot connect to ", host, ":", port);
  for (addrinfo* address = found; address != nullptr && fd < 0; address = address->ai_next) {
    fd = socket(address->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    if (connect(fd, address->ai_addr, address->ai_addrlen) != 0 && errno != EINPROGRESS) {
      error = std::strerror(errno);
      close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int soerr = 0;
    socklen_t length = sizeof(soerr);
    if (poll(&p, 1, Remaining(deadline)) <= 0) {
      error = "timed out connecting";
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &length) != 0 || soerr != 0) {
      error = std::strerror(soerr);
    } else {
      continue;  // connected
    }
    close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  if (fd >= 0) error.clear();
  return fd;
}

struct HttpAnswer {
  int status = 0;
  std::string body;
  double milliseconds = 0;
  std::string error;  // set when there is no answer
};

// GET `url` (http://HOST[:PORT]/PATH) as HTTP/1.0, so the body comes whole, not chunked.
HttpAnswer HttpGet(const std::string& url, std::chrono::milliseconds timeout) {
  HttpAnswer answer;
  const Clock::time_point start = Clock::now(), deadline = start + timeout;
  std::string rest = url.substr(std::string_view("http://").size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash), path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (authority.find(':') == std::string::npos || authority.back() == ']') authority += ":80";
  auto host_port = api::ParseHostPort(authority);
  if (!host_port.ok()) {
    answer.error = std::string(host_port.status().message());
    return answer;
  }
  int fd = Connect(host_port->host, host_port->port, deadline, answer.error);
  if (fd < 0) return answer;
  const std::string request =
      Cat("GET ", path, " HTTP/1.0\r\nHost: ", authority, "\r\nUser-Agent: faultctl\r\n\r\n");
  std::string response;
  size_t sent = 0;
  while (sent < request.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, Remaining(deadline)) <= 0) break;
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, Remaining(deadline)) <= 0) {
      answer.error = Cat("timed out after ", timeout.count(), " ms");
      break;
    }
    char buffer[16384];
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  answer.milliseconds = MillisecondsSince(start);
  // "HTTP/1.1 200 OK\r\n...\r\n\r\nBODY"
  if (!answer.error.empty()) return answer;
  if (!response.starts_with("HTTP/") || response.find(' ') == std::string::npos) {
    answer.error = "not an HTTP answer";
    return answer;
  }
  answer.status = std::atoi(response.c_str() + response.find(' ') + 1);
  size_t body = response.find("\r\n\r\n");
  answer.body = body == std::string::npos ? "" : response.substr(body + 4);
  return answer;
}

// Whether `pattern` matches somewhere in `text`; ^ and $ match at every line's start and end.
bool Matches(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern, std::regex::ECMAScript | std::regex::multiline));
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char hex[4];
      std::snprintf(hex, sizeof(hex), "%%%02X", c);
      out += hex;
    }
  }
  return out;
}

ProbeResult Http(const Probe& probe) {
  ProbeResult result;
  HttpAnswer answer = HttpGet(probe.url, probe.timeout);
  if (!answer.error.empty()) {
    result.observed = answer.error;
    return result;
  }
  result.value = answer.milliseconds;
  result.observed = Cat(answer.status, " in ", static_cast<int>(answer.milliseconds), " ms");
  result.healthy = answer.status == probe.status;
  if (probe.max_latency.count() > 0 && answer.milliseconds > static_cast<double>(probe.max_latency.count())) {
    result.healthy = false;
    result.observed += Cat(" (over ", probe.max_latency.count(), " ms)");
  }
  if (!probe.body_matches.empty() && !Matches(answer.body, probe.body_matches)) {
    result.healthy = false;
    result.observed += Cat(", body does not match ", probe.body_matches);
  }
  return result;
}

ProbeResult Tcp(const Probe& probe) {
  ProbeResult result;
  auto host_port = api::ParseHostPort(probe.address);
  const Clock::time_point start = Clock::now();
  std::string error;
  int fd = host_port.ok() ? Connect(host_port->host, host_port->port, start + probe.timeout, error) : -1;
  if (fd < 0) {
    result.observed = host_port.ok() ? error : std::string(host_port.status().message());
    return result;
  }
  close(fd);
  result.value = MillisecondsSince(start);
  result.observed = Cat("connected in ", static_cast<int>(*result.value), " ms");
  result.healthy = true;
  return result;
}

ProbeResult Command(const Probe& probe) {
  ProbeResult result;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    result.observed = Cat("pipe: ", std::strerror(errno));
    return result;
  }
  std::vector<std::string> args = probe.command;
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const Clock::time_point start = Clock::now(), deadline = start + probe.timeout;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  std::string output;
  bool timed_out = false;
  for (;;) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, Remaining(deadline)) <= 0) {
      timed_out = true;
      break;
    }
    char buffer[4096];
    ssize_t n = read(out[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  close(out[0]);
  if (timed_out && pid > 0) kill(pid, SIGKILL);
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  if (pid < 0 || timed_out) {
    result.observed =
        pid < 0 ? Cat("fork: ", std::strerror(errno)) : Cat("timed out after ", probe.timeout.count(), " ms");
    return result;
  }
  result.value = MillisecondsSince(start);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.observed = code == 127 ? Cat("cannot run ", probe.command[0]) : Cat("exit ", code);
  result.healthy = code == probe.exit_code;
  if (!probe.output_matches.empty() && !Matches(output, probe.output_matches)) {
    result.healthy = false;
    result.observed += Cat(", output does not match ", probe.output_matches);
  }
  return result;
}

// The number an instant query answers: the only sample of a vector, or a scalar.
std::optional<double> QueryValue(const std::string& json, std::string& error) {
  google::protobuf::Struct answer;
  if (!google::protobuf::util::JsonStringToMessage(json, &answer).ok()) {
    error = "the answer is not JSON";
    return std::nullopt;
  }
  const auto& fields = answer.fields();
  if (!fields.contains("status") || fields.at("status").string_value() != "success" ||
      !fields.contains("data")) {
    error = fields.contains("error") ? fields.at("error").string_value() : "the query failed";
    return std::nullopt;
  }
  const auto& data = fields.at("data").struct_value().fields();
  const std::string type = data.contains("resultType") ? data.at("resultType").string_value() : "";
  const google::protobuf::ListValue* pair = nullptr;
  if (type == "scalar") {
    pair = &data.at("result").list_value();
  } else if (type == "vector") {
    const auto& samples = data.at("result").list_value().values();
    if (samples.size() != 1) {
      error = Cat("the query returned ", samples.size(), " series, not one");
      return std::nullopt;
    }
    pair = &samples[0].struct_value().fields().at("value").list_value();
  } else {
    error = Cat("a ", type, " result, not a scalar or a one-series vector");
    return std::nullopt;
  }
  if (pair->values_size() != 2) {
    error = "a sample without a value";
    return std::nullopt;
  }
  return std::strtod(pair->values(1).string_value().c_str(), nullptr);  // [time, "value"]
}

ProbeResult Prometheus(const Probe& probe) {
  ProbeResult result;
  std::string base = probe.url;
  while (base.ends_with('/')) base.pop_back();
  HttpAnswer answer = HttpGet(Cat(base, "/api/v1/query?query=", UrlEncode(probe.query)), probe.timeout);
  if (!answer.error.empty()) {
    result.observed = answer.error;
    return result;
  }
  std::string error;
  std::optional<double> value = QueryValue(answer.body, error);
  if (!value) {
    result.observed = Cat("HTTP ", answer.status, ": ", error);
    return result;
  }
  result.value = *value;
  result.observed = Cat(*value);
  result.healthy = (!probe.above || *value >= *probe.above) && (!probe.below || *value <= *probe.below);
  return result;
}

}  // namespace

ProbeResult RunProbe(const Probe& probe) {
  switch (probe.kind) {
    case Probe::Kind::kHttp:
      return Http(probe);
    case Probe::Kind::kTcp:
      return Tcp(probe);
    case Probe::Kind::kCommand:
      return Command(probe);
    case Probe::Kind::kPrometheus:
      return Prometheus(probe);
  }
  return {};
}

}  // namespace faultline::ctl

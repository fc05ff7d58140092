#include "loopback_bench.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "json_line.h"
#include "load_client.h"

namespace kyrodb::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kMaxEvents = 64;

// A socket that closes itself.
struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void SpinFor(double us) {
  const auto until = Clock::now() + std::chrono::nanoseconds(static_cast<int64_t>(us * 1000));
  while (Clock::now() < until) {
  }
}

// Reads what is there; calls on_message() for every `message_bytes` completed on `fd`.
template <typename F>
bool Drain(int fd, std::vector<char>& buf, size_t& pending, size_t message_bytes, F&& on_message) {
  const ssize_t n = ::read(fd, buf.data(), buf.size());
  if (n <= 0) return false;
  pending += static_cast<size_t>(n);
  while (pending >= message_bytes) {
    pending -= message_bytes;
    on_message();
  }
  return true;
}

bool WriteAll(int fd, const std::vector<char>& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;  // loopback: drains at once
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

CLI::App* AddLoopbackCommand(CLI::App* app, LoopbackBenchConfig* c) {
  CLI::App* cmd = app->add_subcommand(
      "loopback", "The loopback TCP ceiling: a minimal epoll server doing busy work per request vs a minimal client");
  cmd->add_option("--request-bytes", c->request_bytes, "Request size")->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--response-bytes", c->response_bytes, "Response size")->check(CLI::Range(1, 1 << 24));
  cmd->add_option("--work-us", c->work_us, "Busy CPU per request on the server, µs")->check(CLI::NonNegativeNumber);
  cmd->add_option("--connections", c->connections, "Connections, one request in flight each")->check(CLI::Range(1, 4096));
  cmd->add_option("--server-threads", c->server_threads, "Server threads")->check(CLI::Range(1, 256));
  cmd->add_option("--seconds", c->seconds, "Measured seconds")->check(CLI::PositiveNumber);
  cmd->add_option("--client-sched", c->client_sched, "Client thread's scheduling: batch or normal")
      ->check(CLI::IsMember({"batch", "normal"}));
  return cmd;
}

int RunLoopbackBench(const LoopbackBenchConfig& c) {
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener.fd < 0 || ::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener.fd, 4096) != 0 || ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::perror("loopback: listen");
    return 1;
  }
  std::vector<Fd> server_epolls, client_sockets, server_sockets;
  for (size_t t = 0; t < c.server_threads; ++t) server_epolls.emplace_back(::epoll_create1(0));
  const int one = 1;
  for (size_t i = 0; i < c.connections; ++i) {
    Fd s(::socket(AF_INET, SOCK_STREAM, 0));
    if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::perror("loopback: connect");
      return 1;
    }
    ::setsockopt(s.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    Fd a(::accept(listener.fd, nullptr, nullptr));
    ::setsockopt(a.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::fcntl(a.fd, F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = a.fd;
    ::epoll_ctl(server_epolls[i % c.server_threads].fd, EPOLL_CTL_ADD, a.fd, &ev);
    client_sockets.push_back(std::move(s));
    server_sockets.push_back(std::move(a));
  }

  std::atomic<bool> stop{false};
  std::vector<std::thread> servers;
  for (size_t t = 0; t < c.server_threads; ++t) {
    servers.emplace_back([&, ep = server_epolls[t].fd] {
      std::vector<char> buf(1 << 16);
      const std::vector<char> response(c.response_bytes, 'r');
      std::vector<size_t> pending(1 << 16, 0);
      epoll_event events[kMaxEvents];
      while (!stop.load(std::memory_order_relaxed)) {
        const int n = ::epoll_wait(ep, events, kMaxEvents, 100);
        for (int i = 0; i < n; ++i) {
          const int fd = events[i].data.fd;
          Drain(fd, buf, pending[static_cast<size_t>(fd)], c.request_bytes, [&] {
            SpinFor(c.work_us);
            WriteAll(fd, response);
          });
        }
      }
    });
  }

  // The client: this thread.
  if (c.client_sched == "batch") {
    sched_param param{};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
  }
  Fd ep(::epoll_create1(0));
  const std::vector<char> request(c.request_bytes, 'q');
  std::vector<char> buf(1 << 16);
  std::vector<size_t> pending(1 << 16, 0);
  for (const Fd& s : client_sockets) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = s.fd;
    ::epoll_ctl(ep.fd, EPOLL_CTL_ADD, s.fd, &ev);
    WriteAll(s.fd, request);
  }
  uint64_t responses = 0;
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(c.seconds));
  const double cpu0 = ProcessCpuSeconds(), busy0 = MachineBusyCpuSeconds();
  epoll_event events[kMaxEvents];
  while (Clock::now() < end) {
    const int n = ::epoll_wait(ep.fd, events, kMaxEvents, 100);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      Drain(fd, buf, pending[static_cast<size_t>(fd)], c.response_bytes, [&] {
        ++responses;
        WriteAll(fd, request);
      });
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = ProcessCpuSeconds() - cpu0, busy = MachineBusyCpuSeconds() - busy0;
  stop.store(true);
  for (auto& t : servers) t.join();

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const double qps = responses / seconds;
  const double cpu_us = responses ? cpu * 1e6 / responses : 0.0;
  JsonLine j;
  j.Add("bench", "loopback")
      .Add("request_bytes", static_cast<uint64_t>(c.request_bytes))
      .Add("response_bytes", static_cast<uint64_t>(c.response_bytes))
      .Add("work_us", c.work_us)
      .Add("connections", static_cast<uint64_t>(c.connections))
      .Add("server_threads", static_cast<uint64_t>(c.server_threads))
      .Add("client_sched", c.client_sched)
      .Add("seconds", seconds)
      .Add("requests_per_s", qps)
      .Add("cpu_us_per_request", cpu_us)
      .Add("overhead_us_per_request", cpu_us - c.work_us)
      .Add("cores", static_cast<uint64_t>(cores))
      .Add("other_processes_cpu_s", busy - cpu);
  if (c.work_us > 0) {
    j.Add("ceiling_ratio", qps / (cores * 1e6 / c.work_us));
  } else {
    j.AddNull("ceiling_ratio");
  }
  j.Add("note", "client and server threads in this process; cpu_us_per_request counts both; ceiling_ratio = "
                "requests_per_s / (cores * 1e6 / work_us)");
  std::printf("%s\n", j.str().c_str());
  return 0;
}

}  // namespace kyrodb::bench

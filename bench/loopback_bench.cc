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

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "json_line.h"
#include "kyrodb/v1/kyrodb.grpc.pb.h"
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

namespace pb = ::kyrodb::v1;

// A search's answer as kyrodb_server gives it for the benchmark's documents: 10 hits, each with
// an id, a score and one metadata entry.
void FillHits(pb::SearchResponse* resp) {
  for (uint64_t i = 0; i < 10; ++i) {
    pb::SearchResult* hit = resp->add_results();
    hit->set_doc_id(1000 + i);
    hit->set_score(0.9f - 0.01f * static_cast<float>(i));
    (*hit->mutable_metadata())["i"] = std::to_string(1000 + i);
  }
  resp->set_total_found(10);
  resp->set_search_path(pb::SearchResponse::COLD_TIER_ONLY);
}

// Search only, on gRPC's callback API (as kyrodb_server's GrpcService); gRPC's threads run it.
class SpinCallbackService final : public pb::KyroDBService::CallbackService {
 public:
  explicit SpinCallbackService(double work_us) : work_us_(work_us) {}
  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* ctx, const pb::SearchRequest* req,
                                   pb::SearchResponse* resp) override {
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    if (req->query_embedding_size() == 0) {
      r->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty query"));
      return r;
    }
    SpinFor(work_us_);
    FillHits(resp);
    r->Finish(grpc::Status::OK);
    return r;
  }

 private:
  const double work_us_;
};

// Search only, on the completion-queue API: one queue and thread per server thread, with
// kPostedPerQueue calls requested ahead on each.
class SpinQueueServer {
 public:
  static constexpr int kPostedPerQueue = 64;

  SpinQueueServer(double work_us, size_t threads, grpc::ServerBuilder& builder) : work_us_(work_us) {
    builder.RegisterService(&service_);
    for (size_t t = 0; t < threads; ++t) queues_.push_back(builder.AddCompletionQueue());
  }

  void Start() {
    for (auto& q : queues_) {
      for (int i = 0; i < kPostedPerQueue; ++i) Post(q.get());
      threads_.emplace_back([this, cq = q.get()] { Run(cq); });
    }
  }

  // After the server's Shutdown (or a failed start): drains the queues, deleting the calls still
  // requested, and joins. A queue must be drained before it is destroyed.
  void Stop() {
    for (auto& q : queues_) q->Shutdown();
    for (auto& t : threads_) t.join();
    if (threads_.empty()) {
      void* tag = nullptr;
      bool ok = false;
      for (auto& q : queues_) {
        while (q->Next(&tag, &ok)) delete static_cast<Call*>(tag);
      }
    }
  }

 private:
  struct Call {
    Call() : writer(&ctx) {}
    grpc::ServerContext ctx;
    pb::SearchRequest req;
    pb::SearchResponse resp;
    grpc::ServerAsyncResponseWriter<pb::SearchResponse> writer;
    bool answered = false;
  };

  void Post(grpc::ServerCompletionQueue* cq) {
    auto* call = new Call;
    service_.RequestSearch(&call->ctx, &call->req, &call->writer, cq, cq, call);
  }

  // A call's tag comes back twice: when it arrives (answer it) and when its answer is sent.
  void Run(grpc::ServerCompletionQueue* cq) {
    void* tag = nullptr;
    bool ok = false;
    while (cq->Next(&tag, &ok)) {
      auto* call = static_cast<Call*>(tag);
      if (call->answered || !ok) {
        delete call;
        continue;
      }
      Post(cq);
      call->answered = true;
      if (call->req.query_embedding_size() == 0) {
        call->writer.FinishWithError(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty query"), call);
        continue;
      }
      SpinFor(work_us_);
      FillHits(&call->resp);
      call->writer.Finish(call->resp, grpc::Status::OK, call);
    }
  }

  const double work_us_;
  pb::KyroDBService::AsyncService service_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
};

// The gRPC variants: a gRPC server in this process, the h2 load client (one thread) against it.
Result<LoopbackResult> RunGrpcLoopback(const LoopbackBenchConfig& c) {
  const bool callback = c.protocol == "grpc";
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  SpinCallbackService callback_service(c.work_us);
  std::unique_ptr<SpinQueueServer> queue_server;
  if (callback) {
    builder.RegisterService(&callback_service);
  } else {
    queue_server = std::make_unique<SpinQueueServer>(c.work_us, c.server_threads, builder);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    if (server != nullptr) server->Shutdown();
    if (queue_server) queue_server->Stop();
    return Status::IoError("loopback: the gRPC server did not start");
  }
  if (queue_server) queue_server->Start();

  const FloatMatrix queries = RandomUnitVectors(256, c.dim, 1);
  LoadSpec spec;
  spec.target = "127.0.0.1:" + std::to_string(port);
  spec.op = LoadOp::kSearch;
  spec.concurrency = c.connections;
  spec.client_threads = 1;
  spec.warmup_s = 1;
  spec.duration_s = c.seconds;
  spec.batch_scheduling = c.client_sched == "batch";
  spec.grpc_client = GrpcClient::kH2;
  spec.vectors = &queries;
  double busy0 = 0, busy = 0;
  spec.on_window_begin = [&] { busy0 = MachineBusyCpuSeconds(); };
  spec.on_window_end = [&] { busy = MachineBusyCpuSeconds() - busy0; };
  auto result = RunGrpcLoad(spec);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (queue_server) queue_server->Stop();
  if (!result.ok()) return result.status();
  LoopbackResult r;
  r.seconds = result->seconds;
  r.requests = result->requests;
  r.errors = result->errors_total;
  r.cpu_s = result->client_cpu_s;
  r.other_processes_cpu_s = busy - result->client_cpu_s;
  return r;
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
  cmd->add_option("--protocol", c->protocol,
                  "tcp (the minimal epoll server), grpc (gRPC's library, callback API) or grpc-async "
                  "(its completion-queue API, --server-threads queues)")
      ->check(CLI::IsMember({"tcp", "grpc", "grpc-async"}));
  cmd->add_option("--dim", c->dim, "gRPC: query dimension")->check(CLI::Range(1, 65536));
  return cmd;
}

namespace {

Result<LoopbackResult> RunTcpLoopback(const LoopbackBenchConfig& c) {
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener.fd < 0 || ::bind(listener.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener.fd, 4096) != 0 || ::getsockname(listener.fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Status::IoError(std::string("loopback: listen: ") + std::strerror(errno));
  }
  std::vector<Fd> server_epolls, client_sockets, server_sockets;
  for (size_t t = 0; t < c.server_threads; ++t) server_epolls.emplace_back(::epoll_create1(0));
  const int one = 1;
  for (size_t i = 0; i < c.connections; ++i) {
    Fd s(::socket(AF_INET, SOCK_STREAM, 0));
    if (::connect(s.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Status::IoError(std::string("loopback: connect: ") + std::strerror(errno));
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
  // (The calling thread's scheduling is restored on return.)
  int old_policy = SCHED_OTHER;
  sched_param old_param{};
  pthread_getschedparam(pthread_self(), &old_policy, &old_param);
  struct RestoreSched {
    int policy;
    sched_param param;
    ~RestoreSched() { pthread_setschedparam(pthread_self(), policy, &param); }
  } restore{old_policy, old_param};
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
  LoopbackResult r;
  r.seconds = seconds;
  r.requests = responses;
  r.cpu_s = cpu;
  r.other_processes_cpu_s = busy - cpu;
  return r;
}

}  // namespace

Result<LoopbackResult> RunLoopback(const LoopbackBenchConfig& c) {
  auto r = c.protocol == "tcp" ? RunTcpLoopback(c) : RunGrpcLoopback(c);
  if (!r.ok()) return r;
  r->requests_per_s = r->seconds > 0 ? r->requests / r->seconds : 0.0;
  r->cpu_us_per_request = r->requests ? r->cpu_s * 1e6 / r->requests : 0.0;
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (c.work_us > 0) r->ceiling_ratio = r->requests_per_s / (cores * 1e6 / c.work_us);
  return r;
}

int RunLoopbackBench(const LoopbackBenchConfig& c) {
  auto r = RunLoopback(c);
  if (!r.ok()) {
    std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
    return 1;
  }
  const bool tcp = c.protocol == "tcp";
  JsonLine j;
  j.Add("bench", "loopback").Add("protocol", c.protocol);
  if (tcp) {
    j.Add("request_bytes", static_cast<uint64_t>(c.request_bytes))
        .Add("response_bytes", static_cast<uint64_t>(c.response_bytes));
  }
  j.Add("work_us", c.work_us).Add("connections", static_cast<uint64_t>(c.connections));
  if (c.protocol == "grpc") {
    j.Add("server_threads", "gRPC's own");
  } else {
    j.Add("server_threads", static_cast<uint64_t>(c.server_threads));
  }
  j      .Add("client_sched", c.client_sched)
      .Add("seconds", r->seconds)
      .Add("requests_per_s", r->requests_per_s)
      .Add("errors", r->errors)
      .Add("cpu_us_per_request", r->cpu_us_per_request)
      .Add("overhead_us_per_request", r->cpu_us_per_request - c.work_us)
      .Add("cores", static_cast<uint64_t>(std::max(1u, std::thread::hardware_concurrency())))
      .Add("other_processes_cpu_s", r->other_processes_cpu_s)
      .Add("ceiling_ratio", r->ceiling_ratio);
  j.Add("note", tcp ? "client and server threads in this process; cpu_us_per_request counts both; ceiling_ratio = "
                      "requests_per_s / (cores * 1e6 / work_us)"
                    : "gRPC's C++ library serving Search (work_us of busy CPU, 10 hits) and the h2 load client in "
                      "this process; cpu_us_per_request counts both; ceiling_ratio = requests_per_s / (cores * 1e6 / "
                      "work_us)");
  std::printf("%s\n", j.str().c_str());
  return r->errors == 0 ? 0 : 1;
}

}  // namespace kyrodb::bench

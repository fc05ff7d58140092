// The Beast server: one io_context per io thread (no locks shared between threads on the
// request path), an acceptor on the first that deals connections round-robin, and one Session
// per connection that reads a request (header, then body), dispatches it on its own thread and
// writes the reply (status line and headers formatted by hand, one gathered write).
#include <utility>  // before Boost: Boost 1.74 asio needs std::exchange (BUILD-NOTES)

// GCC 12 with -fsanitize=address reports a false maybe-uninitialized in Beast 1.74's
// basic_parser::content_length_unchecked (a boost::optional returned as boost::none).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "server/http/http_server.h"

#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <charconv>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "server/http/handlers.h"
#include "server/http/request_parser.h"

namespace kyrodb::server {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using http::HandlerContext;
using http::HttpRequest;
using http::HttpResponse;
using http::RequestParser;

constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr std::chrono::seconds kWriteTimeout{60};  // writing a reply
constexpr std::chrono::seconds kLingerTimeout{5};  // draining an unread body before closing
// Request and reply strings above this capacity are released after the request.
constexpr size_t kKeepCapacityBytes = 1 << 20;

bool IsHttpParseError(const beast::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category();
}

class Session;

// One io thread: its io_context, its connections and its handler state.
struct Worker {
  explicit Worker(Service& service) : hc(service) {}
  // Declared before `ioc`: sessions destroyed with the io_context's pending handlers
  // unregister themselves here.
  std::unordered_set<Session*> sessions;  // touched on this worker's thread only
  HandlerContext hc;
  net::io_context ioc{1};
  std::thread thread;
};

}  // namespace

class HttpServer::Impl {
 public:
  explicit Impl(Service& service)
      : service_(service),
        body_limit_(service.config().server.max_body_mb << 20),
        header_limit_(service.config().limits.max_header_kb << 10),
        max_connections_(service.config().limits.max_connections),
        idle_timeout_(service.config().limits.idle_timeout_secs),
        read_timeout_(service.config().limits.read_timeout_secs) {}

  Status Start();
  void Stop(std::chrono::milliseconds drain);
  uint16_t port() const { return port_; }

  Service& service() { return service_; }
  uint64_t body_limit() const { return body_limit_; }
  uint32_t header_limit() const { return header_limit_; }
  std::chrono::seconds idle_timeout() const { return idle_timeout_; }
  std::chrono::seconds read_timeout() const { return read_timeout_; }
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  void SessionOpened() { live_.fetch_add(1, std::memory_order_relaxed); }
  void SessionClosed() {
    if (live_.fetch_sub(1, std::memory_order_acq_rel) == 1 && stopping()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
  }

 private:
  void Accept();

  Service& service_;
  const uint64_t body_limit_;
  const uint32_t header_limit_;
  const uint32_t max_connections_;     // open connections; more are closed at once
  const std::chrono::seconds idle_timeout_;  // keep-alive: waiting for a request's first byte
  const std::chrono::seconds read_timeout_;  // from the first byte to the whole request
  std::atomic<bool> stopping_{false};
  std::atomic<int> live_{0};  // open connections (Session objects)
  std::mutex mu_;             // only for cv_ during Stop
  std::condition_variable cv_;
  bool stopped_ = false;
  uint16_t port_ = 0;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
  // On workers_[0]; declared after workers_ so they are destroyed first.
  std::optional<tcp::acceptor> acceptor_;
  std::optional<net::steady_timer> accept_retry_;
  size_t next_worker_ = 0;  // acceptor thread only
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl& server, Worker& worker, tcp::socket socket)
      : server_(server),
        worker_(worker),
        stream_(std::move(socket)),
        bucket_(server.service().rate_limiter().NewConnectionBucket()) {
    server_.SessionOpened();
  }
  ~Session() {
    worker_.sessions.erase(this);
    server_.SessionClosed();
  }

  void Start() {
    if (server_.stopping()) return Close();
    worker_.sessions.insert(this);
    beast::error_code ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);
    buffer_.reserve(kReadBufferBytes);
    WaitForRequest();
  }

  // Server shutdown: a connection waiting for its next request closes now; one in the middle
  // of a request closes after replying.
  void OnStop() {
    if (idle_) Close();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

 private:
  // Between requests the connection may idle for idle_timeout; from the next request's first
  // byte, the whole request must arrive within read_timeout (a slow sender is cut off).
  void WaitForRequest() {
    if (buffer_.size() > 0) {  // pipelined: the next request has begun
      stream_.expires_after(server_.read_timeout());
      return ReadHeader();
    }
    idle_ = true;
    stream_.expires_after(server_.idle_timeout());
    stream_.async_read_some(buffer_.prepare(kReadBufferBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->idle_ = false;
                              if (ec) return self->OnReadError(ec);
                              self->buffer_.commit(n);
                              self->stream_.expires_after(self->server_.read_timeout());
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    parser_.emplace(&req_);
    parser_->body_limit(server_.body_limit());
    parser_->header_limit(server_.header_limit());
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = shared_from_this()](beast::error_code ec, size_t) {
                               self->OnHeader(ec);
                             });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    started_ = std::chrono::steady_clock::now();
    if (parser_->is_done()) return Handle();
    if (parser_->expect_continue()) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = shared_from_this()](beast::error_code wec, size_t) {
                         if (wec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->OnReadError(ec);
                        self->Handle();
                      });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::body_limit) {
      return Reply(Endpoint::kOther,
                   {ErrorCode::kPayloadTooLarge,
                    "request body is larger than the limit of " +
                        std::to_string(server_.body_limit() >> 20) + " MiB (server.max_body_mb)"});
    }
    if (ec == bhttp::error::header_limit) {
      return Reply(Endpoint::kOther,
                   {ErrorCode::kInvalidArgument,
                    "request header is larger than " + std::to_string(server_.header_limit() >> 10) +
                        " KiB (limits.max_header_kb)"});
    }
    if (IsHttpParseError(ec) && ec != bhttp::error::end_of_stream &&
        ec != bhttp::error::partial_message) {
      return Reply(Endpoint::kOther,
                   {ErrorCode::kInvalidArgument, "malformed HTTP request: " + ec.message()});
    }
    Close();  // end of stream, timeout, reset, shutdown
  }

  // Answers an error the connection cannot recover from (the rest of the request is unread):
  // the reply says Connection: close and the unread input is drained before closing.
  void Reply(Endpoint endpoint, const ApiError& error) {
    if (started_ == std::chrono::steady_clock::time_point{}) {
      started_ = std::chrono::steady_clock::now();
    }
    resp_.body.clear();
    resp_.allow = {};
    resp_.retry_after = 0;
    head_request_ = false;
    http::WriteError(error, resp_);
    Record(endpoint);
    Write(/*close=*/true, /*linger=*/true);
  }

  void Handle() {
    resp_.status = 200;
    resp_.content_type = "application/json";
    resp_.allow = {};
    resp_.retry_after = 0;
    resp_.body.clear();
    // HEAD is GET without the body (the reply keeps GET's Content-Length).
    head_request_ = req_.method == bhttp::verb::head;
    if (head_request_) req_.method = bhttp::verb::get;
    Endpoint endpoint = Endpoint::kOther;
    try {
      endpoint = http::Dispatch(worker_.hc, req_, resp_, bucket_.get());
    } catch (const std::exception& e) {  // bad_alloc and the like: never leave the thread
      resp_.body.clear();
      resp_.allow = {};
      http::WriteError({ErrorCode::kInternal, std::string("internal error: ") + e.what()}, resp_);
    }
    Record(endpoint);
    if (req_.body.capacity() > kKeepCapacityBytes) std::string().swap(req_.body);
    Write(/*close=*/!parser_->keep_alive() || server_.stopping(), /*linger=*/false);
  }

  void Record(Endpoint endpoint) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
    server_.service().metrics().Record(Transport::kHttp, endpoint, seconds, resp_.status >= 400);
    started_ = {};
  }

  void Write(bool close, bool linger) {
    head_.clear();
    head_.append("HTTP/1.1 ");
    AppendNumber(static_cast<uint64_t>(resp_.status));
    head_.push_back(' ');
    const beast::string_view reason = bhttp::obsolete_reason(bhttp::int_to_status(
        static_cast<unsigned>(resp_.status)));
    head_.append(reason.data(), reason.size());
    head_.append("\r\nContent-Type: ");
    head_.append(resp_.content_type);
    head_.append("\r\nContent-Length: ");
    AppendNumber(resp_.body.size());
    if (!resp_.allow.empty()) {
      head_.append("\r\nAllow: ");
      head_.append(resp_.allow);
    }
    if (resp_.retry_after > 0) {
      head_.append("\r\nRetry-After: ");
      AppendNumber(static_cast<uint64_t>(resp_.retry_after));
    }
    if (resp_.status == 401) head_.append("\r\nWWW-Authenticate: Bearer");
    if (close) {
      head_.append("\r\nConnection: close");
    } else if (req_.version == 10) {
      head_.append("\r\nConnection: keep-alive");
    }
    head_.append("\r\n\r\n");
    stream_.expires_after(kWriteTimeout);
    const std::array<net::const_buffer, 2> buffers = {
        net::buffer(head_), head_request_ ? net::const_buffer() : net::buffer(resp_.body)};
    net::async_write(stream_, buffers,
                     [self = shared_from_this(), close, linger](beast::error_code ec, size_t) {
                       self->OnWrite(ec, close, linger);
                     });
  }

  void OnWrite(beast::error_code ec, bool close, bool linger) {
    if (resp_.body.capacity() > kKeepCapacityBytes) std::string().swap(resp_.body);
    if (ec) return Close();
    if (linger) return Linger();
    if (close) return Close();
    if (server_.stopping()) return Close();
    WaitForRequest();
  }

  // After an error reply with unread input: half-close, then discard what the client still
  // sends (until it closes or kLingerTimeout), so it reads our reply instead of a reset.
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    buffer_.clear();
    stream_.expires_after(kLingerTimeout);
    DiscardInput();
  }

  void DiscardInput() {
    stream_.async_read_some(buffer_.prepare(kReadBufferBytes),
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              if (ec) return self->Close();
                              self->DiscardInput();
                            });
  }

  void AppendNumber(uint64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof(buf), v);
    head_.append(buf, r.ptr);
  }

  HttpServer::Impl& server_;
  Worker& worker_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::unique_ptr<TokenBucket> bucket_;  // this connection's rate limit (null: none)
  std::optional<RequestParser> parser_;
  HttpRequest req_;
  HttpResponse resp_;
  std::string head_;
  bool idle_ = false;          // waiting for the first byte of a request
  bool head_request_ = false;  // the request being answered is a HEAD
  std::chrono::steady_clock::time_point started_{};
};

}  // namespace

Status HttpServer::Impl::Start() {
  const ServerConfig::Server& cfg = service_.config().server;
  if (service_.config().tls.enabled) {
    // Never serve plaintext when TLS was asked for.
    return Status::NotSupported("HTTP server: tls.enabled is set, but HTTPS is not built yet");
  }
  const uint32_t threads = std::max<uint32_t>(1, cfg.http_threads);
  for (uint32_t i = 0; i < threads; ++i) workers_.push_back(std::make_unique<Worker>(service_));
  if (cfg.http_port > 65535) {
    return Status::InvalidArgument("server.http_port " + std::to_string(cfg.http_port) +
                                   " is not a TCP port");
  }

  net::io_context& ioc = workers_[0]->ioc;
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  const auto endpoints = resolver.resolve(cfg.bind, std::to_string(cfg.http_port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service,
                                          ec);
  if (ec || endpoints.empty()) {
    return Status::InvalidArgument("server.bind '" + cfg.bind +
                                   "' is not an address of this host: " + ec.message());
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  const std::string where = cfg.bind + ":" + std::to_string(cfg.http_port);
  acceptor_.emplace(ioc);
  if (acceptor_->open(endpoint.protocol(), ec)) {
    return Status::IoError("HTTP server: cannot open a socket for " + where + ": " + ec.message());
  }
  acceptor_->set_option(net::socket_base::reuse_address(true), ec);
  if (acceptor_->bind(endpoint, ec)) {
    return Status::IoError("HTTP server: cannot bind " + where + ": " + ec.message() +
                           " (server.http_port)");
  }
  if (acceptor_->listen(net::socket_base::max_listen_connections, ec)) {
    return Status::IoError("HTTP server: cannot listen on " + where + ": " + ec.message());
  }
  port_ = acceptor_->local_endpoint(ec).port();
  accept_retry_.emplace(ioc);
  Accept();
  for (auto& w : workers_) {
    guards_.push_back(net::make_work_guard(w->ioc));
    Worker* worker = w.get();
    worker->thread = std::thread([worker] { worker->ioc.run(); });
  }
  spdlog::info("HTTP server listening on {}:{} ({} io threads, body limit {} MiB)", cfg.bind,
               port_, threads, cfg.max_body_mb);
  return Status::Ok();
}

void HttpServer::Impl::Accept() {
  Worker& worker = *workers_[next_worker_];
  next_worker_ = (next_worker_ + 1) % workers_.size();
  acceptor_->async_accept(worker.ioc, [this, &worker](beast::error_code ec, tcp::socket socket) {
    if (stopping() || ec == net::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors and the like: retry shortly instead of spinning.
      spdlog::warn("HTTP server: accept failed: {}", ec.message());
      accept_retry_->expires_after(std::chrono::milliseconds(50));
      accept_retry_->async_wait([this](beast::error_code wec) {
        if (!wec && !stopping()) Accept();
      });
      return;
    }
    if (live_.load(std::memory_order_relaxed) >= static_cast<int>(max_connections_)) {
      spdlog::warn("HTTP server: {} connections open (limits.max_connections); closing a new one",
                   max_connections_);
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      // Counted from here; it runs on its worker's thread from Start() on.
      auto session = std::make_shared<Session>(*this, worker, std::move(socket));
      net::post(worker.ioc, [session = std::move(session)] { session->Start(); });
    }
    Accept();
  });
}

void HttpServer::Impl::Stop(std::chrono::milliseconds drain) {
  if (stopped_) return;
  stopped_ = true;
  const auto deadline = std::chrono::steady_clock::now() + drain;
  stopping_.store(true);
  if (!workers_.empty() && acceptor_) {
    net::post(workers_[0]->ioc, [this] {
      beast::error_code ec;
      acceptor_->close(ec);
      accept_retry_->cancel();
    });
    for (auto& w : workers_) {
      Worker* worker = w.get();
      net::post(worker->ioc, [worker] {
        for (Session* s : worker->sessions) s->OnStop();
      });
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, deadline, [this] { return live_.load() == 0; });
    }
    // Whatever is still open after the drain period is closed.
    for (auto& w : workers_) {
      Worker* worker = w.get();
      net::post(worker->ioc, [worker] {
        for (Session* s : worker->sessions) s->Close();
      });
    }
  }
  guards_.clear();
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
  accept_retry_.reset();
  acceptor_.reset();
  workers_.clear();  // destroys sessions whose handlers never ran
  spdlog::info("HTTP server stopped");
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(std::chrono::milliseconds(0)); }

Result<std::unique_ptr<HttpServer>> HttpServer::Start(Service& service) {
  auto impl = std::make_unique<Impl>(service);
  Status st = impl->Start();
  if (!st.ok()) {
    impl->Stop(std::chrono::milliseconds(0));
    return st;
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

uint16_t HttpServer::port() const { return impl_->port(); }

void HttpServer::Stop(std::chrono::milliseconds drain) { impl_->Stop(drain); }

}  // namespace kyrodb::server

// The Beast server: one io_context per io thread (no locks shared between threads on the
// request path), an acceptor on the first that deals connections round-robin, and one Session
// per connection that reads a request (header, then body), dispatches it on its own thread and
// writes the reply (status line and headers formatted by hand, one gathered write).
#include <utility>  // before Boost: Boost 1.74 asio needs std::exchange (BUILD-NOTES)

// GCC 12 with -fsanitize=address reports a false maybe-uninitialized in Beast 1.74's
// basic_parser::content_length_unchecked (a boost::optional returned as boost::none).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// TLS (issue #6) and asynchronous completion (deferred requests, the blocking pool).
#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <type_traits>

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

// What Stop() needs of a connection, whatever its stream (plain TCP or TLS).
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void OnStop() = 0;
  virtual void Close() = 0;
};

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// One io thread: its io_context, its connections and its handler state.
struct Worker {
  explicit Worker(Service& service) : hc(service) {}
  // Declared before `ioc`: sessions destroyed with the io_context's pending handlers
  // unregister themselves here.
  std::unordered_set<SessionBase*> sessions;  // touched on this worker's thread only
  HandlerContext hc;
  net::io_context ioc{1};
  std::thread thread;
};

// A few threads for long blocking Service calls (flush, snapshot, bulk insert), so that they
// never hold an io thread. Tasks run in FIFO order; Stop() runs what is queued, then joins.
class BlockingPool {
 public:
  explicit BlockingPool(size_t threads) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
  }
  ~BlockingPool() { Stop(); }

  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
  std::vector<std::thread> threads_;
};

constexpr size_t kBlockingThreads = 2;
constexpr size_t kMaxInsertBatch = 512;  // documents per group commit (as gRPC)

}  // namespace

class HttpServer::Impl {
 public:
  explicit Impl(Service& service)
      : service_(service),
        body_limit_(service.config().server.max_body_mb << 20),
        header_limit_(service.config().limits.max_header_kb << 10),
        max_connections_(service.config().limits.max_connections),
        idle_timeout_(service.config().limits.idle_timeout_secs),
        read_timeout_(service.config().limits.read_timeout_secs),
        batcher_(service, kMaxInsertBatch) {}

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
  // A request waiting for the batcher or the blocking pool; ended once its reply is posted
  // back to its io_context (Stop keeps the io_contexts alive until then).
  void DeferStarted() { pending_.fetch_add(1, std::memory_order_relaxed); }
  void DeferEnded() {
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1 && stopping()) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
  }

 private:
  void Accept();
  Status SetUpTls();

  Service& service_;
  const uint64_t body_limit_;
  const uint32_t header_limit_;
  const uint32_t max_connections_;     // open connections; more are closed at once
  const std::chrono::seconds idle_timeout_;  // keep-alive: waiting for a request's first byte
  const std::chrono::seconds read_timeout_;  // from the first byte to the whole request
  std::atomic<bool> stopping_{false};
  std::atomic<int> live_{0};  // open connections (Session objects)
  std::atomic<int> pending_{0};  // deferred requests not yet posted back
  InsertBatcher batcher_;
  std::unique_ptr<BlockingPool> blocking_;
  std::optional<net::ssl::context> ssl_;  // tls.enabled
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

// One connection over Stream: beast::tcp_stream (plain HTTP) or TlsStream (HTTPS).
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // `extra`: the ssl::context for TlsStream.
  template <typename... Extra>
  Session(HttpServer::Impl& server, Worker& worker, tcp::socket socket, Extra&... extra)
      : server_(server),
        worker_(worker),
        stream_(std::move(socket), extra...),
        bucket_(server.service().rate_limiter().NewConnectionBucket()) {
    server_.SessionOpened();
  }
  ~Session() override {
    worker_.sessions.erase(this);
    server_.SessionClosed();
  }

  void Start() {
    if (server_.stopping()) return Close();
    worker_.sessions.insert(this);
    beast::error_code ec;
    Tcp().socket().set_option(tcp::no_delay(true), ec);
    buffer_.reserve(kReadBufferBytes);
    if constexpr (kTls) {
      // The handshake is part of the first request: it must finish within read_timeout.
      Tcp().expires_after(server_.read_timeout());
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code hec) {
                                if (hec) {
                                  spdlog::debug("HTTPS: TLS handshake failed: {}", hec.message());
                                  return self->Close();
                                }
                                self->WaitForRequest();
                              });
    } else {
      WaitForRequest();
    }
  }

  // Server shutdown: a connection waiting for its next request closes now; one in the middle
  // of a request closes after replying.
  void OnStop() override {
    if (idle_) Close();
  }

  // TLS: no close_notify; the client sees the TCP close (every reply was written whole).
  void Close() override {
    beast::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_both, ec);
    Tcp().close();
  }

 private:
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }

  // Between requests the connection may idle for idle_timeout; from the next request's first
  // byte, the whole request must arrive within read_timeout (a slow sender is cut off).
  void WaitForRequest() {
    if (buffer_.size() > 0) {  // pipelined: the next request has begun
      Tcp().expires_after(server_.read_timeout());
      return ReadHeader();
    }
    idle_ = true;
    Tcp().expires_after(server_.idle_timeout());
    stream_.async_read_some(buffer_.prepare(kReadBufferBytes),
                            [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                              self->idle_ = false;
                              if (ec) return self->OnReadError(ec);
                              self->buffer_.commit(n);
                              self->Tcp().expires_after(self->server_.read_timeout());
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    parser_.emplace(&req_);
    parser_->body_limit(server_.body_limit());
    parser_->header_limit(server_.header_limit());
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, size_t) {
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
                       [self = this->shared_from_this()](beast::error_code wec, size_t) {
                         if (wec) return self->Close();
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
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
    deferred_ = false;
    worker_.hc.defer = [this] { return Defer(); };
    try {
      endpoint = http::Dispatch(worker_.hc, req_, resp_, bucket_.get());
    } catch (const std::exception& e) {  // bad_alloc and the like: never leave the thread
      if (!deferred_) {
        resp_.body.clear();
        resp_.allow = {};
        http::WriteError({ErrorCode::kInternal, std::string("internal error: ") + e.what()},
                         resp_);
      }
    }
    worker_.hc.defer = nullptr;
    if (deferred_) {  // the reply comes later (Resume): read nothing more until then
      endpoint_ = endpoint;
      return;
    }
    Finish(endpoint);
  }

  void Finish(Endpoint endpoint) {
    Record(endpoint);
    if (req_.body.capacity() > kKeepCapacityBytes) std::string().swap(req_.body);
    Write(/*close=*/!parser_->keep_alive() || server_.stopping(), /*linger=*/false);
  }

  // The handler completes later: the returned function posts its reply back to this
  // connection's thread. It holds the session alive and hands that reference over to the io
  // thread, so the session is never destroyed on the completing thread.
  http::ResumeReply Defer() {
    deferred_ = true;
    server_.DeferStarted();
    return [self = this->shared_from_this()](http::FillReply fill) mutable {
      HttpServer::Impl& server = self->server_;
      net::io_context& ioc = self->worker_.ioc;
      net::post(ioc, [self = std::move(self), fill = std::move(fill)] {
        self->Resumed(fill);
      });
      server.DeferEnded();
    };
  }

  void Resumed(const http::FillReply& fill) {
    deferred_ = false;
    try {
      fill(resp_);
    } catch (const std::exception& e) {
      resp_.body.clear();
      http::WriteError({ErrorCode::kInternal, std::string("internal error: ") + e.what()}, resp_);
    }
    Finish(endpoint_);
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
    Tcp().expires_after(kWriteTimeout);
    const std::array<net::const_buffer, 2> buffers = {
        net::buffer(head_), head_request_ ? net::const_buffer() : net::buffer(resp_.body)};
    net::async_write(stream_, buffers,
                     [self = this->shared_from_this(), close, linger](beast::error_code ec, size_t) {
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
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    buffer_.clear();
    Tcp().expires_after(kLingerTimeout);
    DiscardInput();
  }

  void DiscardInput() {
    stream_.async_read_some(buffer_.prepare(kReadBufferBytes),
                            [self = this->shared_from_this()](beast::error_code ec, size_t) {
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
  Stream stream_;
  beast::flat_buffer buffer_;
  std::unique_ptr<TokenBucket> bucket_;  // this connection's rate limit (null: none)
  std::optional<RequestParser> parser_;
  HttpRequest req_;
  HttpResponse resp_;
  std::string head_;
  bool idle_ = false;          // waiting for the first byte of a request
  bool head_request_ = false;  // the request being answered is a HEAD
  bool deferred_ = false;      // the request being handled completes later
  Endpoint endpoint_ = Endpoint::kOther;  // of the deferred request
  std::chrono::steady_clock::time_point started_{};
};

}  // namespace

Status HttpServer::Impl::Start() {
  const ServerConfig::Server& cfg = service_.config().server;
  if (service_.config().tls.enabled) {
    // Never serve plaintext when TLS was asked for: a bad certificate fails Start().
    if (Status st = SetUpTls(); !st.ok()) return st;
  }
  blocking_ = std::make_unique<BlockingPool>(kBlockingThreads);
  const uint32_t threads = std::max<uint32_t>(1, cfg.http_threads);
  for (uint32_t i = 0; i < threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(service_));
    HandlerContext& hc = workers_.back()->hc;
    hc.insert_batcher = &batcher_;
    hc.run_blocking = [pool = blocking_.get()](std::function<void()> task) {
      pool->Post(std::move(task));
    };
  }
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
  spdlog::info("HTTP server listening on {}:{} ({}, {} io threads, body limit {} MiB)", cfg.bind,
               port_, ssl_ ? "HTTPS" : "plain HTTP", threads, cfg.max_body_mb);
  return Status::Ok();
}

namespace {

// Clear message when a TLS file cannot be read at all (OpenSSL's own errors are cryptic).
Status CheckReadable(const char* key, const std::string& path) {
  std::ifstream f(path);
  if (!f) {
    return Status::InvalidArgument(std::string("HTTP server: cannot read ") + key + " '" + path +
                                   "': " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace

Status HttpServer::Impl::SetUpTls() {
  const ServerConfig::Tls& tls = service_.config().tls;
  if (tls.cert_file.empty() || tls.key_file.empty()) {
    return Status::InvalidArgument("HTTP server: tls.enabled needs tls.cert_file and tls.key_file");
  }
  if (Status st = CheckReadable("tls.cert_file", tls.cert_file); !st.ok()) return st;
  if (Status st = CheckReadable("tls.key_file", tls.key_file); !st.ok()) return st;
  ssl_.emplace(net::ssl::context::tls_server);
  ssl_->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                    net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                    net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  SSL_CTX_set_min_proto_version(ssl_->native_handle(), TLS1_2_VERSION);
  beast::error_code ec;
  ssl_->use_certificate_chain_file(tls.cert_file, ec);
  if (ec) {
    return Status::InvalidArgument("HTTP server: tls.cert_file '" + tls.cert_file +
                                   "' is not a PEM certificate chain: " + ec.message());
  }
  ssl_->use_private_key_file(tls.key_file, net::ssl::context::pem, ec);
  if (ec) {
    return Status::InvalidArgument("HTTP server: tls.key_file '" + tls.key_file +
                                   "' is not a PEM private key: " + ec.message());
  }
  if (SSL_CTX_check_private_key(ssl_->native_handle()) != 1) {
    return Status::InvalidArgument("HTTP server: tls.key_file '" + tls.key_file +
                                   "' does not match the certificate in tls.cert_file '" +
                                   tls.cert_file + "'");
  }
  if (!tls.ca_file.empty()) {
    if (Status st = CheckReadable("tls.ca_file", tls.ca_file); !st.ok()) return st;
    ssl_->load_verify_file(tls.ca_file, ec);
    if (ec) {
      return Status::InvalidArgument("HTTP server: tls.ca_file '" + tls.ca_file +
                                     "' is not a PEM CA bundle: " + ec.message());
    }
    // Mutual TLS: a client without a certificate signed by tls.ca_file fails the handshake.
    ssl_->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
  }
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
      if (ssl_) {
        auto session =
            std::make_shared<Session<TlsStream>>(*this, worker, std::move(socket), *ssl_);
        net::post(worker.ioc, [session = std::move(session)] { session->Start(); });
      } else {
        auto session = std::make_shared<Session<beast::tcp_stream>>(*this, worker, std::move(socket));
        net::post(worker.ioc, [session = std::move(session)] { session->Start(); });
      }
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
        for (SessionBase* s : worker->sessions) s->OnStop();
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
        for (SessionBase* s : worker->sessions) s->Close();
      });
    }
  }
  {
    // Deferred requests (a group commit, a snapshot) always finish; their replies must be
    // posted to io_contexts that still exist.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return pending_.load() == 0; });
  }
  if (blocking_) blocking_->Stop();
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

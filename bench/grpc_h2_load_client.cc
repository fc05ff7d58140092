// RunGrpcH2Load: the gRPC load generator without the gRPC library. Each client is one TCP
// connection speaking HTTP/2 through nghttp2 (framing, HPACK, flow control) with one unary call
// in flight: a POST to /kyrodb.v1.KyroDBService/<Method> whose body is the length-prefixed
// protobuf message (gRPC's wire format: 1 flag byte, 4-byte big-endian length, message), and
// whose answer is checked like any gRPC client does: HTTP status 200, grpc-status 0 in the
// trailers, a response message that parses, no application error in it.
//
// Why it exists: on a machine the client shares with the server, the load generator's own CPU
// is taken from the server. gRPC's C++ client library costs 35-75 µs of CPU per call here and
// makes the server's side dearer too (BDP pings, separate writes for headers and data, window
// updates); this client costs ~15 µs and sends each call as one write. It measures the server,
// as h2load or ghz would; `--grpc-client grpcpp` keeps the library client for comparison.
//
// `client_threads` threads each run an epoll loop over their connections (round-robin). A call
// that gets no answer within kRequestTimeout, a reset stream or a broken connection counts as an
// error and the client reconnects.
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "grpc_messages.h"
#include "http_request.h"
#include "kyrodb/v1/kyrodb.pb.h"
#include "load_client.h"
#include "load_run.h"

namespace kyrodb::bench {
namespace {

namespace pb = kyrodb::v1;

constexpr std::chrono::seconds kRequestTimeout{30};
constexpr int kPollMillis = 200;  // how often a thread looks for calls past their deadline
constexpr size_t kReadBytes = 64 * 1024;
// Our receive windows: large, so the server's responses never wait for a WINDOW_UPDATE and we
// send few of them.
constexpr int32_t kStreamWindow = 1 << 20;
constexpr int32_t kConnectionWindow = 1 << 24;

// A message in gRPC's length-prefixed framing (uncompressed).
std::string GrpcFrame(const google::protobuf::MessageLite& m) {
  const size_t n = m.ByteSizeLong();
  std::string out(5 + n, '\0');
  const uint32_t be = htonl(static_cast<uint32_t>(n));
  std::memcpy(out.data() + 1, &be, 4);
  m.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out.data() + 5));
  return out;
}

nghttp2_nv Header(const char* name, const std::string& value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name),
                    value.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
}

// What every client of a run shares: the address, header values, the pre-framed searches.
struct Shared {
  sockaddr_storage address{};
  socklen_t address_len = 0;
  std::string authority;
  std::string search_path = "/kyrodb.v1.KyroDBService/Search";
  std::string insert_path = "/kyrodb.v1.KyroDBService/Insert";
  std::string query_path = "/kyrodb.v1.KyroDBService/Query";
  std::string scheme = "http", method = "POST", content_type = "application/grpc";
  std::string te = "trailers", timeout = "30S";
  std::vector<std::string> searches;  // framed SearchRequests, one per vector row
};

class Client {
 public:
  Client(LoadRun& run, const Shared& shared, uint64_t seed)
      : run_(run), shared_(shared), rng_(seed), m_(run.spec()) {}
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() { Close(); }

  // Opens the connection (blocking connect, then non-blocking) and registers it with `epoll`.
  Status Connect(int epoll) {
    epoll_ = epoll;
    fd_ = ::socket(shared_.address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return Status::IoError(fmt::format("socket: {}", std::strerror(errno)));
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&shared_.address), shared_.address_len) != 0) {
      const int e = errno;
      Close();
      return Status::IoError(fmt::format("gRPC: cannot connect to {}: {}", shared_.authority, std::strerror(e)));
    }
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);

    nghttp2_session_callbacks* cbs = nullptr;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnStreamClose);
    const int rv = nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) return Status::Internal(fmt::format("nghttp2: {}", nghttp2_strerror(rv)));
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                               {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, kStreamWindow}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);

    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = this;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd_, &ev);
    return Status::Ok();
  }

  bool stopped() const { return stopped_; }

  // Starts the next call; when the run is over, stops the client instead.
  void Issue() {
    if (run_.stopped()) {
      Stop();
      return;
    }
    kind_ = run_.NextKind(rng_);
    const std::string* path = &shared_.search_path;
    switch (kind_) {
      case RequestKind::kSearch:
        body_ = &shared_.searches[run_.NextVectorRow()];
        break;
      case RequestKind::kInsert:
        composed_ = GrpcFrame(m_.NextInsert(run_));
        body_ = &composed_;
        path = &shared_.insert_path;
        break;
      case RequestKind::kQuery:
        composed_ = GrpcFrame(m_.NextQuery(run_, rng_));
        body_ = &composed_;
        path = &shared_.query_path;
        break;
    }
    body_sent_ = 0;
    response_.clear();
    http_status_ = 0;
    grpc_status_ = -1;
    grpc_message_.clear();
    nghttp2_nv nva[8] = {Header(":method", shared_.method), Header(":scheme", shared_.scheme),
                         Header(":authority", shared_.authority), Header(":path", *path),
                         Header("content-type", shared_.content_type), Header("te", shared_.te),
                         Header("grpc-timeout", shared_.timeout)};
    size_t n = 7;
    if (!run_.spec().api_key.empty()) nva[n++] = Header("x-api-key", run_.spec().api_key);
    nghttp2_data_provider data{};
    data.read_callback = ReadBody;
    t0_ = LoadClock::now();
    stream_ = nghttp2_submit_request(session_, nullptr, nva, n, &data, this);
    if (stream_ < 0) return Fail(fmt::format("nghttp2_submit_request: {}", nghttp2_strerror(stream_)));
    Flush();
  }

  // The socket is readable (or writable, while a write is pending).
  void OnEvent(uint32_t events) {
    if ((events & EPOLLOUT) != 0 && !Flush()) return;
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) == 0) return;
    char buf[kReadBytes];
    for (;;) {
      const ssize_t r = ::read(fd_, buf, sizeof(buf));
      if (r > 0) {
        const ssize_t used = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf),
                                                      static_cast<size_t>(r));
        if (used < 0) return Fail(fmt::format("HTTP/2: {}", nghttp2_strerror(static_cast<int>(used))));
        if (stopped_ || fd_ < 0) return;  // the call finished and the client stopped or reconnected
        continue;
      }
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (r < 0 && errno == EINTR) continue;
      return Fail(r == 0 ? "connection closed by the server" : fmt::format("read: {}", std::strerror(errno)));
    }
    if (finished_) {
      finished_ = false;
      Complete();
      if (stopped_) return;
    }
    Flush();  // SETTINGS and PING acknowledgements, WINDOW_UPDATEs, the next call
  }

  // A call past its deadline is a failure.
  void CheckDeadline(LoadClock::time_point now) {
    if (!stopped_ && stream_ > 0 && now - t0_ > kRequestTimeout) Fail("no answer within the deadline");
  }

  ClientTally& tally() { return tally_; }

 private:
  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source*, void* user) {
    auto* c = static_cast<Client*>(user);
    const size_t n = std::min(length, c->body_->size() - c->body_sent_);
    std::memcpy(buf, c->body_->data() + c->body_sent_, n);
    c->body_sent_ += n;
    if (c->body_sent_ == c->body_->size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                      const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto* c = static_cast<Client*>(user);
    if (frame->hd.stream_id != c->stream_) return 0;
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status") {
      c->http_status_ = std::atoi(std::string(v).c_str());
    } else if (n == "grpc-status") {
      c->grpc_status_ = std::atoi(std::string(v).c_str());
    } else if (n == "grpc-message") {
      c->grpc_message_.assign(v);
    }
    return 0;
  }

  static int OnData(nghttp2_session*, uint8_t, int32_t stream, const uint8_t* data, size_t len, void* user) {
    auto* c = static_cast<Client*>(user);
    if (stream == c->stream_) c->response_.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream, uint32_t error_code, void* user) {
    auto* c = static_cast<Client*>(user);
    if (stream != c->stream_) return 0;
    c->finished_ = true;
    c->reset_code_ = error_code;
    return 0;
  }

  // The call in flight ended: records it and starts the next.
  void Complete() {
    stream_ = -1;
    std::string error;
    bool not_found = false;
    if (reset_code_ != NGHTTP2_NO_ERROR) {
      error = fmt::format("stream reset: {}", nghttp2_http2_strerror(reset_code_));
    } else if (http_status_ != 200) {
      error = fmt::format("HTTP status {}", http_status_);
    } else if (grpc_status_ != 0) {
      error = fmt::format("gRPC {}: {}", grpc_status_, grpc_message_);
    } else {
      error = ParseReply(&not_found);
    }
    if (!error.empty()) {
      run_.Record(tally_, kind_, t0_, Outcome::kError, error);
    } else {
      run_.Record(tally_, kind_, t0_, not_found ? Outcome::kNotFound : Outcome::kOk);
    }
    Issue();
  }

  // The response message, checked as the library client checks it; "" if it is a success.
  std::string ParseReply(bool* not_found) {
    if (response_.size() < 5 || response_[0] != 0) return "malformed gRPC response";
    uint32_t be;
    std::memcpy(&be, response_.data() + 1, 4);
    const size_t n = ntohl(be);
    if (response_.size() != 5 + n) return "malformed gRPC response";
    const char* msg = response_.data() + 5;
    const int len = static_cast<int>(n);
    google::protobuf::MessageLite* reply = &m_.search_reply;
    if (kind_ == RequestKind::kInsert) reply = &m_.insert_reply;
    if (kind_ == RequestKind::kQuery) reply = &m_.query_reply;
    if (!reply->ParseFromArray(msg, len)) return "unparsable " + reply->GetTypeName();
    return m_.ReplyError(kind_, not_found);
  }

  // Writes what nghttp2 has to send; false if the connection failed.
  bool Flush() {
    for (;;) {
      if (pending_.size() == pending_sent_) {
        pending_.clear();
        pending_sent_ = 0;
        const uint8_t* data = nullptr;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(session_, &data)) > 0) {
          pending_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
        }
        if (n < 0) {
          Fail(fmt::format("HTTP/2: {}", nghttp2_strerror(static_cast<int>(n))));
          return false;
        }
        if (pending_.empty()) break;
      }
      const ssize_t w = ::send(fd_, pending_.data() + pending_sent_, pending_.size() - pending_sent_,
                               MSG_NOSIGNAL);
      if (w >= 0) {
        pending_sent_ += static_cast<size_t>(w);
        continue;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        Watch(EPOLLIN | EPOLLOUT);
        return true;
      }
      Fail(fmt::format("write: {}", std::strerror(errno)));
      return false;
    }
    Watch(EPOLLIN);
    return true;
  }

  void Watch(uint32_t events) {
    if (events == watched_) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = this;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd_, &ev);
    watched_ = events;
  }

  // The call in flight failed with the connection: records it, then reconnects and goes on.
  void Fail(const std::string& what) {
    if (stream_ > 0 || finished_) run_.Record(tally_, kind_, t0_, Outcome::kError, what);
    Close();
    if (run_.stopped()) {
      stopped_ = true;
      return;
    }
    if (Status s = Connect(epoll_); !s.ok()) {
      run_.Record(tally_, kind_, t0_, Outcome::kError, s.message());
      Close();
      stopped_ = true;
      return;
    }
    Issue();
  }

  void Stop() {
    Close();
    stopped_ = true;
  }

  void Close() {
    if (session_ != nullptr) nghttp2_session_del(session_);
    session_ = nullptr;
    if (fd_ >= 0) ::close(fd_);  // also leaves the epoll set
    fd_ = -1;
    stream_ = -1;
    finished_ = false;
    reset_code_ = 0;
    pending_.clear();
    pending_sent_ = 0;
    watched_ = EPOLLIN;
  }

  LoadRun& run_;
  const Shared& shared_;
  std::mt19937_64 rng_;
  int epoll_ = -1;
  int fd_ = -1;
  nghttp2_session* session_ = nullptr;
  uint32_t watched_ = EPOLLIN;
  bool stopped_ = false;
  std::string pending_;  // bytes nghttp2 produced that the socket has not taken yet
  size_t pending_sent_ = 0;
  // The call in flight.
  RequestKind kind_ = RequestKind::kSearch;
  LoadClock::time_point t0_;
  int32_t stream_ = -1;
  const std::string* body_ = nullptr;
  size_t body_sent_ = 0;
  std::string composed_;  // the framed insert or query
  std::string response_;
  int http_status_ = 0;
  int grpc_status_ = -1;
  std::string grpc_message_;
  bool finished_ = false;
  uint32_t reset_code_ = 0;
  GrpcMessages m_;
  ClientTally tally_;
};

// One thread's loop: starts its clients' first calls, then serves their sockets until every one
// of them has stopped.
void Drive(int epoll, const std::vector<Client*>& clients) {
  for (Client* c : clients) c->Issue();
  epoll_event events[64];
  auto last_check = LoadClock::now();
  for (;;) {
    size_t active = 0;
    for (Client* c : clients) active += !c->stopped();
    if (active == 0) return;
    const int n = ::epoll_wait(epoll, events, static_cast<int>(std::size(events)), kPollMillis);
    for (int i = 0; i < n; ++i) static_cast<Client*>(events[i].data.ptr)->OnEvent(events[i].events);
    const auto now = LoadClock::now();
    if (now - last_check >= std::chrono::milliseconds(kPollMillis)) {
      last_check = now;
      for (Client* c : clients) c->CheckDeadline(now);
    }
  }
}

}  // namespace

Result<LoadResult> RunGrpcH2Load(const LoadSpec& spec) {
  if (spec.vectors == nullptr || spec.vectors->rows == 0) return Status::InvalidArgument("load: no vectors");
  auto endpoint = ParseHttpEndpoint(spec.target);
  if (!endpoint.ok()) return endpoint.status();
  Shared shared;
  shared.authority = fmt::format("{}:{}", endpoint->host, endpoint->port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(endpoint->port);
  if (const int rv = ::getaddrinfo(endpoint->host.c_str(), port.c_str(), &hints, &found); rv != 0 || found == nullptr) {
    return Status::IoError("resolve " + endpoint->host + ": " + ::gai_strerror(rv));
  }
  std::memcpy(&shared.address, found->ai_addr, found->ai_addrlen);
  shared.address_len = found->ai_addrlen;
  ::freeaddrinfo(found);
  for (const pb::SearchRequest& req : SearchRequests(spec)) shared.searches.push_back(GrpcFrame(req));

  const size_t threads = std::max<size_t>(1, spec.client_threads);
  std::vector<int> epolls;
  struct EpollCloser {
    std::vector<int>& fds;
    ~EpollCloser() {
      for (int fd : fds) ::close(fd);
    }
  } closer{epolls};
  for (size_t t = 0; t < threads; ++t) {
    const int fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (fd < 0) return Status::IoError(fmt::format("epoll_create1: {}", std::strerror(errno)));
    epolls.push_back(fd);
  }
  LoadRun run(spec);
  std::vector<std::unique_ptr<Client>> clients;
  std::vector<std::vector<Client*>> mine(threads);
  for (size_t c = 0; c < spec.concurrency; ++c) {
    clients.push_back(std::make_unique<Client>(run, shared, spec.seed * 1000003 + c));
    if (Status s = clients.back()->Connect(epolls[c % threads]); !s.ok()) return s;
    mine[c % threads].push_back(clients.back().get());
  }

  run.Start();
  return run.RunClientThreads(threads, [&](size_t t) { Drive(epolls[t], mine[t]); }, clients);
}

}  // namespace kyrodb::bench

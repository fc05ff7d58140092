// RunHttpLoad: `concurrency` keep-alive connections, each one request in flight, driven by
// `client_threads` single-threaded io_contexts (connections assigned round-robin). Requests are
// written as raw bytes: search requests fully pre-serialized, inserts and queries composed from
// a pre-serialized embedding and the id; responses parsed by Beast.
#include <utility>  // before Boost (BUILD-NOTES)

#include <fmt/format.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <iterator>
#include <memory>
#include <optional>
#include <thread>

#include "http_request.h"
#include "load_client.h"
#include "load_run.h"

namespace kyrodb::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::chrono::seconds kRequestTimeout{30};
constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr size_t kErrorBodyChars = 200;

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

void AppendFloats(std::string* out, const float* v, size_t n) {
  out->push_back('[');
  for (size_t i = 0; i < n; ++i) {
    if (i) out->push_back(',');
    fmt::format_to(std::back_inserter(*out), "{}", v[i]);  // shortest round-trip form
  }
  out->push_back(']');
}

// The request bytes of one run, built before the clock starts.
class RequestBytes {
 public:
  RequestBytes(const LoadSpec& spec, const HttpEndpoint& endpoint) {
    host_ = endpoint.HostHeader();
    if (!spec.api_key.empty()) auth_header_ = "x-api-key: " + spec.api_key + "\r\n";
    if (!spec.collection.empty()) {
      collection_field_ = ",\"collection\":";
      AppendJsonString(&collection_field_, spec.collection);
    }
    const FloatMatrix& v = *spec.vectors;
    const bool searches = spec.op == LoadOp::kSearch || spec.op == LoadOp::kMixed;
    const bool inserts = spec.op == LoadOp::kInsert || spec.op == LoadOp::kMixed;
    for (size_t r = 0; searches && r < v.rows; ++r) {
      std::string body = "{\"query_embedding\":";
      AppendFloats(&body, v.Row(r), v.dim);
      body += fmt::format(",\"k\":{},\"ef_search\":{}", spec.k, spec.ef);
      body += collection_field_;
      body += '}';
      std::string request;
      AppendHead(&request, "/v1/search", body.size());
      request += body;
      searches_.push_back(std::move(request));
    }
    for (size_t r = 0; inserts && r < v.rows; ++r) {
      std::string tail = ",\"embedding\":";
      AppendFloats(&tail, v.Row(r), v.dim);
      tail += ",\"metadata\":{\"source\":\"kyrodb_bench\"}";
      tail += collection_field_;
      tail += '}';
      insert_tails_.push_back(std::move(tail));
    }
    query_tail_ = (spec.include_embedding ? ",\"include_embedding\":true" : "") + collection_field_ + "}";
  }

  const std::string& Search(size_t row) const { return searches_[row]; }

  void Insert(uint64_t id, size_t row, std::string* out) const {
    const std::string head = fmt::format("{{\"doc_id\":{}", id);
    const std::string& tail = insert_tails_[row];
    out->clear();
    AppendHead(out, "/v1/insert", head.size() + tail.size());
    *out += head;
    *out += tail;
  }

  void Query(uint64_t id, std::string* out) const {
    const std::string head = fmt::format("{{\"doc_id\":{}", id);
    out->clear();
    AppendHead(out, "/v1/query", head.size() + query_tail_.size());
    *out += head;
    *out += query_tail_;
  }

 private:
  void AppendHead(std::string* out, std::string_view path, size_t content_length) const {
    fmt::format_to(std::back_inserter(*out),
                   "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n"
                   "{}Content-Length: {}\r\n\r\n",
                   path, host_, auth_header_, content_length);
  }

  std::string host_;
  std::string auth_header_;
  std::string collection_field_;
  std::vector<std::string> searches_;
  std::vector<std::string> insert_tails_;
  std::string query_tail_;
};

// One keep-alive connection with one request in flight; all its handlers run on its
// io_context's single thread.
class Connection {
 public:
  Connection(asio::io_context& io, LoadRun& run, const RequestBytes& bytes, tcp::endpoint endpoint,
             uint64_t seed)
      : stream_(io), run_(run), bytes_(bytes), endpoint_(std::move(endpoint)), rng_(seed) {
    buffer_.reserve(kReadBufferBytes);
  }

  Status Connect() {
    beast::error_code ec;
    stream_.socket().connect(endpoint_, ec);
    if (ec) return Status::IoError("connect " + endpoint_.address().to_string() + ": " + ec.message());
    stream_.socket().set_option(tcp::no_delay(true), ec);
    return Status::Ok();
  }

  void Start() { Send(); }
  ClientTally& tally() { return tally_; }

 private:
  void Send() {
    if (run_.stopped()) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream_.socket().close(ignored);
      return;
    }
    kind_ = run_.NextKind(rng_);
    const std::string* request = &out_;
    switch (kind_) {
      case RequestKind::kSearch:
        request = &bytes_.Search(run_.NextVectorRow());
        break;
      case RequestKind::kInsert:
        bytes_.Insert(run_.NextInsertId(), run_.NextVectorRow(), &out_);
        break;
      case RequestKind::kQuery:
        bytes_.Query(run_.RandomId(rng_), &out_);
        break;
    }
    t0_ = LoadClock::now();
    stream_.expires_after(kRequestTimeout);
    asio::async_write(stream_, asio::buffer(*request), [this](beast::error_code ec, size_t) {
      if (ec) return Fail("write", ec);
      parser_.emplace();
      parser_->body_limit(64ull << 20);
      http::async_read(stream_, buffer_, *parser_, [this](beast::error_code ec2, size_t) { OnRead(ec2); });
    });
  }

  void OnRead(beast::error_code ec) {
    if (ec) return Fail("read", ec);
    const auto& response = parser_->get();
    const unsigned status = response.result_int();
    Outcome outcome = Outcome::kOk;
    // An absent document: 404 DOCUMENT_NOT_FOUND or {"found":false} (an unknown collection is
    // a 404 too, and an error).
    const std::string& body = response.body();
    if (kind_ == RequestKind::kQuery &&
        ((status == 404 && body.find("DOCUMENT_NOT_FOUND") != std::string::npos) ||
         (status == 200 && body.find("\"found\":false") != std::string::npos))) {
      outcome = Outcome::kNotFound;
    } else if (status / 100 != 2) {
      outcome = Outcome::kError;
    }
    if (outcome == Outcome::kError) {
      run_.Record(tally_, kind_, t0_, outcome,
                  fmt::format("HTTP {}: {}", status, body.substr(0, kErrorBodyChars)));
    } else {
      run_.Record(tally_, kind_, t0_, outcome);
    }
    if (!parser_->keep_alive()) return Reconnect();
    Send();
  }

  void Fail(const char* what, beast::error_code ec) {
    run_.Record(tally_, kind_, t0_, Outcome::kError, fmt::format("{}: {}", what, ec.message()));
    Reconnect();
  }

  // After an error or a server-side close: a new connection, unless the run is over.
  void Reconnect() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    buffer_.clear();
    if (run_.stopped()) return;
    stream_.expires_after(kRequestTimeout);
    stream_.async_connect(endpoint_, [this](beast::error_code ec) {
      if (ec) return Fail("connect", ec);
      beast::error_code ignored2;
      stream_.socket().set_option(tcp::no_delay(true), ignored2);
      Send();
    });
  }

  beast::tcp_stream stream_;
  LoadRun& run_;
  const RequestBytes& bytes_;
  const tcp::endpoint endpoint_;
  std::mt19937_64 rng_;
  beast::flat_buffer buffer_;
  std::optional<http::response_parser<http::string_body>> parser_;
  std::string out_;  // the composed request (insert, query)
  RequestKind kind_ = RequestKind::kSearch;
  LoadClock::time_point t0_;
  ClientTally tally_;
};

}  // namespace

Result<LoadResult> RunHttpLoad(const LoadSpec& spec) {
  auto endpoint = ParseHttpEndpoint(spec.target);
  if (!endpoint.ok()) return endpoint.status();
  if (spec.vectors == nullptr || spec.vectors->rows == 0) return Status::InvalidArgument("load: no vectors");
  const size_t threads = std::max<size_t>(1, spec.client_threads);

  std::vector<std::unique_ptr<asio::io_context>> ios;
  for (size_t t = 0; t < threads; ++t) ios.push_back(std::make_unique<asio::io_context>(1));
  beast::error_code ec;
  tcp::resolver resolver(*ios[0]);
  auto addresses = resolver.resolve(endpoint->host, std::to_string(endpoint->port), ec);
  if (ec || addresses.empty()) {
    return Status::IoError("resolve " + endpoint->host + ": " + (ec ? ec.message() : "no address"));
  }
  const tcp::endpoint address = addresses.begin()->endpoint();

  const RequestBytes bytes(spec, *endpoint);
  LoadRun run(spec);
  std::vector<std::unique_ptr<Connection>> connections;
  for (size_t c = 0; c < spec.concurrency; ++c) {
    connections.push_back(
        std::make_unique<Connection>(*ios[c % threads], run, bytes, address, spec.seed * 1000003 + c));
    if (Status s = connections.back()->Connect(); !s.ok()) return s;
  }

  run.Start();
  for (auto& c : connections) c->Start();
  return run.RunClientThreads(threads, [&](size_t t) { ios[t]->run(); }, connections);
}

}  // namespace kyrodb::bench

// The HTTP endpoints: Dispatch() routes one decoded HTTP request to its handler, which decodes
// the body (request_decoder.h), calls Service, and writes the JSON reply (json_writer.h).
// One handler file per endpoint group: document_handlers.cc (insert, bulk_insert, query,
// documents/{id}, delete, update_metadata), search_handler.cc, collection_handlers.cc,
// admin_handlers.cc (flush, snapshot, health, ready, metrics, slo); router.cc routes.
//
// Thread-safety: a HandlerContext belongs to one io thread; handlers run on that thread and
// only share Service (thread-safe) with other threads.
#pragma once

#include <boost/beast/http/verb.hpp>

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kyrodb/types.h"
#include "server/common/api_error.h"
#include "server/common/insert_batcher.h"
#include "server/common/metrics.h"
#include "server/common/service.h"
#include "server/http/json_writer.h"
#include "server/http/request_decoder.h"

namespace kyrodb::server::http {

// One request as the connection read it. The strings are reused from request to request.
struct HttpRequest {
  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  int version = 11;          // 10 = HTTP/1.0, 11 = HTTP/1.1
  std::string target;        // as sent: path?query
  std::string content_type;  // empty if the header was absent
  std::string api_key;       // x-api-key
  std::string authorization; // authorization (Bearer KEY)
  std::string body;
};

// The reply a handler writes; the connection adds the status line and headers.
struct HttpResponse {
  int status = 200;
  std::string_view content_type = "application/json";
  std::string_view allow;  // Allow header (405)
  int retry_after = 0;     // Retry-After header in seconds (429), 0: none
  std::string body;        // reused from request to request
};

void WriteError(const ApiError& error, HttpResponse& resp);

// Fills the reply of a request that completed later; runs on the connection's io thread.
using FillReply = std::function<void(HttpResponse&)>;
// Completes a deferred request: callable from any thread, exactly once.
using ResumeReply = std::function<void(FillReply)>;

// Per io thread state handed to every handler.
struct HandlerContext {
  explicit HandlerContext(Service& s) : service(s) {}
  Service& service;
  RequestContext request_context;  // the caller of the current request (Dispatch sets it)
  JsonBody json;                   // simdjson parser, reused
  size_t dim_hint = 0;             // last embedding dimension seen: reserve vectors of this size

  // Asynchronous completion, set by the connection for the request being handled (null: every
  // Service call runs inline, as in unit tests). A handler that does not want to block the io
  // thread calls defer() once and returns without touching resp; the connection then reads
  // nothing more (replies stay in request order) until the returned ResumeReply is called.
  // The deferred work must own everything it uses: req and the JSON parser are reused.
  std::function<ResumeReply()> defer;
  // Coalesces single inserts into group commits on its own thread (null: Service::Insert inline).
  InsertBatcher* insert_batcher = nullptr;
  // Runs a long blocking call (flush, snapshot, bulk insert) on a worker thread (null: inline).
  std::function<void(std::function<void()>)> run_blocking;
};

// Runs work(HttpResponse&) — a blocking Service call that writes its reply — on
// hc.run_blocking when there is one (the request is deferred until it is done), inline
// otherwise. `work` must own what it uses.
template <typename F>
void RunBlocking(HandlerContext& hc, HttpResponse& resp, F work) {
  if (!hc.defer || !hc.run_blocking) return work(resp);
  ResumeReply resume = hc.defer();
  hc.run_blocking([work = std::make_shared<F>(std::move(work)), resume = std::move(resume)] {
    auto out = std::make_shared<HttpResponse>();
    try {
      (*work)(*out);
    } catch (const std::exception& e) {
      out->body.clear();
      WriteError({ErrorCode::kInternal, std::string("internal error: ") + e.what()}, *out);
    }
    resume([out](HttpResponse& r) {
      r.status = out->status;
      r.content_type = out->content_type;
      r.body.swap(out->body);
    });
  });
}

// Routes `req` and fills `resp`; returns the endpoint for metrics. Every route but /health and
// /ready first authenticates the caller (Service::Authenticate: 401) and admits it through the
// rate limits (Service::Admit with the connection's bucket, which may be null: 429 +
// Retry-After); hc.request_context is then the caller's.
Endpoint Dispatch(HandlerContext& hc, HttpRequest& req, HttpResponse& resp,
                  TokenBucket* connection_bucket);

// {"error": message, "error_code": NAME} with HttpStatus(code).
void WriteError(const ApiError& error, HttpResponse& resp);
// A decoded id echoed as given: a JSON string for string ids, a number otherwise.
void WriteDocKey(JsonWriter& w, const DocKey& key);
void WriteMetadata(JsonWriter& w, const Metadata& metadata);
void WriteEmbedding(JsonWriter& w, const std::vector<float>& v);

// Handlers. `id`/`name` are the decoded path segment; `query` the raw query string.
void HandleInsert(HandlerContext& hc, HttpRequest& req, HttpResponse& resp);
void HandleBulkInsert(HandlerContext& hc, HttpRequest& req, HttpResponse& resp);
void HandleQuery(HandlerContext& hc, HttpRequest& req, HttpResponse& resp);
void HandleGetDocument(HandlerContext& hc, std::string_view id, std::string_view query,
                       HttpResponse& resp);
void HandleDelete(HandlerContext& hc, HttpRequest& req, HttpResponse& resp);
void HandleUpdateMetadata(HandlerContext& hc, HttpRequest& req, HttpResponse& resp);
void HandleSearch(HandlerContext& hc, HttpRequest& req, HttpResponse& resp);
void HandleListCollections(HandlerContext& hc, HttpResponse& resp);
void HandleCreateCollection(HandlerContext& hc, std::string_view name, HttpRequest& req,
                            HttpResponse& resp);
void HandleDescribeCollection(HandlerContext& hc, std::string_view name, HttpResponse& resp);
void HandleDropCollection(HandlerContext& hc, std::string_view name, std::string_view query,
                          HttpResponse& resp);
void HandleUsage(HandlerContext& hc, std::string_view query, HttpResponse& resp);
void HandleFlush(HandlerContext& hc, HttpRequest& req, HttpResponse& resp);
void HandleSnapshot(HandlerContext& hc, HttpRequest& req, HttpResponse& resp);
void HandleHealth(HandlerContext& hc, HttpResponse& resp);
void HandleReady(HandlerContext& hc, HttpResponse& resp);
void HandleMetrics(HandlerContext& hc, HttpResponse& resp);
void HandleSlo(HandlerContext& hc, HttpResponse& resp);

// URL helpers (router.cc), exposed for tests.
// Percent-decodes `in` into `out` ('+' stays '+'); false on a malformed escape.
bool PercentDecode(std::string_view in, std::string* out);
// Calls f(name, value) for each name=value pair of a query string (values percent-decoded);
// returns the first error f returns, or INVALID_ARGUMENT for a malformed escape.
template <typename F>
ApiStatus ForEachQueryParam(std::string_view query, F&& f) {
  std::string value;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string_view name = pair.substr(0, eq);
    const std::string_view raw = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    if (!PercentDecode(raw, &value)) {
      return ApiError{ErrorCode::kInvalidArgument,
                      "query parameter '" + std::string(name) + "' has a malformed %-escape"};
    }
    if (auto st = f(name, std::string_view(value))) return st;
  }
  return std::nullopt;
}

}  // namespace kyrodb::server::http

// Routing: path and method to handler, with 404 (unknown path), 405 (+Allow) and 415 (a body
// that is not JSON) answered here so handlers only see requests they serve.
#include <algorithm>
#include <string_view>

#include "server/http/handlers.h"
#include "server/http/json_writer.h"

namespace kyrodb::server::http {

namespace {

using boost::beast::http::verb;

constexpr std::string_view kDocumentsPrefix = "/v1/documents/";
constexpr std::string_view kCollectionsPrefix = "/v1/collections/";

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// "application/json", any case, optionally followed by parameters ("; charset=utf-8").
bool IsJsonContentType(std::string_view ct) {
  constexpr std::string_view kJson = "application/json";
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  if (ct.size() < kJson.size()) return false;
  for (size_t i = 0; i < kJson.size(); ++i) {
    if (Lower(ct[i]) != kJson[i]) return false;
  }
  ct.remove_prefix(kJson.size());
  while (!ct.empty() && (ct.front() == ' ' || ct.front() == '\t')) ct.remove_prefix(1);
  return ct.empty() || ct.front() == ';';
}

void MethodNotAllowed(verb method, std::string_view allow, HttpResponse& resp) {
  WriteError({ErrorCode::kMethodNotAllowed, std::string(boost::beast::http::to_string(method)) +
                                                " is not allowed here (allowed: " +
                                                std::string(allow) + ")"},
             resp);
  resp.allow = allow;
}

// True when the method is `m`; otherwise answers 405 naming `allow`.
bool Expect(HttpRequest& req, verb m, std::string_view allow, HttpResponse& resp) {
  if (req.method == m) return true;
  MethodNotAllowed(req.method, allow, resp);
  return false;
}

// POST/PUT bodies must be JSON; a missing Content-Type is accepted.
bool JsonBodyOk(const HttpRequest& req, HttpResponse& resp) {
  if (req.content_type.empty() || IsJsonContentType(req.content_type)) return true;
  WriteError({ErrorCode::kUnsupportedMediaType,
              "Content-Type '" + req.content_type + "' is not supported; send application/json"},
             resp);
  return false;
}

// A POST endpoint with a JSON body.
template <typename H>
Endpoint Post(HandlerContext& hc, HttpRequest& req, HttpResponse& resp, Endpoint e, H handler) {
  if (Expect(req, verb::post, "POST", resp) && JsonBodyOk(req, resp)) handler(hc, req, resp);
  return e;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = Lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (in.size() - i < 3) return false;
    const int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

void WriteError(const ApiError& error, HttpResponse& resp) {
  resp.status = HttpStatus(error.code);
  resp.content_type = "application/json";
  resp.body.clear();
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("error", error.message);
  w.Field("error_code", ErrorCodeName(error.code));
  w.EndObject();
}

void WriteDocKey(JsonWriter& w, const DocKey& key) {
  if (key.is_string()) {
    w.String(key.external);
  } else {
    w.Uint(key.id);
  }
}

void WriteMetadata(JsonWriter& w, const Metadata& metadata) {
  w.BeginObject();
  for (const auto& [k, v] : metadata) {
    w.Key(k);
    w.String(v);
  }
  w.EndObject();
}

void WriteEmbedding(JsonWriter& w, const std::vector<float>& v) {
  w.BeginArray();
  for (float f : v) w.Float(f);
  w.EndArray();
}

Endpoint Dispatch(HandlerContext& hc, HttpRequest& req, HttpResponse& resp,
                  TokenBucket* connection_bucket) {
  std::string_view path = req.target;
  std::string_view query;
  if (const size_t q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }

  // Liveness and readiness answer anyone (probes carry no key); everything else needs a caller.
  if (path == "/health") {
    if (Expect(req, verb::get, "GET", resp)) HandleHealth(hc, resp);
    return Endpoint::kHealth;
  }
  if (path == "/ready") {
    if (Expect(req, verb::get, "GET", resp)) HandleReady(hc, resp);
    return Endpoint::kHealth;
  }
  AccessCheckTimer check_timer(hc.service.metrics(), Transport::kHttp);
  int retry_after_secs = 0;
  auto caller = hc.service.Authenticate(req.api_key, req.authorization);
  if (!caller.ok()) {
    // Refused requests count against the connection's and the global rate limits too.
    if (ApiStatus e = hc.service.AdmitUnauthenticated(connection_bucket, &retry_after_secs)) {
      WriteError(*e, resp);
      resp.retry_after = std::max(1, retry_after_secs);
      return Endpoint::kOther;
    }
    WriteError(caller.error(), resp);
    return Endpoint::kOther;
  }
  if (ApiStatus e = hc.service.Admit(*caller, connection_bucket, &retry_after_secs)) {
    WriteError(*e, resp);
    resp.retry_after = std::max(1, retry_after_secs);
    return Endpoint::kOther;
  }
  hc.request_context = std::move(*caller);
  check_timer.Stop();

  if (path.size() > 4 && path.substr(0, 4) == "/v1/") {
    const std::string_view op = path.substr(4);
    if (op == "search") return Post(hc, req, resp, Endpoint::kSearch, HandleSearch);
    if (op == "insert") return Post(hc, req, resp, Endpoint::kInsert, HandleInsert);
    if (op == "query") return Post(hc, req, resp, Endpoint::kQuery, HandleQuery);
    if (op == "bulk_insert") return Post(hc, req, resp, Endpoint::kBulkInsert, HandleBulkInsert);
    if (op == "delete") return Post(hc, req, resp, Endpoint::kDelete, HandleDelete);
    if (op == "update_metadata") {
      return Post(hc, req, resp, Endpoint::kUpdateMetadata, HandleUpdateMetadata);
    }
    if (op == "flush") return Post(hc, req, resp, Endpoint::kFlush, HandleFlush);
    if (op == "snapshot") return Post(hc, req, resp, Endpoint::kSnapshot, HandleSnapshot);
    if (op == "collections") {
      if (Expect(req, verb::get, "GET", resp)) HandleListCollections(hc, resp);
      return Endpoint::kCollections;
    }
    if (path.substr(0, kDocumentsPrefix.size()) == kDocumentsPrefix) {
      const std::string_view id = path.substr(kDocumentsPrefix.size());
      if (!id.empty() && id.find('/') == std::string_view::npos) {
        if (Expect(req, verb::get, "GET", resp)) HandleGetDocument(hc, id, query, resp);
        return Endpoint::kQuery;
      }
    }
    if (path.substr(0, kCollectionsPrefix.size()) == kCollectionsPrefix) {
      const std::string_view raw = path.substr(kCollectionsPrefix.size());
      if (!raw.empty() && raw.find('/') == std::string_view::npos) {
        std::string name;
        if (!PercentDecode(raw, &name)) {
          WriteError({ErrorCode::kInvalidCollection, "collection name has a malformed %-escape"},
                     resp);
          return Endpoint::kCollections;
        }
        switch (req.method) {
          case verb::get: HandleDescribeCollection(hc, name, resp); break;
          case verb::put:
            if (JsonBodyOk(req, resp)) HandleCreateCollection(hc, name, req, resp);
            break;
          case verb::delete_: HandleDropCollection(hc, name, query, resp); break;
          default: MethodNotAllowed(req.method, "GET, PUT, DELETE", resp); break;
        }
        return Endpoint::kCollections;
      }
    }
  } else if (path == "/metrics") {
    if (Expect(req, verb::get, "GET", resp)) HandleMetrics(hc, resp);
    return Endpoint::kMetrics;
  } else if (path == "/slo") {
    if (Expect(req, verb::get, "GET", resp)) HandleSlo(hc, resp);
    return Endpoint::kHealth;
  } else if (path == "/usage") {
    if (Expect(req, verb::get, "GET", resp)) HandleUsage(hc, query, resp);
    return Endpoint::kCollections;
  }
  WriteError({ErrorCode::kRouteNotFound, "no such endpoint: " + std::string(path)}, resp);
  return Endpoint::kOther;
}

}  // namespace kyrodb::server::http

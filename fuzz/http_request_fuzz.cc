// libFuzzer target over the HTTP front end: the Beast RequestParser (with the server's default
// header and body limits) and every JSON request decoder of request_decoder.h.
//
// Input layout: the first byte picks the mode, the rest is the payload.
//   - odd first byte: the payload is a request body; every decoder runs on it directly, so the
//     decoders are fuzzed without having to keep a valid HTTP framing around them.
//   - even first byte: the payload is HTTP/1.1 bytes from a client. They reach the parser in
//     ((byte >> 1) & 7) + 1 chunks of near-equal size, the way a socket may deliver them;
//     pipelined requests are parsed one after another on the same connection, as the server
//     does, and each complete request's body goes through every decoder.
// Seeds (fuzz/corpus/http) start with '0', '2', '4', '8' (1, 2, 3, 5 chunks) or '1' (body).
//
// Invariants checked besides "no crash, no sanitizer report": an error always has a message;
// decoded embeddings and min_score are finite; bulk_insert's bookkeeping adds up; decoded
// filters are well formed; a body some decoder accepts is valid JSON (simdjson DOM agrees); the
// one-pass search decoder agrees with DecodeSearch, and its embedding with simdjson's tokens
// read by fast_float.
#include <utility>  // before Boost: Boost 1.74 asio needs std::exchange (BUILD-NOTES)

#include <simdjson.h>

#include <fast_float/fast_float.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "base/check.h"
#include "server/common/config.h"
#include "server/http/request_decoder.h"
#include "server/http/request_parser.h"

namespace {

namespace bhttp = boost::beast::http;
using namespace kyrodb;
using namespace kyrodb::server;
using namespace kyrodb::server::http;

void CheckError(const ApiStatus& st) {
  if (st) KYRODB_CHECK(!st->message.empty());
}

void CheckFinite(const std::vector<float>& v) {
  for (float x : v) KYRODB_CHECK(std::isfinite(x));
}

void CheckFilter(const MetadataFilter& f, int depth) {
  using Kind = MetadataFilter::Kind;
  KYRODB_CHECK(depth <= kMaxFilterDepth + 1);  // +1: a range with several bounds is an and
  switch (f.kind) {
    case Kind::kNot: KYRODB_CHECK(f.children.size() == 1); break;
    case Kind::kExact:
    case Kind::kIn:
    case Kind::kRange: KYRODB_CHECK(f.children.empty()); break;
    case Kind::kAnd:
    case Kind::kOr: break;
  }
  for (const MetadataFilter& c : f.children) CheckFilter(c, depth + 1);
}

// The same floats bit for bit (so -0 differs from 0). (An empty vector's data() may be null,
// which memcmp must not get even for 0 bytes.)
bool SameFloats(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// An independent reading of a search body's query embedding (the last "query_embedding" key, as
// the decoders take it): simdjson's element tokens, each converted to the nearest float by
// fast_float. Nothing when simdjson does not read the body or the array.
std::optional<std::vector<float>> OracleQuery(const std::string& body) {
  static simdjson::ondemand::parser* parser = new simdjson::ondemand::parser();
  const simdjson::padded_string text(body);
  simdjson::ondemand::document doc;
  if (parser->iterate(text).get(doc)) return std::nullopt;
  simdjson::ondemand::object obj;
  if (doc.get_object().get(obj)) return std::nullopt;
  std::optional<std::vector<float>> query;
  for (auto field : obj) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return std::nullopt;
    if (key != "query_embedding") continue;
    simdjson::ondemand::array arr;
    if (field.value().get_array().get(arr)) return std::nullopt;
    std::vector<float> v;
    for (auto el : arr) {
      simdjson::ondemand::value value;
      if (el.get(value)) return std::nullopt;
      std::string_view tok = value.raw_json_token();
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\n' || tok.back() == '\r' || tok.back() == '\t')) {
        tok.remove_suffix(1);
      }
      float x;
      const auto r = fast_float::from_chars(tok.data(), tok.data() + tok.size(), x);
      if (r.ec != std::errc() || r.ptr != tok.data() + tok.size()) return std::nullopt;
      v.push_back(x);
    }
    query = std::move(v);
  }
  return query;
}

// Shared between runs like the server's per-thread JsonBody, so state carried from one parse
// to the next is fuzzed too.
JsonBody& Json() {
  static JsonBody* json = new JsonBody();
  return *json;
}

// Parses a copy of `body` (decoders consume the object) and runs `decode` on it.
template <typename F>
bool Decode(const std::string& body, bool empty_is_object, F&& decode) {
  std::string text = body;
  ApiStatus st = Json().Parse(&text, empty_is_object);
  CheckError(st);
  if (st) return false;
  st = decode(Json());
  CheckError(st);
  return !st;
}

void DecodeAll(const std::string& body) {
  bool accepted = false;
  for (size_t dim_hint : {size_t{0}, size_t{3}}) {
    accepted |= Decode(body, false, [&](JsonBody& j) {
      InsertRequest r;
      ApiStatus st = DecodeInsert(j, dim_hint, &r);
      if (!st) CheckFinite(r.doc.embedding);
      return st;
    });
    accepted |= Decode(body, false, [&](JsonBody& j) {
      BulkInsertRequest r;
      ApiStatus st = DecodeBulkInsert(j, dim_hint, &r);
      if (!st) {
        KYRODB_CHECK(r.docs.size() == r.index.size());
        KYRODB_CHECK(r.errors.size() == r.error_keys.size());
        KYRODB_CHECK(r.docs.size() + r.errors.size() == r.total);
        for (size_t i = 0; i < r.index.size(); ++i) {
          KYRODB_CHECK(r.index[i] < r.total);
          if (i > 0) KYRODB_CHECK(r.index[i - 1] < r.index[i]);
        }
        for (const Document& d : r.docs) CheckFinite(d.embedding);
        for (const auto& [i, e] : r.errors) {
          KYRODB_CHECK(i < r.total);
          KYRODB_CHECK(!e.message.empty());
          KYRODB_CHECK(e.code != ErrorCode::kInvalidJson);
        }
      }
      return st;
    });
    accepted |= Decode(body, false, [&](JsonBody& j) {
      SearchHttpRequest r;
      ApiStatus st = DecodeSearch(j, dim_hint, &r);
      if (!st) {
        CheckFinite(r.request.query);
        if (r.request.has_min_score) KYRODB_CHECK(std::isfinite(r.request.min_score));
        if (r.has_filter) CheckFilter(r.filter, 1);
      }
      return st;
    });
    // The search handler's path (DecodeSearchBody: the one-pass decoder, else DecodeSearch
    // taking the embedding it read) answers exactly as DecodeSearch alone.
    {
      static JsonBody* handler_json = new JsonBody();
      std::string handler_copy = body, plain_copy = body;
      SearchHttpRequest via_handler, plain;
      const ApiStatus a = DecodeSearchBody(*handler_json, &handler_copy, dim_hint, &via_handler);
      ApiStatus b = Json().Parse(&plain_copy);
      if (!b) b = DecodeSearch(Json(), dim_hint, &plain);
      KYRODB_CHECK(a.has_value() == b.has_value());
      if (a) {
        KYRODB_CHECK(a->code == b->code && a->message == b->message);
      } else {
        const SearchRequest &x = via_handler.request, &y = plain.request;
        KYRODB_CHECK(SameFloats(x.query, y.query));
        KYRODB_CHECK(x.k == y.k && x.ef == y.ef && x.has_min_score == y.has_min_score);
        KYRODB_CHECK(via_handler.collection == plain.collection && via_handler.has_filter == plain.has_filter);
      }
    }
    // The search handler's one-pass decoder must agree with DecodeSearch whenever it decodes.
    SearchHttpRequest fast;
    if (TryDecodeSearchFast(body, dim_hint, &fast)) {
      SearchHttpRequest full;
      KYRODB_CHECK(Decode(body, false, [&](JsonBody& j) { return DecodeSearch(j, dim_hint, &full); }));
      const SearchRequest &a = fast.request, &b = full.request;
      KYRODB_CHECK(SameFloats(a.query, b.query));
      KYRODB_CHECK(a.k == b.k && a.ef == b.ef && a.has_min_score == b.has_min_score);
      KYRODB_CHECK(std::memcmp(&a.min_score, &b.min_score, sizeof(float)) == 0);
      KYRODB_CHECK(a.include_embeddings == b.include_embeddings && a.include_metadata == b.include_metadata);
      KYRODB_CHECK(fast.collection == full.collection && !fast.has_filter && !full.has_filter);
      // Both decoders share the float-array reader; simdjson's tokens and fast_float check it.
      if (auto want = OracleQuery(body)) {
        KYRODB_CHECK(SameFloats(*want, a.query));
      }
    }
  }
  accepted |= Decode(body, false, [](JsonBody& j) {
    QueryRequest r;
    return DecodeQuery(j, &r);
  });
  accepted |= Decode(body, false, [](JsonBody& j) {
    DeleteRequest r;
    return DecodeDelete(j, &r);
  });
  accepted |= Decode(body, false, [](JsonBody& j) {
    UpdateMetadataRequest r;
    return DecodeUpdateMetadata(j, &r);
  });
  accepted |= Decode(body, false, [](JsonBody& j) {
    CollectionOptions r;
    ApiStatus st = DecodeCreateCollection(j, &r);
    if (!st) KYRODB_CHECK(r.dimension >= 1);
    return st;
  });
  // flush and snapshot accept an empty body as {} (admin_handlers.cc).
  const bool blank = body.find_first_not_of(" \t\r\n") == std::string::npos;
  accepted |= Decode(body, true, [](JsonBody& j) {
    FlushRequest r;
    return DecodeFlush(j, &r);
  }) && !blank;
  accepted |= Decode(body, true, [](JsonBody& j) { return DecodeSnapshot(j); }) && !blank;

  if (accepted) {
    // What a decoder accepted is one valid JSON value. The DOM parser also refuses numbers
    // beyond the double range, which decoders may leave to a per-document error: then
    // the check is inconclusive.
    static simdjson::dom::parser* dom = new simdjson::dom::parser();
    simdjson::dom::element doc;
    const simdjson::error_code e = dom->parse(body).get(doc);
    KYRODB_CHECK(e == simdjson::SUCCESS || e == simdjson::NUMBER_ERROR);
  }
}

// Feeds `input` to RequestParsers as the server's connection would, in `chunks` pieces.
void ParseHttp(std::string_view input, size_t chunks) {
  static const ServerConfig kDefaults;
  const uint64_t body_limit = kDefaults.server.max_body_mb << 20;
  const uint32_t header_limit = kDefaults.limits.max_header_kb << 10;

  HttpRequest req;
  std::optional<RequestParser> parser;
  boost::beast::flat_buffer buffer;
  size_t fed = 0;
  for (size_t c = 1; c <= chunks; ++c) {
    const size_t end = input.size() * c / chunks;
    const std::string_view piece = input.substr(fed, end - fed);
    fed = end;
    if (!piece.empty()) {
      auto dst = buffer.prepare(piece.size());
      std::memcpy(dst.data(), piece.data(), piece.size());
      buffer.commit(piece.size());
    }
    const bool last = c == chunks;
    for (;;) {
      if (!parser) {
        if (buffer.size() == 0) break;  // between requests
        parser.emplace(&req);
        parser->body_limit(body_limit);
        parser->header_limit(header_limit);
      }
      boost::beast::error_code ec;
      const size_t used = buffer.size() == 0 ? 0 : parser->put(buffer.data(), ec);
      buffer.consume(used);
      if (ec == bhttp::error::need_more || (!ec && used == 0 && !parser->is_done())) {
        if (!last) break;  // wait for the next chunk
        parser->put_eof(ec);
        if (ec || !parser->is_done()) return;  // the client closed mid-request
      } else if (ec) {
        KYRODB_CHECK(!ec.message().empty());
        return;  // the server answers an error and closes
      }
      if (parser->is_header_done()) {
        (void)parser->expect_continue();
        parser->eager(true);  // the body is read with http::async_read, eagerly
      }
      if (!parser->is_done()) continue;
      KYRODB_CHECK(req.body.size() <= body_limit);
      if (!req.body.empty()) DecodeAll(req.body);
      if (!parser->keep_alive()) return;
      parser.reset();  // the next pipelined request
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const std::string_view payload(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode & 1) {
    DecodeAll(std::string(payload));
  } else {
    ParseHttp(payload, ((mode >> 1) & 7) + 1);
  }
  return 0;
}

// insert, bulk_insert, query, documents/{id}, delete, update_metadata.
#include <charconv>
#include <string>

#include "server/http/handlers.h"
#include "server/http/json_writer.h"

namespace kyrodb::server::http {

namespace {

void WriteGetResult(const GetResult& r, bool include_embedding, HttpResponse& resp) {
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("found", true);
  w.Key("doc_id");
  WriteDocKey(w, r.key);
  if (include_embedding) {
    w.Key("embedding");
    WriteEmbedding(w, r.embedding);
  }
  w.Key("metadata");
  WriteMetadata(w, r.metadata);
  w.Field("served_from", TierName(r.served_from));
  w.EndObject();
}

void Query(HandlerContext& hc, std::string_view collection, const DocKey& key,
           bool include_embedding, HttpResponse& resp) {
  auto r = hc.service.Query(hc.request_context, collection, key, include_embedding);
  if (!r.ok()) return WriteError(r.error(), resp);
  WriteGetResult(*r, include_embedding, resp);
}

bool ParseBool(std::string_view s, bool* out) {
  if (s == "true" || s == "1") {
    *out = true;
  } else if (s == "false" || s == "0") {
    *out = false;
  } else {
    return false;
  }
  return true;
}

void WriteInserted(const DocKey& key, HttpResponse& resp) {
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("status", "ok");
  w.Key("doc_id");
  WriteDocKey(w, key);
  w.EndObject();
}

}  // namespace

void HandleInsert(HandlerContext& hc, HttpRequest& req, HttpResponse& resp) {
  if (auto st = hc.json.Parse(&req.body)) return WriteError(*st, resp);
  InsertRequest r;
  if (auto st = DecodeInsert(hc.json, hc.dim_hint, &r)) return WriteError(*st, resp);
  hc.dim_hint = r.doc.embedding.size();
  if (!hc.insert_batcher || !hc.defer) {
    auto key = hc.service.Insert(hc.request_context, r.collection, std::move(r.doc));
    if (!key.ok()) return WriteError(key.error(), resp);
    return WriteInserted(*key, resp);
  }
  // Validate here, on the io thread, so that the batch only carries documents that can land;
  // then the batcher's group commit acknowledges it (the connection waits, the thread does not).
  auto collection = hc.service.ResolveCollection(hc.request_context, r.collection);
  if (!collection.ok()) return WriteError(collection.error(), resp);
  if (auto e = Service::ValidateDocKey(r.doc.key)) return WriteError(*e, resp);
  if (auto e = Service::ValidateEmbedding(**collection, r.doc.embedding, "embedding")) {
    return WriteError(*e, resp);
  }
  ResumeReply resume = hc.defer();
  DocKey key = r.doc.key;
  InsertBatcher::Done done = [resume = std::move(resume), key = std::move(key)](const ApiStatus& e) {
    resume([e, key](HttpResponse& out) {
      if (e) return WriteError(*e, out);
      WriteInserted(key, out);
    });
  };
  hc.insert_batcher->Submit(hc.request_context, std::string(r.collection), std::move(r.doc),
                            std::move(done));
}

namespace {

void BulkInsert(Service& service, const RequestContext& ctx, BulkInsertRequest& r,
                HttpResponse& resp) {
  // Keys of the documents handed to Service, to name them in its per-document errors.
  std::vector<DocKey> keys;
  keys.reserve(r.docs.size());
  for (const Document& d : r.docs) keys.push_back(d.key);

  BulkInsertReply reply;
  if (!r.docs.empty()) {
    reply = service.BulkInsert(ctx, r.collection, std::move(r.docs));
  } else {
    // Still resolve the collection, so an unknown one is reported even for an empty batch.
    auto c = service.ResolveCollection(ctx, r.collection);
    if (!c.ok()) return WriteError(c.error(), resp);
  }
  // A request where every document failed for the same collection-level reason (unknown
  // collection, not ready) is that error, not a batch of per-document failures.
  if (reply.inserted == 0 && !reply.errors.empty() && reply.errors.size() == keys.size()) {
    const ErrorCode code = reply.errors.front().second.code;
    if (code == ErrorCode::kCollectionNotFound || code == ErrorCode::kNotReady ||
        code == ErrorCode::kPermissionDenied || code == ErrorCode::kInvalidCollection) {
      return WriteError(reply.errors.front().second, resp);
    }
  }

  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("status", "ok");
  w.Field("inserted", reply.inserted);
  w.Field("failed", static_cast<uint64_t>(reply.failed + r.errors.size()));
  w.Key("errors");
  w.BeginArray();
  // Merge decode errors and Service errors in request order.
  size_t a = 0, b = 0;
  while (a < r.errors.size() || b < reply.errors.size()) {
    const size_t ia = a < r.errors.size() ? r.errors[a].first : SIZE_MAX;
    const size_t sb = b < reply.errors.size() ? reply.errors[b].first : SIZE_MAX;
    const size_t ib = sb == SIZE_MAX ? SIZE_MAX : r.index[sb];
    const bool from_decode = ia < ib;
    const size_t index = from_decode ? ia : ib;
    const ApiError& err = from_decode ? r.errors[a].second : reply.errors[b].second;
    const DocKey& key = from_decode ? r.error_keys[a] : keys[sb];
    w.BeginObject();
    w.Field("index", static_cast<uint64_t>(index));
    w.Key("doc_id");
    if (key.is_string() || key.id != 0) {
      WriteDocKey(w, key);
    } else {
      w.Null();
    }
    w.Field("error", err.message);
    w.Field("error_code", ErrorCodeName(err.code));
    w.EndObject();
    if (from_decode) {
      ++a;
    } else {
      ++b;
    }
  }
  w.EndArray();
  w.EndObject();
}

}  // namespace

void HandleBulkInsert(HandlerContext& hc, HttpRequest& req, HttpResponse& resp) {
  if (auto st = hc.json.Parse(&req.body)) return WriteError(*st, resp);
  BulkInsertRequest r;
  if (auto st = DecodeBulkInsert(hc.json, hc.dim_hint, &r)) return WriteError(*st, resp);
  if (!r.docs.empty()) hc.dim_hint = r.docs.front().embedding.size();
  // r.collection points into the request body, which the connection reuses: own a copy.
  RunBlocking(hc, resp,
              [&service = hc.service, ctx = hc.request_context,
               collection = std::string(r.collection),
               r = std::move(r)](HttpResponse& out) mutable {
                r.collection = collection;
                BulkInsert(service, ctx, r, out);
              });
}

void HandleQuery(HandlerContext& hc, HttpRequest& req, HttpResponse& resp) {
  if (auto st = hc.json.Parse(&req.body)) return WriteError(*st, resp);
  QueryRequest r;
  if (auto st = DecodeQuery(hc.json, &r)) return WriteError(*st, resp);
  Query(hc, r.collection, r.key, r.include_embedding, resp);
}

void HandleGetDocument(HandlerContext& hc, std::string_view id, std::string_view query,
                       HttpResponse& resp) {
  DocKey key;
  const bool numeric = id.find_first_not_of("0123456789") == std::string_view::npos;
  if (numeric) {
    const auto r = std::from_chars(id.data(), id.data() + id.size(), key.id);
    if (r.ec != std::errc()) {
      return WriteError({ErrorCode::kInvalidDocId, "document id " + std::string(id) +
                                                       " does not fit in 64 bits"},
                        resp);
    }
  } else if (!PercentDecode(id, &key.external)) {
    return WriteError({ErrorCode::kInvalidDocId, "document id has a malformed %-escape"}, resp);
  }
  std::string collection;
  bool include_embedding = false;
  auto st = ForEachQueryParam(query, [&](std::string_view name, std::string_view value) -> ApiStatus {
    if (name == "collection") {
      collection.assign(value);
      return std::nullopt;
    }
    if (name == "include_embedding") {
      if (ParseBool(value, &include_embedding)) return std::nullopt;
      return ApiError{ErrorCode::kInvalidArgument,
                      "query parameter 'include_embedding' must be true or false"};
    }
    return ApiError{ErrorCode::kUnknownField, "unknown query parameter '" + std::string(name) +
                                                  "' (collection, include_embedding)"};
  });
  if (st) return WriteError(*st, resp);
  Query(hc, collection, key, include_embedding, resp);
}

void HandleDelete(HandlerContext& hc, HttpRequest& req, HttpResponse& resp) {
  if (auto st = hc.json.Parse(&req.body)) return WriteError(*st, resp);
  DeleteRequest r;
  if (auto st = DecodeDelete(hc.json, &r)) return WriteError(*st, resp);
  auto existed = hc.service.Delete(hc.request_context, r.collection, r.key);
  if (!existed.ok()) return WriteError(existed.error(), resp);
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("status", "ok");
  w.Field("existed", *existed);
  w.EndObject();
}

void HandleUpdateMetadata(HandlerContext& hc, HttpRequest& req, HttpResponse& resp) {
  if (auto st = hc.json.Parse(&req.body)) return WriteError(*st, resp);
  UpdateMetadataRequest r;
  if (auto st = DecodeUpdateMetadata(hc.json, &r)) return WriteError(*st, resp);
  auto existed =
      hc.service.UpdateMetadata(hc.request_context, r.collection, r.key, r.metadata, r.merge);
  if (!existed.ok()) return WriteError(existed.error(), resp);
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("status", "ok");
  w.Field("existed", *existed);
  w.EndObject();
}

}  // namespace kyrodb::server::http

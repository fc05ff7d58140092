// Decoding of HTTP request bodies (JSON, simdjson On-Demand) into the Service's request types.
//
// Decoding checks shapes and types only: which fields exist, that each has the right JSON type,
// that numbers fit their fields. Value rules shared with gRPC (dimension, finiteness, id range,
// k and ef_search bounds) are Service's. Every error names the field: unknown fields are
// UNKNOWN_FIELD, missing required ones MISSING_FIELD, wrong types INVALID_ARGUMENT, malformed
// JSON INVALID_JSON with the byte offset where parsing stopped.
//
// Strings in the decoded requests (std::string_view) point into the JsonBody's parser or the
// body itself: they stay valid until the next Parse() on the same JsonBody.
// Thread-safety: a JsonBody belongs to one thread (one per io thread); the decoders are pure.
#pragma once

#include <simdjson.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kyrodb/types.h"
#include "server/common/api_error.h"
#include "server/common/metadata_filter.h"

namespace kyrodb::server::http {

namespace sj = simdjson::ondemand;

// Filters nest at most this deep ({"and":[{"not":{...}}]} is depth 3).
inline constexpr int kMaxFilterDepth = 32;

// One parser, reused for every request of an io thread.
class JsonBody {
 public:
  // Parses `body` as one JSON object, adding simdjson's padding to its capacity if missing.
  // An empty body is the empty object when `empty_is_object`, else MISSING_FIELD-free INVALID_JSON.
  ApiStatus Parse(std::string* body, bool empty_is_object = false);
  sj::object& object() { return object_; }
  // After the object was read to its end: refuses trailing content.
  ApiStatus Finish();
  // Checks that the whole body is valid JSON. On-Demand does not validate what it skips: a
  // decoder that moves past a value it did not read to the end (bulk_insert after a bad
  // document) calls this so that malformed JSON is still refused.
  ApiStatus Validate();
  // The offset in the parsed body of a pointer into it.
  size_t OffsetOf(const char* p) const { return static_cast<size_t>(p - begin_); }

 private:
  sj::parser parser_;
  sj::document doc_;
  sj::object object_;
  sj::parser validator_;  // Validate() only: allocates on first use
  std::string empty_object_;  // padded "{}" for empty bodies
  const char* begin_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

struct InsertRequest {
  std::string_view collection;
  Document doc;
};

struct BulkInsertRequest {
  std::string_view collection;
  std::vector<Document> docs;            // the documents that decoded
  std::vector<size_t> index;             // docs[i] was documents[index[i]] in the request
  std::vector<std::pair<size_t, ApiError>> errors;  // documents that did not decode
  std::vector<DocKey> error_keys;        // errors[i]'s doc_id if it decoded, else an empty key
  size_t total = 0;                      // documents in the request
};

struct QueryRequest {
  std::string_view collection;
  DocKey key;
  bool include_embedding = false;
};

struct SearchHttpRequest {
  std::string_view collection;
  SearchRequest request;
  bool has_filter = false;
  MetadataFilter filter;
};

struct DeleteRequest {
  std::string_view collection;
  DocKey key;
};

struct UpdateMetadataRequest {
  std::string_view collection;
  DocKey key;
  Metadata metadata;
  bool merge = true;
};

struct FlushRequest {
  std::string_view collection;  // empty: every collection
};

// Each decoder reads body.object() to its end and calls body.Finish().
// `dim_hint` reserves embedding vectors (the last dimension seen on this connection).
ApiStatus DecodeInsert(JsonBody& body, size_t dim_hint, InsertRequest* out);
ApiStatus DecodeBulkInsert(JsonBody& body, size_t dim_hint, BulkInsertRequest* out);
ApiStatus DecodeQuery(JsonBody& body, QueryRequest* out);
// A query embedding already read from the body (by TryDecodeSearchFast): the array whose '['
// is at `offset`, as `values`. DecodeSearch takes it for that array instead of reading it again.
struct EmbeddingReadAhead {
  size_t offset = std::string::npos;
  std::vector<float> values;
};
ApiStatus DecodeSearch(JsonBody& body, size_t dim_hint, SearchHttpRequest* out,
                       EmbeddingReadAhead* ahead = nullptr);
// The search body decoded in one pass without simdjson, when it has the plain shape clients
// send (no filter, no escapes, values in range): true with `out` filled exactly as
// DecodeSearch would fill it. False (with `out` in any state) when DecodeSearch must decide:
// then reset `out` and call it (its result, or its error, is the answer). On false,
// *query_offset (if given) is where the last query_embedding array it read whole starts (its
// floats are out->request.query), or npos.
bool TryDecodeSearchFast(std::string_view body, size_t dim_hint, SearchHttpRequest* out,
                         size_t* query_offset = nullptr);
// What the search handler runs: TryDecodeSearchFast, else `json` parses `body` in place and
// DecodeSearch decides, taking the embedding the first pass already read (a body with a
// filter after the embedding is not read twice).
ApiStatus DecodeSearchBody(JsonBody& json, std::string* body, size_t dim_hint, SearchHttpRequest* out);
ApiStatus DecodeDelete(JsonBody& body, DeleteRequest* out);
ApiStatus DecodeUpdateMetadata(JsonBody& body, UpdateMetadataRequest* out);
ApiStatus DecodeFlush(JsonBody& body, FlushRequest* out);
ApiStatus DecodeSnapshot(JsonBody& body);
ApiStatus DecodeCreateCollection(JsonBody& body, CollectionOptions* out);

// Building blocks, exposed for tests. `field` names the value in error messages.
ApiStatus ReadDocKey(sj::value v, std::string_view field, DocKey* out);
ApiStatus ReadEmbedding(sj::value v, std::string_view field, size_t dim_hint,
                        std::vector<float>* out);
ApiStatus ReadMetadata(sj::value v, std::string_view field, Metadata* out);
ApiStatus ReadFilter(sj::value v, std::string_view field, int depth, MetadataFilter* out);

}  // namespace kyrodb::server::http

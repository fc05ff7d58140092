// search: the hot path. The request body is decoded in one pass when it has the plain shape
// clients send (TryDecodeSearchFast), else parsed in place by simdjson On-Demand (DecodeSearch,
// which takes the embedding the first pass read: DecodeSearchBody);
// floats go straight into the query vector reserved at the connection's last dimension, and the
// reply is appended to the connection's reused output string.
#include "server/http/handlers.h"
#include "server/http/json_writer.h"

namespace kyrodb::server::http {

void HandleSearch(HandlerContext& hc, HttpRequest& req, HttpResponse& resp) {
  SearchHttpRequest r;
  if (auto st = DecodeSearchBody(hc.json, &req.body, hc.dim_hint, &r)) return WriteError(*st, resp);
  hc.dim_hint = r.request.query.size();
  const bool include_embeddings = r.request.include_embeddings;
  const bool include_metadata = r.request.include_metadata;
  auto reply = hc.service.Search(hc.request_context, r.collection, std::move(r.request),
                                 r.has_filter ? &r.filter : nullptr);
  if (!reply.ok()) return WriteError(reply.error(), resp);

  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Key("results");
  w.BeginArray();
  for (const SearchHit& hit : reply->hits) {
    w.BeginObject();
    w.Key("doc_id");
    WriteDocKey(w, hit.key);
    w.Key("score");
    w.Float(hit.score);
    if (include_metadata) {
      w.Key("metadata");
      WriteMetadata(w, hit.metadata);
    }
    if (include_embeddings) {
      w.Key("embedding");
      WriteEmbedding(w, hit.embedding);
    }
    w.EndObject();
  }
  w.EndArray();
  w.Field("search_latency_ms", reply->latency_ms);
  w.Field("search_path", SearchPathName(reply->path));
  w.EndObject();
}

}  // namespace kyrodb::server::http

// The KyroDB v1 messages a gRPC load client sends and how it judges the replies; shared by the
// nghttp2 client (grpc_h2_load_client.cc) and the gRPC-library client (grpc_load_client.cc), so
// both send the same requests and count the same outcomes.
#pragma once

#include <random>
#include <string>
#include <vector>

#include "kyrodb/v1/kyrodb.pb.h"
#include "load_run.h"

namespace kyrodb::bench {

// One SearchRequest per vector row (k, ef and collection from the spec); empty unless the op
// searches.
inline std::vector<kyrodb::v1::SearchRequest> SearchRequests(const LoadSpec& spec) {
  std::vector<kyrodb::v1::SearchRequest> out;
  if (spec.op != LoadOp::kSearch && spec.op != LoadOp::kMixed) return out;
  const FloatMatrix& v = *spec.vectors;
  out.resize(v.rows);
  for (size_t r = 0; r < v.rows; ++r) {
    out[r].mutable_query_embedding()->Add(v.Row(r), v.Row(r) + v.dim);
    out[r].set_k(spec.k);
    out[r].set_ef_search(spec.ef);
    out[r].set_namespace_(spec.collection);
  }
  return out;
}

// A client's reusable insert and query messages, and its replies.
struct GrpcMessages {
  explicit GrpcMessages(const LoadSpec& spec) {
    (*insert.mutable_metadata())["source"] = "kyrodb_bench";
    insert.set_namespace_(spec.collection);
    query.set_namespace_(spec.collection);
    query.set_include_embedding(spec.include_embedding);
  }

  // The next insert: a new id, the next row's embedding.
  const kyrodb::v1::InsertRequest& NextInsert(LoadRun& run) {
    const FloatMatrix& v = *run.spec().vectors;
    const float* row = v.Row(run.NextVectorRow());
    insert.set_doc_id(run.NextInsertId());
    insert.mutable_embedding()->Clear();
    insert.mutable_embedding()->Add(row, row + v.dim);
    return insert;
  }

  // The next query: a random id of the spec's id space.
  const kyrodb::v1::QueryRequest& NextQuery(LoadRun& run, std::mt19937_64& rng) {
    query.set_doc_id(run.RandomId(rng));
    return query;
  }

  // The application's verdict on a reply with gRPC status OK: "" for success, else the error.
  // An absent document is found=false with status OK (not an error); NOT_FOUND is a status
  // (an unknown collection).
  std::string ReplyError(RequestKind kind, bool* not_found) const {
    *not_found = false;
    switch (kind) {
      case RequestKind::kSearch:
        return search_reply.error();
      case RequestKind::kInsert:
        return insert_reply.success() ? "" : "Insert: " + insert_reply.error();
      case RequestKind::kQuery:
        *not_found = !query_reply.found();
        return query_reply.error();
    }
    return "";
  }

  kyrodb::v1::InsertRequest insert;
  kyrodb::v1::QueryRequest query;
  kyrodb::v1::SearchResponse search_reply;
  kyrodb::v1::InsertResponse insert_reply;
  kyrodb::v1::QueryResponse query_reply;
};

}  // namespace kyrodb::bench

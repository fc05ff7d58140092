#include "server/grpc/grpc_convert.h"

#include <utility>

namespace kyrodb::server::grpc_convert {

namespace {

static_assert(static_cast<int>(SearchPath::kHotAndCold) == pb::SearchResponse::HOT_AND_COLD &&
              static_cast<int>(SearchPath::kCacheHit) == pb::SearchResponse::CACHE_HIT);

ApiError Invalid(const std::string& field, const char* what) {
  return {ErrorCode::kInvalidArgument, field + ": " + what};
}

template <typename Repeated>
ApiStatus ToChildren(const Repeated& filters, const std::string& field, MetadataFilter* out) {
  out->children.resize(static_cast<size_t>(filters.size()));
  for (int i = 0; i < filters.size(); ++i) {
    if (ApiStatus e = ToFilter(filters[i], field + ".filters[" + std::to_string(i) + "]",
                               &out->children[static_cast<size_t>(i)])) {
      return e;
    }
  }
  return std::nullopt;
}

// The deprecated map is still honoured for old clients.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
const google::protobuf::Map<std::string, std::string>& LegacyFilters(const pb::SearchRequest& r) {
  return r.metadata_filters();
}
#pragma GCC diagnostic pop

}  // namespace

::grpc::Status ToGrpcStatus(const ApiError& error) {
  return {static_cast<::grpc::StatusCode>(GrpcCode(error.code)), error.message};
}

Metadata ToMetadata(const google::protobuf::Map<std::string, std::string>& map) {
  Metadata md;
  md.reserve(map.size());
  for (const auto& [k, v] : map) md.emplace_back(k, v);
  return md;
}

Document ToDocument(const pb::InsertRequest& request) {
  Document doc;
  doc.key = DocKey::Numeric(request.doc_id());
  doc.embedding.assign(request.embedding().begin(), request.embedding().end());
  doc.metadata = ToMetadata(request.metadata());
  return doc;
}

ApiStatus ToFilter(const pb::MetadataFilter& filter, const std::string& field, MetadataFilter* out) {
  using Kind = MetadataFilter::Kind;
  switch (filter.filter_type_case()) {
    case pb::MetadataFilter::kExact:
      if (filter.exact().key().empty()) return Invalid(field + ".exact.key", "must not be empty");
      out->kind = Kind::kExact;
      out->key = filter.exact().key();
      out->value = filter.exact().value();
      return std::nullopt;
    case pb::MetadataFilter::kRange: {
      const pb::RangeMatch& r = filter.range();
      if (r.key().empty()) return Invalid(field + ".range.key", "must not be empty");
      out->kind = Kind::kRange;
      out->key = r.key();
      switch (r.bound_case()) {
        case pb::RangeMatch::kGte: out->op = MetadataFilter::RangeOp::kGte; out->value = r.gte(); break;
        case pb::RangeMatch::kLte: out->op = MetadataFilter::RangeOp::kLte; out->value = r.lte(); break;
        case pb::RangeMatch::kGt: out->op = MetadataFilter::RangeOp::kGt; out->value = r.gt(); break;
        case pb::RangeMatch::kLt: out->op = MetadataFilter::RangeOp::kLt; out->value = r.lt(); break;
        case pb::RangeMatch::BOUND_NOT_SET:
          return Invalid(field + ".range", "no bound set (gte, lte, gt or lt)");
      }
      return std::nullopt;
    }
    case pb::MetadataFilter::kInMatch:
      if (filter.in_match().key().empty()) return Invalid(field + ".in_match.key", "must not be empty");
      out->kind = Kind::kIn;
      out->key = filter.in_match().key();
      out->values.assign(filter.in_match().values().begin(), filter.in_match().values().end());
      return std::nullopt;
    case pb::MetadataFilter::kAndFilter:
      out->kind = Kind::kAnd;
      return ToChildren(filter.and_filter().filters(), field + ".and_filter", out);
    case pb::MetadataFilter::kOrFilter:
      out->kind = Kind::kOr;
      return ToChildren(filter.or_filter().filters(), field + ".or_filter", out);
    case pb::MetadataFilter::kNotFilter:
      if (!filter.not_filter().has_filter()) return Invalid(field + ".not_filter.filter", "is required");
      out->kind = Kind::kNot;
      out->children.resize(1);
      return ToFilter(filter.not_filter().filter(), field + ".not_filter.filter", &out->children[0]);
    case pb::MetadataFilter::FILTER_TYPE_NOT_SET:
      break;
  }
  return Invalid(field, "no filter set (exact, range, in_match, and_filter, or_filter or not_filter)");
}

ApiStatus ToFilter(const pb::SearchRequest& request, MetadataFilter* out, bool* has_filter) {
  // An empty top-level `filter {}` filters nothing (what a client that always sets it means).
  const bool typed = request.has_filter() &&
                     request.filter().filter_type_case() != pb::MetadataFilter::FILTER_TYPE_NOT_SET;
  const auto& legacy_filters = LegacyFilters(request);
  const bool legacy = !legacy_filters.empty();
  *has_filter = typed || legacy;
  if (!legacy) return typed ? ToFilter(request.filter(), "filter", out) : std::nullopt;

  out->kind = MetadataFilter::Kind::kAnd;
  out->children.reserve(legacy_filters.size() + (typed ? 1 : 0));
  for (const auto& [k, v] : legacy_filters) {
    MetadataFilter& c = out->children.emplace_back();
    c.kind = MetadataFilter::Kind::kExact;
    c.key = k;
    c.value = v;
  }
  if (typed) return ToFilter(request.filter(), "filter", &out->children.emplace_back());
  return std::nullopt;
}

SearchRequest ToSearchRequest(const pb::SearchRequest& request) {
  SearchRequest r;
  r.query.assign(request.query_embedding().begin(), request.query_embedding().end());
  r.k = request.k();
  r.ef = request.ef_search();
  r.has_min_score = request.min_score() != 0.0f;
  r.min_score = request.min_score();
  r.include_embeddings = request.include_embeddings();
  r.include_metadata = true;
  return r;
}

void FillSearchResponse(SearchReply&& reply, pb::SearchResponse* out) {
  auto* results = out->mutable_results();
  results->Reserve(static_cast<int>(reply.hits.size()));
  for (SearchHit& hit : reply.hits) {
    pb::SearchResult* r = results->Add();
    r->set_doc_id(hit.key.id);
    r->set_score(hit.score);
    if (!hit.embedding.empty()) r->mutable_embedding()->Add(hit.embedding.begin(), hit.embedding.end());
    auto* md = r->mutable_metadata();
    for (auto& [k, v] : hit.metadata) (*md)[std::move(k)] = std::move(v);
  }
  out->set_total_found(static_cast<uint32_t>(reply.hits.size()));
  out->set_search_latency_ms(static_cast<float>(reply.latency_ms));
  out->set_search_path(static_cast<pb::SearchResponse::SearchPath>(reply.path));
}

pb::QueryResponse::Tier ToProtoTier(Tier tier) {
  switch (tier) {
    case Tier::kCache: return pb::QueryResponse::CACHE;
    case Tier::kHotTier: return pb::QueryResponse::HOT_TIER;
    case Tier::kColdTier: return pb::QueryResponse::COLD_TIER;
  }
  return pb::QueryResponse::UNKNOWN;
}

void FillQueryResponse(GetResult&& doc, pb::QueryResponse* out) {
  out->set_found(true);
  out->set_doc_id(doc.key.id);
  if (!doc.embedding.empty()) out->mutable_embedding()->Add(doc.embedding.begin(), doc.embedding.end());
  auto* md = out->mutable_metadata();
  for (auto& [k, v] : doc.metadata) (*md)[std::move(k)] = std::move(v);
  out->set_served_from(ToProtoTier(doc.served_from));
}

}  // namespace kyrodb::server::grpc_convert

#include "server/grpc/grpc_service.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <utility>

#include "server/grpc/grpc_convert.h"

#ifndef KYRODB_VERSION_STRING
#define KYRODB_VERSION_STRING "0.0.0"
#endif
#ifndef KYRODB_GIT_COMMIT
#define KYRODB_GIT_COMMIT ""
#endif

namespace kyrodb::server {

namespace pb = ::kyrodb::v1;
using grpc_convert::ToGrpcStatus;

namespace {

// Single Inserts per Service::BulkInsert call: one WAL group commit for up to this many RPCs.
constexpr size_t kMaxInsertBatch = 512;

int64_t MonotonicNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t UnixSeconds() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Records the call and finishes it with `status`.
GrpcService::Unary* Reply(GrpcService::Ctx* ctx, const CallTimer& timer, ::grpc::Status status) {
  timer.Record(!status.ok());
  GrpcService::Unary* reactor = ctx->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

GrpcService::Unary* ReplyError(GrpcService::Ctx* ctx, const CallTimer& timer, const ApiError& e) {
  return Reply(ctx, timer, ToGrpcStatus(e));
}

double Percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

}  // namespace

CallTimer::CallTimer(Service& service, Endpoint endpoint)
    : service_(&service), endpoint_(endpoint), start_ns_(MonotonicNs()) {}

void CallTimer::Record(bool error) const {
  service_->metrics().Record(Transport::kGrpc, endpoint_,
                             static_cast<double>(MonotonicNs() - start_ns_) * 1e-9, error);
}

GrpcService::GrpcService(server::Service& service)
    : service_(service), gate_(service), batcher_(service, kMaxInsertBatch) {
  SetMessageAllocatorFor_Search(&search_messages_);
  SetMessageAllocatorFor_Query(&query_messages_);
  SetMessageAllocatorFor_Insert(&insert_messages_);
}

GrpcService::Unary* GrpcService::Insert(Ctx* ctx, const pb::InsertRequest* req,
                                        pb::InsertResponse* resp) {
  const CallTimer timer(service_, Endpoint::kInsert);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  const RequestContext& rc = pass->caller();
  // Validate here, on the RPC's thread, so that the batch only carries documents that can land.
  auto collection = service_.ResolveCollection(rc, req->namespace_());
  if (!collection.ok()) return ReplyError(ctx, timer, collection.error());
  Document doc = grpc_convert::ToDocument(*req);
  if (ApiStatus e = server::Service::ValidateDocKey(doc.key)) return ReplyError(ctx, timer, *e);
  if (ApiStatus e = server::Service::ValidateEmbedding(**collection, doc.embedding, "embedding")) {
    return ReplyError(ctx, timer, *e);
  }
  Unary* reactor = ctx->DefaultReactor();
  // The call holds its slot until the batch acknowledged it.
  auto held = std::make_shared<CallGate::Pass>(std::move(*pass));
  batcher_.Submit(held->caller(), req->namespace_(), std::move(doc),
                  [timer, reactor, resp, held](const ApiStatus& e) mutable {
                    timer.Record(e.has_value());
                    held.reset();  // the slot is free before the client sees the reply
                    if (e) {
                      reactor->Finish(ToGrpcStatus(*e));
                      return;
                    }
                    resp->set_success(true);
                    resp->set_inserted_at(UnixSeconds());
                    resp->set_tier(pb::InsertResponse::HOT_TIER);
                    resp->set_total_inserted(1);
                    reactor->Finish(::grpc::Status::OK);
                  });
  return reactor;
}

GrpcService::InsertReader* GrpcService::BulkInsert(Ctx* ctx, pb::InsertResponse* resp) {
  return NewBulkInsertReactor(service_, gate_.Enter(*ctx), resp);
}

GrpcService::InsertReader* GrpcService::BulkLoadHnsw(Ctx* ctx, pb::BulkLoadResponse* resp) {
  return NewBulkLoadReactor(service_, gate_.Enter(*ctx), resp);
}

::grpc::ServerBidiReactor<pb::SearchRequest, pb::SearchResponse>* GrpcService::BulkSearch(Ctx* ctx) {
  return NewBulkSearchReactor(service_, gate_, gate_.Enter(*ctx, /*charge=*/false));
}

GrpcService::Unary* GrpcService::Delete(Ctx* ctx, const pb::DeleteRequest* req,
                                        pb::DeleteResponse* resp) {
  const CallTimer timer(service_, Endpoint::kDelete);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  auto r = service_.Delete(pass->caller(), req->namespace_(), DocKey::Numeric(req->doc_id()));
  if (!r.ok()) return ReplyError(ctx, timer, r.error());
  resp->set_success(true);
  resp->set_existed(*r);
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::UpdateMetadata(Ctx* ctx, const pb::UpdateMetadataRequest* req,
                                                pb::UpdateMetadataResponse* resp) {
  const CallTimer timer(service_, Endpoint::kUpdateMetadata);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  auto r = service_.UpdateMetadata(pass->caller(), req->namespace_(),
                                   DocKey::Numeric(req->doc_id()),
                                   grpc_convert::ToMetadata(req->metadata()), req->merge());
  if (!r.ok()) return ReplyError(ctx, timer, r.error());
  // An absent document is not an RPC error (as Delete and Query); success says it changed.
  resp->set_success(*r);
  resp->set_existed(*r);
  if (!*r) resp->set_error("document " + std::to_string(req->doc_id()) + " not found");
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::Query(Ctx* ctx, const pb::QueryRequest* req,
                                       pb::QueryResponse* resp) {
  const CallTimer timer(service_, Endpoint::kQuery);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  auto r = service_.Query(pass->caller(), req->namespace_(), DocKey::Numeric(req->doc_id()),
                          req->include_embedding());
  if (r.ok()) {
    grpc_convert::FillQueryResponse(std::move(*r), resp);
  } else if (r.error().code == ErrorCode::kDocumentNotFound) {
    resp->set_found(false);
    resp->set_doc_id(req->doc_id());
  } else {
    return ReplyError(ctx, timer, r.error());
  }
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::Search(Ctx* ctx, const pb::SearchRequest* req,
                                        pb::SearchResponse* resp) {
  const CallTimer timer(service_, Endpoint::kSearch);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  MetadataFilter filter;
  bool has_filter = false;
  if (ApiStatus e = grpc_convert::ToFilter(*req, &filter, &has_filter)) {
    return ReplyError(ctx, timer, *e);
  }
  auto r = service_.Search(pass->caller(), req->namespace_(), grpc_convert::ToSearchRequest(*req),
                           has_filter ? &filter : nullptr);
  if (!r.ok()) return ReplyError(ctx, timer, r.error());
  grpc_convert::FillSearchResponse(std::move(*r), resp);
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::BulkQuery(Ctx* ctx, const pb::BulkQueryRequest* req,
                                           pb::BulkQueryResponse* resp) {
  const CallTimer timer(service_, Endpoint::kBulkQuery);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  const RequestContext& rc = pass->caller();
  auto collection = service_.ResolveCollection(rc, req->namespace_());
  if (!collection.ok()) return ReplyError(ctx, timer, collection.error());
  resp->mutable_results()->Reserve(req->doc_ids_size());
  uint32_t found = 0;
  for (int i = 0; i < req->doc_ids_size(); ++i) {
    const uint64_t id = req->doc_ids(i);
    auto r = service_.Query(rc, req->namespace_(), DocKey::Numeric(id), req->include_embeddings());
    pb::QueryResponse* out = resp->add_results();
    if (r.ok()) {
      grpc_convert::FillQueryResponse(std::move(*r), out);
      ++found;
    } else if (r.error().code == ErrorCode::kDocumentNotFound) {
      out->set_found(false);
      out->set_doc_id(id);
    } else {
      ApiError e = r.error();
      e.message = "doc_ids[" + std::to_string(i) + "]: " + e.message;
      resp->Clear();
      return ReplyError(ctx, timer, e);
    }
  }
  resp->set_total_found(found);
  resp->set_total_requested(static_cast<uint32_t>(req->doc_ids_size()));
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::BatchDelete(Ctx* ctx, const pb::BatchDeleteRequest* req,
                                             pb::BatchDeleteResponse* resp) {
  const CallTimer timer(service_, Endpoint::kBatchDelete);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  const RequestContext& rc = pass->caller();
  ApiResult<uint64_t> r = uint64_t{0};
  switch (req->delete_criteria_case()) {
    case pb::BatchDeleteRequest::kIds: {
      std::vector<DocKey> keys;
      keys.reserve(static_cast<size_t>(req->ids().doc_ids_size()));
      for (uint64_t id : req->ids().doc_ids()) keys.push_back(DocKey::Numeric(id));
      r = service_.BatchDelete(rc, req->namespace_(), keys);
      break;
    }
    case pb::BatchDeleteRequest::kFilter: {
      MetadataFilter filter;
      if (ApiStatus e = grpc_convert::ToFilter(req->filter(), "filter", &filter)) {
        return ReplyError(ctx, timer, *e);
      }
      r = service_.BatchDeleteByFilter(rc, req->namespace_(), filter);
      break;
    }
    case pb::BatchDeleteRequest::DELETE_CRITERIA_NOT_SET:
      return ReplyError(ctx, timer, {ErrorCode::kMissingField,
                                     "delete_criteria: set ids or filter"});
  }
  if (!r.ok()) return ReplyError(ctx, timer, r.error());
  resp->set_success(true);
  resp->set_deleted_count(*r);
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::Health(Ctx* ctx, const pb::HealthRequest* req,
                                        pb::HealthResponse* resp) {
  const CallTimer timer(service_, Endpoint::kHealth);
  const std::string& component = req->component();
  if (!component.empty() && component != "cache" && component != "hot_tier" &&
      component != "cold_tier" && component != "wal" && component != "recovery") {
    return ReplyError(ctx, timer, {ErrorCode::kInvalidArgument,
                                   "component: unknown component '" + component +
                                       "' (cache, hot_tier, cold_tier, wal, recovery or empty)"});
  }
  HealthReport report = service_.Health();
  resp->set_status(static_cast<pb::HealthResponse::Status>(report.state));
  resp->set_version(KYRODB_VERSION_STRING);
  resp->set_git_commit(KYRODB_GIT_COMMIT);
  resp->set_uptime_seconds(report.uptime_seconds);
  auto* components = resp->mutable_components();
  for (auto& [name, state] : report.components) {
    if (component.empty() || name == component) (*components)[std::move(name)] = std::move(state);
  }
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::Metrics(Ctx* ctx, const pb::MetricsRequest* /*req*/,
                                         pb::MetricsResponse* resp) {
  const CallTimer timer(service_, Endpoint::kMetrics);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  const EngineTotals t = service_.Totals();
  const RequestMetrics& m = service_.metrics();
  const RequestMetrics::Summary all = m.Summarize();
  auto requests = [&](std::initializer_list<Endpoint> endpoints) {
    uint64_t n = 0;
    for (Endpoint e : endpoints) n += m.Summarize(&e).requests;
    return n;
  };
  const uint64_t queries =
      requests({Endpoint::kSearch, Endpoint::kBulkSearch, Endpoint::kQuery, Endpoint::kBulkQuery});
  const double uptime = static_cast<double>(std::max<uint64_t>(service_.Health().uptime_seconds, 1));

  resp->set_cache_hits(t.cache_hits);
  resp->set_cache_misses(t.cache_misses);
  resp->set_cache_hit_rate(Percent(t.cache_hits, t.cache_hits + t.cache_misses));
  resp->set_cache_size(t.cache_entries);
  // Lookups by id that reached the hot tier: it answered (hot) or passed them on (cold, missing).
  const uint64_t hot_misses = t.served_cold + t.query_misses;
  resp->set_hot_tier_hits(t.served_hot);
  resp->set_hot_tier_misses(hot_misses);
  resp->set_hot_tier_hit_rate(Percent(t.served_hot, t.served_hot + hot_misses));
  resp->set_hot_tier_size(t.hot_documents);
  resp->set_hot_tier_flushes(t.flushes);
  resp->set_cold_tier_searches(t.search_cache_misses);  // searches that ran (not result-cache hits)
  resp->set_cold_tier_size(t.cold_documents);
  resp->set_p50_latency_ms(all.p50_ms);
  resp->set_p95_latency_ms(all.p95_ms);
  resp->set_p99_latency_ms(all.p99_ms);
  resp->set_total_queries(queries);
  resp->set_total_inserts(t.inserts);  // documents written, over both transports
  resp->set_queries_per_second(static_cast<double>(queries) / uptime);
  resp->set_inserts_per_second(static_cast<double>(t.inserts) / uptime);
  resp->set_memory_usage_bytes(t.memory_bytes);
  resp->set_disk_usage_bytes(t.disk_bytes);
  rusage ru{};
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    const double cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
    resp->set_cpu_usage_percent(100.0 * cpu_s / uptime);  // average since start
  }
  // Reads answered from a cache (L1 documents, L1b search results) over all reads.
  const uint64_t cached = t.served_cache + t.search_cache_hits;
  const uint64_t reads = t.served_cache + t.served_hot + t.served_cold + t.query_misses +
                         t.search_cache_hits + t.search_cache_misses;
  resp->set_overall_hit_rate(Percent(cached, reads));
  resp->set_collected_at(UnixSeconds());
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::FlushHotTier(Ctx* ctx, const pb::FlushRequest* /*req*/,
                                              pb::FlushResponse* resp) {
  const CallTimer timer(service_, Endpoint::kFlush);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  auto r = service_.Flush(pass->caller(), "");  // every collection of the tenant
  if (!r.ok()) return ReplyError(ctx, timer, r.error());
  resp->set_success(true);
  resp->set_documents_flushed(r->docs_flushed);
  resp->set_flush_duration_ms(static_cast<float>(r->duration_ms));
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::CreateSnapshot(Ctx* ctx, const pb::SnapshotRequest* /*req*/,
                                                pb::SnapshotResponse* resp) {
  const CallTimer timer(service_, Endpoint::kSnapshot);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  // request.path is ignored: snapshots live in the data directory (the MANIFEST names them);
  // copies elsewhere are kyrodb_backup's job. snapshot_path says where it went.
  auto r = service_.Snapshot(pass->caller());
  if (!r.ok()) return ReplyError(ctx, timer, r.error());
  resp->set_success(true);
  resp->set_snapshot_path(std::move(r->path));
  resp->set_documents_snapshotted(r->documents);
  resp->set_snapshot_size_bytes(r->bytes);
  return Reply(ctx, timer, ::grpc::Status::OK);
}

GrpcService::Unary* GrpcService::GetConfig(Ctx* ctx, const pb::ConfigRequest* /*req*/,
                                           pb::ConfigResponse* resp) {
  const CallTimer timer(service_, Endpoint::kConfig);
  auto pass = gate_.Enter(*ctx);
  if (!pass.ok()) return ReplyError(ctx, timer, pass.error());
  const ServerConfig& c = service_.config();
  resp->set_hot_tier_max_size(c.hot_tier.max_size_mb << 20);  // bytes
  resp->set_hot_tier_max_age_seconds(c.hot_tier.flush_interval_secs);
  resp->set_hnsw_max_elements(c.hnsw.max_elements);
  resp->set_data_dir(c.persistence.data_dir);
  resp->set_fsync_policy(c.persistence.fsync_policy);
  resp->set_snapshot_interval(c.persistence.snapshot_interval_secs);
  resp->set_flush_interval_seconds(c.hot_tier.flush_interval_secs);
  resp->set_embedding_dimension(c.hnsw.dimension);
  resp->set_version(KYRODB_VERSION_STRING);
  resp->set_hnsw_m(c.hnsw.m);
  resp->set_hnsw_ef_construction(c.hnsw.ef_construction);
  resp->set_hnsw_ef_search(c.hnsw.ef_search);
  resp->set_hnsw_distance(c.hnsw.distance);
  resp->set_hnsw_disable_normalization_check(false);
  return Reply(ctx, timer, ::grpc::Status::OK);
}

}  // namespace kyrodb::server

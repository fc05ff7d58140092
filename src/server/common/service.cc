#include "server/common/service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <thread>

#include "base/clock.h"

namespace kyrodb::server {

namespace {

constexpr uint64_t kMaxNumericId = (1ull << 63) - 1;
constexpr size_t kMaxStringId = 512;

std::string CollectionName(std::string_view name) {
  return name.empty() ? std::string(kDefaultCollection) : std::string(name);
}

std::string KeyText(const DocKey& key) {
  return key.is_string() ? "'" + key.external + "'" : std::to_string(key.id);
}

ApiError NotReady() {
  return {ErrorCode::kNotReady, "the server is recovering its data; retry when /ready says 200"};
}

// Resident set size of this process, from /proc/self/statm.
uint64_t ResidentBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t pages = 0, resident = 0;
  if (!(f >> pages >> resident)) return 0;
  return resident * 4096;
}

uint64_t DirectoryBytes(const std::string& dir) {
  std::error_code ec;
  uint64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fec;
    if (it->is_regular_file(fec)) total += it->file_size(fec);
  }
  return total;
}

}  // namespace

namespace {
RateLimiter::Options LimiterOptions(const ServerConfig& c) {
  RateLimiter::Options o;
  o.enabled = c.rate_limit.enabled;
  o.tenant_qps = c.rate_limit.max_qps_per_tenant;
  o.connection_qps = c.rate_limit.max_qps_per_connection;
  o.global_qps = c.rate_limit.max_qps_global;
  o.burst = c.rate_limit.burst;
  return o;
}
}  // namespace

Service::Service(ServerConfig config)
    : config_(std::move(config)), limiter_(LimiterOptions(config_)), started_at_ms_(NowMs()) {
  max_searches_ = config_.limits.max_concurrent_searches != 0
                      ? config_.limits.max_concurrent_searches
                      : std::max(2u, 2 * std::thread::hardware_concurrency());
}
Service::~Service() {
  if (db_ != nullptr && !closed_) db_->Close().IgnoreError();
}

Result<std::unique_ptr<Service>> Service::Create(const ServerConfig& config) {
  std::unique_ptr<Service> s(new Service(config));
  if (config.auth.enabled) {
    auto keys = ApiKeyStore::FromFile(config.auth.api_keys_file);
    if (!keys.ok()) return keys.status();
    s->keys_ = std::move(keys).value();
    spdlog::info("auth: {} API keys from {}", s->keys_->size(), config.auth.api_keys_file);
  }
  return s;
}

ApiResult<RequestContext> Service::Authenticate(std::string_view x_api_key,
                                                std::string_view authorization) const {
  if (keys_ == nullptr) return RequestContext{};
  auto p = keys_->Authenticate(ExtractApiKey(x_api_key, authorization));
  if (!p.ok()) return p.error();
  return RequestContext{std::move(p->tenant), p->is_admin, p->max_qps, p->max_vectors};
}

Status Service::ReloadKeys() {
  if (keys_ == nullptr) return Status::Ok();
  KYRODB_RETURN_IF_ERROR(keys_->Reload(config_.auth.api_keys_file));
  spdlog::info("auth: reloaded {} API keys from {}", keys_->size(), config_.auth.api_keys_file);
  return Status::Ok();
}

namespace {

// The answer to a request a rate limit refused.
ApiError RateLimited(int retry, int* retry_after_secs) {
  if (retry_after_secs != nullptr) *retry_after_secs = retry;
  return ApiError{ErrorCode::kResourceExhausted, fmt::format("rate limit exceeded; retry after {} s", retry)};
}

}  // namespace

ApiStatus Service::Admit(const RequestContext& ctx, TokenBucket* connection, int* retry_after_secs) {
  int retry = 1;
  if (limiter_.Allow(connection, ctx.tenant, ctx.max_qps, &retry)) return std::nullopt;
  return RateLimited(retry, retry_after_secs);
}

ApiStatus Service::AdmitUnauthenticated(TokenBucket* connection, int* retry_after_secs) {
  int retry = 1;
  if (limiter_.AllowUnauthenticated(connection, &retry)) return std::nullopt;
  return RateLimited(retry, retry_after_secs);
}

Status Service::Recover() {
  const auto t0 = std::chrono::steady_clock::now();
  auto db = Database::Open(config_.ToDatabaseOptions());
  if (!db.ok()) return db.status();
  auto existing = (*db)->GetCollection(kDefaultCollection, kDefaultCollection);
  if (!existing.ok()) {
    auto created = (*db)->CreateCollection(kDefaultCollection, kDefaultCollection,
                                           config_.DefaultCollectionOptions());
    if (!created.ok()) return created.status();
  }
  db_ = std::move(db).value();
  ready_.store(true, std::memory_order_release);
  spdlog::info("{} ({:.0f} ms with opening)", db_->recovery_summary(),
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return Status::Ok();
}

Result<std::unique_ptr<Service>> Service::Open(const ServerConfig& config) {
  auto s = Create(config);
  if (!s.ok()) return s.status();
  KYRODB_RETURN_IF_ERROR((*s)->Recover());
  return s;
}

const std::string& Service::recovery_summary() const {
  static const std::string kNone = "not recovered yet";
  return ready() ? db_->recovery_summary() : kNone;
}

// ---------------- validation ----------------

ApiResult<std::shared_ptr<Collection>> Service::ResolveCollection(const RequestContext& ctx,
                                                                  std::string_view name) const {
  if (!ready()) return NotReady();
  const std::string n = CollectionName(name);
  auto c = db_->GetCollection(ctx.tenant, n);
  if (c.ok()) return std::move(c).value();
  if (n == kDefaultCollection) {
    // Every tenant has a `default` collection shaped by config.hnsw, made on first use, so
    // requests that name no collection work for every tenant.
    auto made = db_->CreateCollection(ctx.tenant, n, config_.DefaultCollectionOptions());
    if (made.ok()) return std::move(made).value();
    c = db_->GetCollection(ctx.tenant, n);  // created concurrently
    if (c.ok()) return std::move(c).value();
    return FromStatus(made.status());
  }
  return ApiError{ErrorCode::kCollectionNotFound, "collection '" + n + "' does not exist"};
}

ApiStatus Service::ValidateEmbedding(const Collection& c, const std::vector<float>& v,
                                     std::string_view field) {
  if (v.empty()) return ApiError{ErrorCode::kInvalidEmbedding, fmt::format("{} is empty", field)};
  if (v.size() > kMaxDimension) {
    return ApiError{ErrorCode::kInvalidEmbedding,
                    fmt::format("{} has {} values; the maximum is {}", field, v.size(), kMaxDimension)};
  }
  if (v.size() != c.options().dimension) {
    return ApiError{ErrorCode::kDimensionMismatch,
                    fmt::format("{} has dimension {}, collection '{}' expects {}", field, v.size(),
                                c.name(), c.options().dimension)};
  }
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return ApiError{ErrorCode::kNonFiniteValue,
                      fmt::format("{} has a non-finite value at index {}", field, i)};
    }
  }
  return std::nullopt;
}

ApiStatus Service::ValidateDocKey(const DocKey& key) {
  if (key.is_string()) {
    if (key.external.size() > kMaxStringId) {
      return ApiError{ErrorCode::kInvalidDocId, "doc_id: string ids are at most 512 bytes"};
    }
    return std::nullopt;
  }
  if (key.id < 1 || key.id > kMaxNumericId) {
    return ApiError{ErrorCode::kInvalidDocId, "doc_id must be a number in 1..2^63-1 or a non-empty string"};
  }
  return std::nullopt;
}

// ---------------- data ----------------

namespace {
ApiError QuotaExceeded(const RequestContext& ctx, uint64_t have, uint64_t adding) {
  return ApiError{ErrorCode::kResourceExhausted,
                  fmt::format("tenant '{}' holds {} vectors; adding {} would pass its quota of {}",
                              ctx.tenant, have, adding, ctx.max_vectors)};
}
}  // namespace

uint64_t Service::TenantDocuments(const std::string& tenant) const {
  uint64_t total = 0;
  for (const CollectionInfo& info : db_->ListCollections(tenant)) {
    auto c = db_->GetCollection(tenant, info.name);
    if (c.ok()) total += (*c)->document_count();
  }
  return total;
}

ApiResult<DocKey> Service::Insert(const RequestContext& ctx, std::string_view collection,
                                  Document doc) {
  auto c = ResolveCollection(ctx, collection);
  if (!c.ok()) return c.error();
  if (auto e = ValidateDocKey(doc.key)) return *e;
  if (auto e = ValidateEmbedding(**c, doc.embedding, "embedding")) return *e;
  if (ctx.max_vectors != 0) {
    const uint64_t have = TenantDocuments(ctx.tenant);
    if (have + 1 > ctx.max_vectors) return QuotaExceeded(ctx, have, 1);
  }
  Status s = (*c)->Upsert(doc);
  if (!s.ok()) return FromStatus(s);
  inserts_.fetch_add(1, std::memory_order_relaxed);
  return std::move(doc.key);
}

BulkInsertReply Service::BulkInsert(const RequestContext& ctx, std::string_view collection,
                                    std::vector<Document> docs) {
  BulkInsertReply reply;
  auto c = ResolveCollection(ctx, collection);
  if (!c.ok()) {
    for (size_t i = 0; i < docs.size(); ++i) reply.errors.emplace_back(i, c.error());
    reply.failed = docs.size();
    return reply;
  }
  std::vector<Document> valid;
  std::vector<size_t> index;
  valid.reserve(docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    ApiStatus e = ValidateDocKey(docs[i].key);
    if (!e) e = ValidateEmbedding(**c, docs[i].embedding, "embedding");
    if (e) {
      reply.errors.emplace_back(i, std::move(*e));
      continue;
    }
    valid.push_back(std::move(docs[i]));
    index.push_back(i);
  }
  if (ctx.max_vectors != 0 && !valid.empty()) {
    const uint64_t have = TenantDocuments(ctx.tenant);
    if (have + valid.size() > ctx.max_vectors) {
      const ApiError e = QuotaExceeded(ctx, have, valid.size());
      for (size_t i : index) reply.errors.emplace_back(i, e);
      valid.clear();
      index.clear();
    }
  }
  std::vector<Status> results;
  (*c)->UpsertBatch(valid, &results).IgnoreError();  // per-document statuses below
  for (size_t j = 0; j < results.size(); ++j) {
    if (results[j].ok()) {
      ++reply.inserted;
    } else {
      reply.errors.emplace_back(index[j], FromStatus(results[j]));
    }
  }
  std::sort(reply.errors.begin(), reply.errors.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  reply.failed = reply.errors.size();
  inserts_.fetch_add(reply.inserted, std::memory_order_relaxed);
  return reply;
}

ApiResult<GetResult> Service::Query(const RequestContext& ctx, std::string_view collection,
                                    const DocKey& key, bool include_embedding) {
  auto c = ResolveCollection(ctx, collection);
  if (!c.ok()) return c.error();
  if (auto e = ValidateDocKey(key)) return *e;
  auto r = (*c)->Get(key, include_embedding);
  if (!r.ok()) {
    if (r.status().code() == StatusCode::kNotFound) {
      query_misses_.fetch_add(1, std::memory_order_relaxed);
      return ApiError{ErrorCode::kDocumentNotFound, "document " + KeyText(key) + " not found"};
    }
    return FromStatus(r.status());
  }
  served_from_[static_cast<int>(r->served_from)].fetch_add(1, std::memory_order_relaxed);
  return std::move(r).value();
}

ApiResult<SearchReply> Service::Search(const RequestContext& ctx, std::string_view collection,
                                       SearchRequest request, const MetadataFilter* filter) {
  auto c = ResolveCollection(ctx, collection);
  if (!c.ok()) return c.error();
  if (auto e = ValidateEmbedding(**c, request.query, "query_embedding")) return *e;
  const uint32_t max_k = std::min(kMaxK, config_.limits.max_k);
  const uint32_t max_ef = std::min(kMaxEfSearch, config_.limits.max_ef_search);
  if (request.k < 1 || request.k > max_k) {
    return ApiError{ErrorCode::kInvalidK, fmt::format("k must be in 1..{} (got {})", max_k, request.k)};
  }
  if (request.ef > max_ef) {
    return ApiError{ErrorCode::kInvalidEfSearch,
                    fmt::format("ef_search must be at most {} (got {})", max_ef, request.ef)};
  }
  if (request.has_min_score && !std::isfinite(request.min_score)) {
    return ApiError{ErrorCode::kNonFiniteValue, "min_score must be a finite number"};
  }
  if (filter != nullptr) {
    request.filter = [filter](const Metadata& md) { return Matches(*filter, md); };
  }
  // Admission: a bounded number of searches run; a bounded number wait, for a bounded time.
  {
    std::unique_lock<std::mutex> l(search_mu_);
    if (searches_running_ >= max_searches_) {
      if (searches_waiting_ >= config_.limits.search_queue) {
        return ApiError{ErrorCode::kResourceExhausted,
                        fmt::format("server overloaded: {} searches running, {} waiting; retry later",
                                    searches_running_, searches_waiting_)};
      }
      ++searches_waiting_;
      const bool got = search_cv_.wait_for(
          l, std::chrono::milliseconds(config_.limits.search_queue_timeout_ms),
          [&] { return searches_running_ < max_searches_; });
      --searches_waiting_;
      if (!got) {
        return ApiError{ErrorCode::kResourceExhausted,
                        fmt::format("server overloaded: no search slot within {} ms; retry later",
                                    config_.limits.search_queue_timeout_ms)};
      }
    }
    ++searches_running_;
  }
  struct Release {
    Service* s;
    ~Release() {
      {
        std::lock_guard<std::mutex> l(s->search_mu_);
        --s->searches_running_;
      }
      s->search_cv_.notify_one();
    }
  } release{this};
  SearchReply reply;
  const auto t0 = std::chrono::steady_clock::now();
  auto hits = (*c)->Search(request, &reply.path);
  reply.latency_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!hits.ok()) return FromStatus(hits.status());
  reply.hits = std::move(hits).value();
  return reply;
}

ApiResult<bool> Service::Delete(const RequestContext& ctx, std::string_view collection,
                                const DocKey& key) {
  auto c = ResolveCollection(ctx, collection);
  if (!c.ok()) return c.error();
  if (auto e = ValidateDocKey(key)) return *e;
  Status s = (*c)->Delete(key);
  if (s.code() == StatusCode::kNotFound) return false;
  if (!s.ok()) return FromStatus(s);
  return true;
}

ApiResult<uint64_t> Service::BatchDelete(const RequestContext& ctx, std::string_view collection,
                                         const std::vector<DocKey>& keys) {
  auto c = ResolveCollection(ctx, collection);
  if (!c.ok()) return c.error();
  for (const DocKey& k : keys) {
    if (auto e = ValidateDocKey(k)) return *e;
  }
  uint64_t deleted = 0;
  for (const DocKey& k : keys) {
    Status s = (*c)->Delete(k);
    if (s.ok()) {
      ++deleted;
    } else if (s.code() != StatusCode::kNotFound) {
      return FromStatus(s);
    }
  }
  return deleted;
}

ApiResult<uint64_t> Service::BatchDeleteByFilter(const RequestContext& ctx,
                                                 std::string_view collection,
                                                 const MetadataFilter& filter) {
  auto c = ResolveCollection(ctx, collection);
  if (!c.ok()) return c.error();
  const std::vector<DocKey> keys =
      (*c)->FindKeys([&filter](const Metadata& md) { return Matches(filter, md); });
  return BatchDelete(ctx, collection, keys);
}

ApiResult<bool> Service::UpdateMetadata(const RequestContext& ctx, std::string_view collection,
                                        const DocKey& key, const Metadata& metadata, bool merge) {
  auto c = ResolveCollection(ctx, collection);
  if (!c.ok()) return c.error();
  if (auto e = ValidateDocKey(key)) return *e;
  Status s = (*c)->UpdateMetadata(key, metadata, merge);
  if (s.code() == StatusCode::kNotFound) return false;
  if (!s.ok()) return FromStatus(s);
  return true;
}

ApiResult<FlushResult> Service::Flush(const RequestContext& ctx, std::string_view collection) {
  if (!ready()) return NotReady();
  if (!ctx.is_admin) return ApiError{ErrorCode::kPermissionDenied, "flush needs an admin key"};
  std::vector<std::shared_ptr<Collection>> targets;
  if (collection.empty()) {
    for (const CollectionInfo& info : db_->ListCollections(ctx.tenant)) {
      auto c = db_->GetCollection(ctx.tenant, info.name);
      if (c.ok()) targets.push_back(std::move(c).value());
    }
  } else {
    auto c = ResolveCollection(ctx, collection);
    if (!c.ok()) return c.error();
    targets.push_back(std::move(c).value());
  }
  FlushResult total;
  for (auto& c : targets) {
    auto r = c->Flush();
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kNotFound) continue;  // dropped meanwhile
      return FromStatus(r.status());
    }
    total.docs_flushed += r->docs_flushed;
    total.duration_ms += r->duration_ms;
    spdlog::info("flush: {}/{}: {} documents into HNSW in {:.1f} ms", ctx.tenant, c->name(),
                 r->docs_flushed, r->duration_ms);
  }
  return total;
}

ApiResult<SnapshotReply> Service::Snapshot(const RequestContext& ctx) {
  if (!ready()) return NotReady();
  if (!ctx.is_admin) return ApiError{ErrorCode::kPermissionDenied, "snapshot needs an admin key"};
  const auto t0 = std::chrono::steady_clock::now();
  Status s = db_->Snapshot();
  if (!s.ok()) return FromStatus(s);
  SnapshotReply reply;
  reply.duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // The newest snapshot directory (snapshot-<lsn>, zero-padded, so the largest name is newest).
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(config_.persistence.data_dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("snapshot-", 0) == 0 && name.find(".tmp") == std::string::npos &&
        it->path().string() > reply.path) {
      reply.path = it->path().string();
    }
  }
  if (!reply.path.empty()) reply.bytes = DirectoryBytes(reply.path);
  for (const CollectionInfo& info : db_->ListAllCollections()) reply.documents += info.documents;
  spdlog::info("snapshot: {} ({} documents, {} bytes) in {:.1f} ms", reply.path, reply.documents,
               reply.bytes, reply.duration_ms);
  return reply;
}

// ---------------- collections ----------------

ApiResult<CollectionInfo> Service::CreateCollection(const RequestContext& ctx,
                                                    std::string_view name,
                                                    const CollectionOptions& options) {
  if (!ready()) return NotReady();
  if (options.dimension < 1 || options.dimension > kMaxDimension) {
    return ApiError{ErrorCode::kInvalidCollection,
                    fmt::format("dimension must be in 1..{} (got {})", kMaxDimension, options.dimension)};
  }
  if (options.m < 2 || options.m > 128) {
    return ApiError{ErrorCode::kInvalidCollection, fmt::format("m must be in 2..128 (got {})", options.m)};
  }
  if (options.ef_construction < 1 || options.ef_construction > kMaxEfSearch) {
    return ApiError{ErrorCode::kInvalidCollection,
                    fmt::format("ef_construction must be in 1..{}", kMaxEfSearch)};
  }
  if (options.ef_search < 1 || options.ef_search > kMaxEfSearch) {
    return ApiError{ErrorCode::kInvalidCollection, fmt::format("ef_search must be in 1..{}", kMaxEfSearch)};
  }
  auto c = db_->CreateCollection(ctx.tenant, std::string(name), options);
  if (!c.ok()) {
    if (c.status().code() == StatusCode::kAlreadyExists) {
      return ApiError{ErrorCode::kCollectionExists, "collection '" + std::string(name) + "' already exists"};
    }
    ApiError e = FromStatus(c.status());
    if (e.code == ErrorCode::kInvalidArgument) e.code = ErrorCode::kInvalidCollection;
    return e;
  }
  spdlog::info("collection created: {}/{} (dimension {}, {})", ctx.tenant, name, options.dimension,
               MetricName(options.metric));
  return CollectionInfo{ctx.tenant, std::string(name), options, 0};
}

ApiResult<CollectionInfo> Service::DescribeCollection(const RequestContext& ctx,
                                                      std::string_view name) {
  auto c = ResolveCollection(ctx, name);
  if (!c.ok()) return c.error();
  return CollectionInfo{ctx.tenant, (*c)->name(), (*c)->options(), (*c)->Stats().documents};
}

std::vector<CollectionInfo> Service::ListCollections(const RequestContext& ctx) const {
  if (!ready()) return {};
  return db_->ListCollections(ctx.tenant);
}

ApiStatus Service::DropCollection(const RequestContext& ctx, std::string_view name,
                                  std::string_view tenant) {
  if (!ready()) return NotReady();
  std::string owner = ctx.tenant;
  if (!tenant.empty() && tenant != ctx.tenant) {
    if (!ctx.is_admin) {
      return ApiError{ErrorCode::kPermissionDenied, "dropping another tenant's collection needs an admin key"};
    }
    owner = std::string(tenant);
  }
  Status s = db_->DropCollection(owner, std::string(name));
  if (s.code() == StatusCode::kNotFound) {
    return ApiError{ErrorCode::kCollectionNotFound, "collection '" + std::string(name) + "' does not exist"};
  }
  if (!s.ok()) return FromStatus(s);
  spdlog::info("collection dropped: {}/{}", owner, name);
  return std::nullopt;
}

ApiResult<std::vector<TenantUsage>> Service::Usage(const RequestContext& ctx, bool all) const {
  if (!ready()) return NotReady();
  if (all && !ctx.is_admin) {
    return ApiError{ErrorCode::kPermissionDenied, "usage of all tenants needs an admin key"};
  }
  std::vector<TenantUsage> out;
  auto add = [&](const CollectionInfo& info) {
    if (out.empty() || out.back().tenant != info.tenant) {
      out.push_back(TenantUsage{info.tenant, 0, 0, info.tenant == ctx.tenant ? ctx.max_vectors : 0});
    }
    auto c = db_->GetCollection(info.tenant, info.name);
    out.back().collections += 1;
    if (c.ok()) out.back().documents += (*c)->document_count();
  };
  if (all) {
    std::vector<CollectionInfo> infos = db_->ListAllCollections();
    std::stable_sort(infos.begin(), infos.end(),
                     [](const CollectionInfo& a, const CollectionInfo& b) { return a.tenant < b.tenant; });
    for (const auto& info : infos) add(info);
  } else {
    for (const auto& info : db_->ListCollections(ctx.tenant)) add(info);
    if (out.empty()) out.push_back(TenantUsage{ctx.tenant, 0, 0, ctx.max_vectors});
  }
  return out;
}

// ---------------- operations ----------------

HealthReport Service::Health() const {
  HealthReport h;
  h.uptime_seconds = static_cast<uint64_t>(std::max<int64_t>(0, NowMs() - started_at_ms_) / 1000);
  if (!ready()) {
    h.state = HealthReport::State::kDegraded;
    h.components.emplace_back("recovery", "in_progress");
    return h;
  }
  const DatabaseStats st = db_->Stats();
  h.components.emplace_back("recovery", "done");
  h.components.emplace_back("wal", st.writable ? "ok" : "writes_disabled");
  h.components.emplace_back("hot_tier", "ok");
  h.components.emplace_back("cold_tier", "ok");
  const EngineTotals t = Totals();
  h.components.emplace_back("cache", t.collections_in_fallback == 0 ? "ok" : "lru_fallback");
  if (!st.writable) h.state = HealthReport::State::kDegraded;
  return h;
}

EngineTotals Service::Totals() const {
  EngineTotals t;
  t.served_cache = served_from_[static_cast<int>(Tier::kCache)].load(std::memory_order_relaxed);
  t.served_hot = served_from_[static_cast<int>(Tier::kHotTier)].load(std::memory_order_relaxed);
  t.served_cold = served_from_[static_cast<int>(Tier::kColdTier)].load(std::memory_order_relaxed);
  t.query_misses = query_misses_.load(std::memory_order_relaxed);
  t.inserts = inserts_.load(std::memory_order_relaxed);
  if (!ready()) return t;
  t.database = db_->Stats();
  for (const CollectionInfo& info : db_->ListAllCollections()) {
    auto c = db_->GetCollection(info.tenant, info.name);
    if (!c.ok()) continue;
    const CollectionStats s = (*c)->Stats();
    ++t.collections;
    t.documents += s.documents;
    t.hot_documents += s.hot_documents;
    t.cold_documents += s.cold_documents;
    t.hot_bytes += s.hot_bytes;
    t.flushes += s.flushes;
    t.memory_bytes += s.memory_bytes;
    t.cache_hits += s.cache_hits;
    t.cache_misses += s.cache_misses;
    t.cache_entries += s.cache_entries;
    t.cache_bytes += s.cache_bytes;
    t.cache_trainings += s.cache_trainings;
    t.cache_training_failures += s.cache_training_failures;
    t.collections_in_fallback += s.cache_mode.rfind("fallback", 0) == 0;
    t.search_cache_hits += s.search_cache_hits;
    t.search_cache_misses += s.search_cache_misses;
  }
  t.disk_bytes = DirectoryBytes(config_.persistence.data_dir);
  return t;
}

std::string Service::PrometheusText() const {
  std::string out;
  out.reserve(16 << 10);
  metrics_.AppendPrometheus(&out);
  auto it = std::back_inserter(out);
  auto gauge = [&](const char* name, const char* help, const char* type, double v) {
    fmt::format_to(it, "# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, v);
  };
  const EngineTotals t = Totals();
  gauge("kyrodb_ready", "1 once recovery is done.", "gauge", ready() ? 1 : 0);
  gauge("kyrodb_uptime_seconds", "Seconds since start.", "gauge",
        static_cast<double>(NowMs() - started_at_ms_) / 1e3);
  gauge("kyrodb_collections", "Collections over all tenants.", "gauge", static_cast<double>(t.collections));
  gauge("kyrodb_documents", "Live documents over all collections.", "gauge", static_cast<double>(t.documents));
  gauge("kyrodb_hot_tier_documents", "Documents in the hot tier (L2).", "gauge", static_cast<double>(t.hot_documents));
  gauge("kyrodb_hot_tier_bytes", "Bytes held by the hot tier.", "gauge", static_cast<double>(t.hot_bytes));
  gauge("kyrodb_cold_tier_documents", "Documents in HNSW (L3).", "gauge", static_cast<double>(t.cold_documents));
  gauge("kyrodb_flushes_total", "Hot-tier flushes into HNSW.", "counter", static_cast<double>(t.flushes));
  out.append("# HELP kyrodb_lookups_total Lookups by id, by the tier that answered (miss: not found).\n"
             "# TYPE kyrodb_lookups_total counter\n");
  fmt::format_to(it, "kyrodb_lookups_total{{tier=\"cache\"}} {}\n", t.served_cache);
  fmt::format_to(it, "kyrodb_lookups_total{{tier=\"hot_tier\"}} {}\n", t.served_hot);
  fmt::format_to(it, "kyrodb_lookups_total{{tier=\"cold_tier\"}} {}\n", t.served_cold);
  fmt::format_to(it, "kyrodb_lookups_total{{tier=\"miss\"}} {}\n", t.query_misses);
  gauge("kyrodb_cache_hits_total", "L1 cache hits.", "counter", static_cast<double>(t.cache_hits));
  gauge("kyrodb_cache_misses_total", "L1 cache misses.", "counter", static_cast<double>(t.cache_misses));
  gauge("kyrodb_cache_entries", "Documents in the L1 cache.", "gauge", static_cast<double>(t.cache_entries));
  gauge("kyrodb_cache_bytes", "Bytes charged to the L1 cache (entries and model).", "gauge",
        static_cast<double>(t.cache_bytes));
  gauge("kyrodb_cache_trainings_total", "Hotness model training runs.", "counter",
        static_cast<double>(t.cache_trainings));
  gauge("kyrodb_cache_training_failures_total", "Hotness model training runs that failed.", "counter",
        static_cast<double>(t.cache_training_failures));
  gauge("kyrodb_cache_fallback_collections", "Collections whose L1 cache fell back to LRU.", "gauge",
        static_cast<double>(t.collections_in_fallback));
  gauge("kyrodb_search_cache_hits_total", "Searches answered by the result cache (L1b).", "counter",
        static_cast<double>(t.search_cache_hits));
  gauge("kyrodb_search_cache_misses_total", "Searches not in the result cache.", "counter",
        static_cast<double>(t.search_cache_misses));
  gauge("kyrodb_inserts_total", "Documents written.", "counter", static_cast<double>(t.inserts));
  gauge("kyrodb_wal_records_total", "WAL records appended.", "counter", static_cast<double>(t.database.wal_records));
  gauge("kyrodb_wal_bytes_total", "WAL bytes appended.", "counter", static_cast<double>(t.database.wal_bytes));
  gauge("kyrodb_wal_fsyncs_total", "WAL fsyncs.", "counter", static_cast<double>(t.database.wal_syncs));
  gauge("kyrodb_wal_writable", "0 while the WAL refuses writes (circuit breaker open).", "gauge",
        t.database.writable ? 1 : 0);
  gauge("kyrodb_snapshots_total", "Snapshots taken since start.", "counter", static_cast<double>(t.database.snapshots));
  gauge("kyrodb_index_memory_bytes", "Memory of hot tiers and HNSW indexes.", "gauge", static_cast<double>(t.memory_bytes));
  gauge("kyrodb_process_resident_bytes", "Resident set size of the process.", "gauge",
        static_cast<double>(ResidentBytes()));
  gauge("kyrodb_disk_bytes", "Bytes under the data directory.", "gauge", static_cast<double>(t.disk_bytes));
  return out;
}

std::string Service::SloJson() const {
  const RequestMetrics::Summary s = metrics_.Summarize();
  const double error_rate = s.requests == 0 ? 0 : static_cast<double>(s.errors) / static_cast<double>(s.requests);
  return fmt::format(
      "{{\"requests\":{},\"errors\":{},\"error_rate\":{},\"availability\":{},\"p50_latency_ms\":{},"
      "\"p95_latency_ms\":{},\"p99_latency_ms\":{},\"ready\":{}}}",
      s.requests, s.errors, error_rate, 1.0 - error_rate, s.p50_ms, s.p95_ms, s.p99_ms,
      ready() ? "true" : "false");
}

Status Service::Close() {
  ready_.store(false, std::memory_order_release);
  if (db_ == nullptr || closed_) return Status::Ok();
  closed_ = true;
  Status s = db_->Close();
  spdlog::info("database closed: {}", s.ok() ? "WAL synced" : s.ToString());
  return s;
}

}  // namespace kyrodb::server

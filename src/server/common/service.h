// Service: what both servers call. It owns the Database, validates requests the same way for
// HTTP and gRPC (field names of the HTTP API in its messages), runs them, records metrics and
// renders health, readiness and Prometheus text. Transports only decode requests into these
// types and encode the replies.
//
// Thread-safety: every method may be called concurrently from any thread. Open() returns
// before recovery finishes only if `async_recovery`; until then ready() is false and data
// calls fail with NOT_READY.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kyrodb/database.h"
#include "kyrodb/types.h"
#include "server/common/api_error.h"
#include "server/common/config.h"
#include "server/common/metadata_filter.h"
#include "server/common/metrics.h"
#include "server/common/api_keys.h"
#include "server/common/rate_limiter.h"

namespace kyrodb::server {

// Who is asking: from the API key (Service::Authenticate), or, with auth disabled, the
// `default` tenant with admin rights. A tenant only ever names its own collections: every
// collection lookup is by (ctx.tenant, name), so isolation holds by construction.
struct RequestContext {
  std::string tenant = "default";
  bool is_admin = true;
  double max_qps = 0;        // the key's own rate limit (0: rate_limit.max_qps_per_tenant)
  uint64_t max_vectors = 0;  // the key's quota over the tenant's collections (0: none)
};

// Documents and collections of one tenant (GET /usage).
struct TenantUsage {
  std::string tenant;
  uint64_t collections = 0;
  uint64_t documents = 0;
  uint64_t max_vectors = 0;  // the caller's quota when it is this tenant (0: none or unknown)
};

inline constexpr uint32_t kMaxK = 1000;
inline constexpr uint32_t kMaxEfSearch = 10000;
inline constexpr size_t kMaxDimension = 4096;
inline constexpr const char* kDefaultCollection = "default";

struct SearchReply {
  std::vector<SearchHit> hits;
  double latency_ms = 0;
  SearchPath path = SearchPath::kUnknown;
};

struct BulkInsertReply {
  uint64_t inserted = 0;
  uint64_t failed = 0;
  // (index in the request, error) for each refused document.
  std::vector<std::pair<size_t, ApiError>> errors;
};

struct SnapshotReply {
  std::string path;      // the data directory's snapshot, as the MANIFEST names it
  uint64_t documents = 0;
  uint64_t bytes = 0;
  double duration_ms = 0;
};

struct HealthReport {
  enum class State { kHealthy = 1, kDegraded = 2, kUnhealthy = 3 };
  State state = State::kHealthy;
  std::vector<std::pair<std::string, std::string>> components;  // "wal" -> "ok" | "writes_disabled", ...
  uint64_t uptime_seconds = 0;
};

// Totals over every collection (the v1 Metrics RPC and /metrics).
struct EngineTotals {
  uint64_t collections = 0;
  uint64_t documents = 0;
  uint64_t hot_documents = 0;
  uint64_t cold_documents = 0;
  uint64_t hot_bytes = 0;
  uint64_t flushes = 0;
  uint64_t memory_bytes = 0;
  uint64_t disk_bytes = 0;
  uint64_t cache_hits = 0, cache_misses = 0;
  uint64_t cache_entries = 0, cache_bytes = 0;
  uint64_t cache_trainings = 0, cache_training_failures = 0;
  uint64_t collections_in_fallback = 0;  // L1 caches running plain LRU as a fallback
  // Lookups by id through Service: answered by each tier, or not found.
  uint64_t served_cache = 0, served_hot = 0, served_cold = 0, query_misses = 0;
  uint64_t inserts = 0;  // documents written through Service
  uint64_t search_cache_hits = 0, search_cache_misses = 0;
  DatabaseStats database;
};

class Service {
 public:
  // A service that is not ready yet: health, readiness and metrics answer; data calls fail
  // with NOT_READY until Recover() succeeded. main() starts the servers in between, so /ready
  // says 503 during recovery.
  // Fails if auth is enabled and the keys file cannot be read.
  static Result<std::unique_ptr<Service>> Create(const ServerConfig& config);
  // Opens the database (recovery), creates the `default` collection from config.hnsw if it does
  // not exist, then becomes ready. Fails with the recovery error (strict mode).
  Status Recover();
  // Create + Recover (tests).
  static Result<std::unique_ptr<Service>> Open(const ServerConfig& config);
  ~Service();

  const ServerConfig& config() const { return config_; }
  RequestMetrics& metrics() { return metrics_; }
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  const std::string& recovery_summary() const;

  // --- authentication, rate limits, admission (both transports, before any other work) ---
  // The caller behind the request's `x-api-key` / `authorization: Bearer` values. With auth
  // disabled: the default context. UNAUTHENTICATED for missing, unknown or disabled keys.
  ApiResult<RequestContext> Authenticate(std::string_view x_api_key,
                                         std::string_view authorization) const;
  bool auth_enabled() const { return keys_ != nullptr; }
  // Re-reads auth.api_keys_file (SIGHUP); on error the old keys stay.
  Status ReloadKeys();
  // Token buckets: the connection's (may be null), the tenant's, the global one.
  // RESOURCE_EXHAUSTED with *retry_after_secs set when over a limit.
  ApiStatus Admit(const RequestContext& ctx, TokenBucket* connection, int* retry_after_secs);
  // For a request Authenticate refused: RESOURCE_EXHAUSTED when its connection or the server is
  // over its rate limit (the caller answers that instead of UNAUTHENTICATED), else nullopt.
  ApiStatus AdmitUnauthenticated(TokenBucket* connection, int* retry_after_secs);
  RateLimiter& rate_limiter() { return limiter_; }

  // --- validation shared by both transports (also used by the decoders) ---
  // The collection a request names ("" = default) for this tenant. A tenant's `default`
  // collection is created from config.hnsw the first time it is named.
  ApiResult<std::shared_ptr<Collection>> ResolveCollection(const RequestContext& ctx,
                                                           std::string_view name) const;
  // Dimension, finiteness, length limits. `field` names the field in messages ("embedding").
  static ApiStatus ValidateEmbedding(const Collection& c, const std::vector<float>& v,
                                     std::string_view field);
  static ApiStatus ValidateDocKey(const DocKey& key);

  // --- data ---
  ApiResult<DocKey> Insert(const RequestContext& ctx, std::string_view collection, Document doc);
  BulkInsertReply BulkInsert(const RequestContext& ctx, std::string_view collection,
                             std::vector<Document> docs);
  // DOCUMENT_NOT_FOUND when absent.
  ApiResult<GetResult> Query(const RequestContext& ctx, std::string_view collection,
                             const DocKey& key, bool include_embedding);
  // `filter` may be null. k in 1..1000, ef <= 10000 (0 = collection default).
  ApiResult<SearchReply> Search(const RequestContext& ctx, std::string_view collection,
                                SearchRequest request, const MetadataFilter* filter);
  // Returns whether the document existed (deleting an absent id is not an error).
  ApiResult<bool> Delete(const RequestContext& ctx, std::string_view collection,
                         const DocKey& key);
  ApiResult<uint64_t> BatchDelete(const RequestContext& ctx, std::string_view collection,
                                  const std::vector<DocKey>& keys);
  ApiResult<uint64_t> BatchDeleteByFilter(const RequestContext& ctx, std::string_view collection,
                                          const MetadataFilter& filter);
  // Returns whether the document existed (absent: nothing changes).
  ApiResult<bool> UpdateMetadata(const RequestContext& ctx, std::string_view collection,
                                 const DocKey& key, const Metadata& metadata, bool merge);
  // Flushes one collection, or every collection of the tenant when `collection` is empty.
  ApiResult<FlushResult> Flush(const RequestContext& ctx, std::string_view collection);
  ApiResult<SnapshotReply> Snapshot(const RequestContext& ctx);

  // --- collections ---
  ApiResult<CollectionInfo> CreateCollection(const RequestContext& ctx, std::string_view name,
                                             const CollectionOptions& options);
  ApiResult<CollectionInfo> DescribeCollection(const RequestContext& ctx, std::string_view name);
  std::vector<CollectionInfo> ListCollections(const RequestContext& ctx) const;
  // The caller's own collection; an admin may name another tenant's with `tenant`.
  ApiStatus DropCollection(const RequestContext& ctx, std::string_view name,
                           std::string_view tenant = {});
  // The caller's tenant; an admin asking for `all` gets every tenant.
  ApiResult<std::vector<TenantUsage>> Usage(const RequestContext& ctx, bool all) const;

  // --- operations ---
  HealthReport Health() const;
  EngineTotals Totals() const;
  std::string PrometheusText() const;  // request metrics + engine gauges + process memory
  std::string SloJson() const;         // {"p99_latency_ms":..,"error_rate":..,"availability":..}

  // Stops background work and syncs the WAL (graceful shutdown, after the servers stopped).
  Status Close();

 private:
  explicit Service(ServerConfig config);
  uint64_t TenantDocuments(const std::string& tenant) const;

  ServerConfig config_;
  std::unique_ptr<Database> db_;
  RequestMetrics metrics_;
  std::unique_ptr<ApiKeyStore> keys_;  // null: auth disabled
  RateLimiter limiter_;
  // Search admission: at most max_concurrent_searches run; up to search_queue wait.
  std::mutex search_mu_;
  std::condition_variable search_cv_;
  uint32_t searches_running_ = 0;  // GUARDED_BY(search_mu_)
  uint32_t searches_waiting_ = 0;  // GUARDED_BY(search_mu_)
  uint32_t max_searches_ = 0;
  std::atomic<bool> ready_{false};
  bool closed_ = false;
  int64_t started_at_ms_ = 0;
  // Lookups by id, by the tier that answered (Tier values).
  std::array<std::atomic<uint64_t>, 3> served_from_{};
  std::atomic<uint64_t> query_misses_{0};
  std::atomic<uint64_t> inserts_{0};
};

}  // namespace kyrodb::server

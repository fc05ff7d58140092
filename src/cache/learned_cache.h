// LearnedCache: the L1 cache for get-by-id. Values are immutable documents
// (shared_ptr<const CachedDoc>); memory is bounded in bytes (cache.max_size_mb).
//
// Strategy `learned`: every Get is appended to a lock-free AccessLog; TrainNow() (called by the
// engine's background task every cache.training_interval_secs — the cache owns no threads)
// drains the log, trains a new RmiModel (per-key decayed frequency behind a two-stage RMI over
// hashed ids, see rmi_model.h) and publishes it atomically; shards adopt it on their next
// operation, readers never wait for training. The model's memory is charged against the
// cache's budget. Ids the model calls hot are kept in a protected segment (see cache_shard.h).
// Strategy `lru`: plain LRU, no access log.
//
// Fallback to LRU (reported in Stats().mode / fallback_reason), decided at each TrainNow():
//   * no model trained yet;
//   * training failed (the old model is dropped too);
//   * the model lost to LRU on recent traffic: before a new model is installed, the trainer
//     replays the drained log (a hash-sampled subset of ids, capacity scaled to match) through
//     LRU and through the learned policy with the *previous* model — which never saw that
//     traffic — and if learned's hit rate is below LRU's by more than `fallback_margin` the
//     cache runs LRU until a later evaluation says otherwise.
//
// Staleness: a write or delete must call Put() or Invalidate() after it is applied to the
// tiers below. A read-through fill takes a ticket with FillTicket() *before* reading the lower
// tiers and passes it to Fill(); the fill is dropped if the id was invalidated or written in
// between, so a fill can never resurrect an old version.
//
// Thread-safety: all methods may be called concurrently from any threads. TrainNow() calls
// are serialized internally.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cache/access_log.h"
#include "cache/cache_shard.h"
#include "cache/cached_doc.h"
#include "cache/rmi_model.h"
#include "kyrodb/status.h"

namespace kyrodb::cache {

enum class CacheStrategy { kLearned, kLru };

// What policy is running now.
enum class CacheMode {
  kLru,                     // strategy lru
  kLearned,                 // the model drives admission and eviction
  kFallbackNoModel,         // learned strategy, LRU until the first model is trained
  kFallbackTrainingFailed,  // learned strategy, the last training failed
  kFallbackWorseThanLru,    // learned strategy, the model lost to LRU on recent traffic
};
const char* CacheModeName(CacheMode mode);

struct LearnedCacheOptions {
  CacheStrategy strategy = CacheStrategy::kLearned;
  size_t max_bytes = size_t{256} << 20;     // cache.max_size_mb
  size_t num_shards = 16;                   // rounded up to a power of two
  size_t access_log_capacity = size_t{1} << 18;
  size_t rmi_leaves = 256;
  double protected_fraction = 0.8;  // share of the budget the model's hot ids may hold
  double hot_keys_factor = 1.0;     // the model's hot set = factor × protected capacity (entries)
  double model_keys_factor = 2.0;   // ids the model remembers = factor × capacity (entries)
  double half_life = 0;             // decay half-life in accesses; 0: one training window
  double fallback_margin = 0.005;   // learned may trail LRU by this much before falling back
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t fills = 0;
  uint64_t stale_fills_dropped = 0;  // fills refused because the id changed since the ticket
  uint64_t evictions = 0;
  uint64_t invalidations = 0;
  uint64_t entries = 0;
  uint64_t used_bytes = 0;      // entries' charges
  uint64_t budget_bytes = 0;    // for entries: max_bytes minus the model's bytes
  uint64_t model_bytes = 0;
  uint64_t model_keys = 0;
  uint64_t access_log_bytes = 0;  // fixed; not part of max_bytes
  CacheMode mode = CacheMode::kLru;
  std::string fallback_reason;  // empty unless mode is a fallback
  uint64_t model_version = 0;   // models installed so far
  uint64_t trainings = 0;
  uint64_t training_failures = 0;
  double eval_learned_hit_rate = -1;  // last offline replay; -1: not measured yet
  double eval_lru_hit_rate = -1;
};

class LearnedCache {
 public:
  using Value = std::shared_ptr<const CachedDoc>;
  static constexpr size_t kEntryOverhead = 96;  // map node + list links, charged per entry

  explicit LearnedCache(const LearnedCacheOptions& options);
  ~LearnedCache();
  LearnedCache(const LearnedCache&) = delete;
  LearnedCache& operator=(const LearnedCache&) = delete;

  // The cached document or null. Records the access for training (strategy learned).
  Value Get(uint64_t doc_id);
  // The hit path of a get-by-id: on a hit copies the document's metadata into *metadata and,
  // when `embedding` is not null, its embedding into *embedding, and returns true; on a miss
  // returns false and leaves both untouched. Unlike Get() it takes no reference on the
  // document (no atomic refcount traffic on a line every reader of a hot id shares).
  // Records the access like Get().
  bool Read(uint64_t doc_id, std::vector<std::pair<std::string, std::string>>* metadata,
            std::vector<float>* embedding);
  // Read-through: take a ticket before reading the lower tiers, then Fill with it.
  uint64_t FillTicket(uint64_t doc_id) const;
  // Caches `value` unless `doc_id` was written or invalidated since `ticket`; true if cached.
  bool Fill(uint64_t doc_id, Value value, uint64_t ticket);
  // Write-through after an upsert: replaces any cached version and drops in-flight fills.
  void Put(uint64_t doc_id, Value value);
  // After an update or delete: drops the cached version and in-flight fills.
  void Invalidate(uint64_t doc_id);

  // Drains the access log, evaluates the current model against LRU on that traffic, trains a
  // new model and swaps it in. Called by the engine's background task (and by tests).
  Status TrainNow();
  CacheStats Stats() const;
  // Test hook: while set, TrainNow() fails as if training had failed.
  void SetTrainingFailureForTest(bool fail) { fail_training_.store(fail); }

 private:
  struct Shard;
  Shard& ShardOf(uint64_t h) const;
  std::atomic<uint64_t>& StripeOf(uint64_t h) const;
  void Refresh(Shard& s) const;
  // Adopts a newer policy if one was published, then looks up and counts; holds s.mu.
  const Value* LookupLocked(Shard& s, uint64_t doc_id) const;
  // Publishes `model` (may be null) and `mode` and applies them to every shard, so the byte
  // budget holds when this returns; caller holds train_mu_.
  void Publish(std::shared_ptr<const RmiModel> model, CacheMode mode, std::string reason);
  size_t EstimateEntryBytes() const;

  const LearnedCacheOptions options_;
  std::unique_ptr<AccessLog> log_;  // null for strategy lru
  std::unique_ptr<Shard[]> shards_;
  size_t shard_mask_;
  // Beside log_, shards_ and shard_mask_: what every Get reads from this object is one line.
  // Shards copy the published policy when this moves (never blocking on training).
  std::atomic<uint64_t> policy_version_{1};
  static constexpr size_t kStripes = 4096;
  std::unique_ptr<std::atomic<uint64_t>[]> stripes_;  // per id-hash stripe: write epoch
  std::atomic<bool> fail_training_{false};

  // The published policy (see policy_version_).
  mutable std::mutex policy_mu_;
  std::shared_ptr<const RmiModel> policy_model_;  // GUARDED_BY(policy_mu_); null: LRU
  size_t policy_budget_ = 0;                       // GUARDED_BY(policy_mu_)
  CacheMode mode_;                                 // GUARDED_BY(policy_mu_)
  std::string fallback_reason_;                    // GUARDED_BY(policy_mu_)
  std::shared_ptr<const RmiModel> held_model_;     // GUARDED_BY(policy_mu_): newest, used or not

  // Trainer state.
  std::mutex train_mu_;
  uint64_t drained_to_ = 0;       // GUARDED_BY(train_mu_)
  uint64_t model_version_ = 0;    // GUARDED_BY(policy_mu_)
  uint64_t trainings_ = 0;        // GUARDED_BY(policy_mu_)
  uint64_t training_failures_ = 0;  // GUARDED_BY(policy_mu_)
  double eval_learned_ = -1;      // GUARDED_BY(policy_mu_)
  double eval_lru_ = -1;          // GUARDED_BY(policy_mu_)
};

}  // namespace kyrodb::cache

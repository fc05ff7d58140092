#include "cache/learned_cache.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <span>
#include <utility>

#include "base/futex_mutex.h"

namespace kyrodb::cache {
namespace {

// Hit rates of LRU and of the learned policy with `model`, replayed over `records` at the
// cache's capacity. Large caches replay a hash-sampled subset of ids with the capacity scaled
// by the same rate (spatial sampling, as in SHARDS), which keeps a replay to a few ms.
struct ReplayResult {
  double learned = -1;
  double lru = -1;
};

ReplayResult Replay(std::span<const AccessRecord> records, const RmiModel& model,
                    size_t cap_entries, size_t model_entries, double protected_fraction) {
  constexpr uint64_t kSampleSalt = 0x5bd1e9955bd1e995ULL;
  const size_t rate = std::max<size_t>(1, cap_entries / 2048);
  const size_t lru_cap = std::max<size_t>(1, cap_entries / rate);
  const size_t learned_cap =
      std::max<size_t>(1, (cap_entries - std::min(cap_entries, model_entries)) / rate);
  CacheShard lru(lru_cap, 0);
  CacheShard learned(learned_cap, 0);
  learned.SetPolicy(&model, learned_cap,
                    static_cast<size_t>(protected_fraction * static_cast<double>(learned_cap)));
  const size_t warm = records.size() / 3;  // the first third warms both caches
  uint64_t n = 0, lru_hits = 0, learned_hits = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const uint64_t id = records[i].doc_id;
    if (rate > 1 && Mix64(id ^ kSampleSalt) % rate != 0) continue;
    const bool a = lru.Lookup(id) != nullptr;
    if (!a) (void)lru.Insert(id, nullptr, 1);
    const bool b = learned.Lookup(id) != nullptr;
    if (!b) (void)learned.Insert(id, nullptr, 1);
    if (i >= warm) {
      ++n;
      lru_hits += a;
      learned_hits += b;
    }
  }
  ReplayResult r;
  if (n > 0) {
    r.lru = static_cast<double>(lru_hits) / static_cast<double>(n);
    r.learned = static_cast<double>(learned_hits) / static_cast<double>(n);
  }
  return r;
}

}  // namespace

const char* CacheModeName(CacheMode mode) {
  switch (mode) {
    case CacheMode::kLru:
      return "lru";
    case CacheMode::kLearned:
      return "learned";
    case CacheMode::kFallbackNoModel:
      return "fallback_lru_no_model";
    case CacheMode::kFallbackTrainingFailed:
      return "fallback_lru_training_failed";
    case CacheMode::kFallbackWorseThanLru:
      return "fallback_lru_model_worse";
  }
  return "?";
}

// What a hit touches comes first: the lock, the policy version and the hit/miss counters share
// one cache line.
struct alignas(64) LearnedCache::Shard {
  FutexMutex mu;                                     // lock and unlock: one inlined atomic each
  uint64_t policy_version = 0;                       // GUARDED_BY(mu)
  uint64_t hits = 0, misses = 0;                     // GUARDED_BY(mu)
  CacheShard cache{0, kEntryOverhead};               // GUARDED_BY(mu)
  std::shared_ptr<const RmiModel> model;             // GUARDED_BY(mu): keeps cache's model alive
  uint64_t fills = 0, stale = 0, invalidations = 0;  // GUARDED_BY(mu)
};

LearnedCache::LearnedCache(const LearnedCacheOptions& options)
    : options_(options),
      log_(options.strategy == CacheStrategy::kLearned
               ? std::make_unique<AccessLog>(options.access_log_capacity)
               : nullptr),
      shards_(std::make_unique<Shard[]>(std::bit_ceil(std::max<size_t>(1, options.num_shards)))),
      shard_mask_(std::bit_ceil(std::max<size_t>(1, options.num_shards)) - 1),
      stripes_(std::make_unique<std::atomic<uint64_t>[]>(kStripes)),
      policy_budget_(options.max_bytes),
      mode_(options.strategy == CacheStrategy::kLru ? CacheMode::kLru
                                                    : CacheMode::kFallbackNoModel) {
  if (mode_ == CacheMode::kFallbackNoModel) fallback_reason_ = "no model trained yet";
}

LearnedCache::~LearnedCache() = default;

inline LearnedCache::Shard& LearnedCache::ShardOf(uint64_t h) const {
  return shards_[h & shard_mask_];
}

std::atomic<uint64_t>& LearnedCache::StripeOf(uint64_t h) const {
  return stripes_[(h >> 32) % kStripes];
}

void LearnedCache::Refresh(Shard& s) const {
  std::lock_guard<std::mutex> l(policy_mu_);
  const size_t n = shard_mask_ + 1;
  s.model = policy_model_;
  const size_t budget = policy_budget_ / n;
  const size_t prot = s.model != nullptr
                          ? static_cast<size_t>(options_.protected_fraction * double(budget))
                          : 0;
  s.cache.SetPolicy(s.model.get(), budget, prot);
  s.policy_version = policy_version_.load(std::memory_order_relaxed);
}

inline const LearnedCache::Value* LearnedCache::LookupLocked(Shard& s, uint64_t doc_id) const {
  if (policy_version_.load(std::memory_order_acquire) != s.policy_version) Refresh(s);
  const Value* v = s.cache.Lookup(doc_id);
  ++(v != nullptr ? s.hits : s.misses);
  return v;
}

LearnedCache::Value LearnedCache::Get(uint64_t doc_id) {
  if (log_ != nullptr) log_->Append(doc_id);
  Shard& s = ShardOf(Mix64(doc_id));
  std::lock_guard<FutexMutex> l(s.mu);
  const Value* v = LookupLocked(s, doc_id);
  return v != nullptr ? *v : nullptr;
}

bool LearnedCache::Read(uint64_t doc_id, std::vector<std::pair<std::string, std::string>>* metadata,
                        std::vector<float>* embedding) {
  if (log_ != nullptr) log_->Append(doc_id);
  Shard& s = ShardOf(Mix64(doc_id));
  std::lock_guard<FutexMutex> l(s.mu);
  const Value* v = LookupLocked(s, doc_id);
  if (v == nullptr) return false;
  // Copied under the shard lock: the entry cannot be replaced or freed meanwhile.
  const CachedDoc& doc = **v;
  *metadata = doc.metadata;
  if (embedding != nullptr) *embedding = doc.embedding;
  return true;
}

uint64_t LearnedCache::FillTicket(uint64_t doc_id) const {
  return StripeOf(Mix64(doc_id)).load(std::memory_order_acquire);
}

bool LearnedCache::Fill(uint64_t doc_id, Value value, uint64_t ticket) {
  if (value == nullptr) return false;
  const uint64_t h = Mix64(doc_id);
  Shard& s = ShardOf(h);
  const size_t charge = value->ByteSize();
  std::lock_guard<FutexMutex> l(s.mu);
  if (policy_version_.load(std::memory_order_acquire) != s.policy_version) Refresh(s);
  // Writers bump the stripe under this same lock, so this check and the insert are atomic
  // with respect to Put/Invalidate of doc_id.
  if (StripeOf(h).load(std::memory_order_relaxed) != ticket) {
    ++s.stale;
    return false;
  }
  ++s.fills;
  return s.cache.Insert(doc_id, std::move(value), charge);
}

void LearnedCache::Put(uint64_t doc_id, Value value) {
  const uint64_t h = Mix64(doc_id);
  Shard& s = ShardOf(h);
  const size_t charge = value != nullptr ? value->ByteSize() : 0;
  std::lock_guard<FutexMutex> l(s.mu);
  if (policy_version_.load(std::memory_order_acquire) != s.policy_version) Refresh(s);
  StripeOf(h).fetch_add(1, std::memory_order_release);
  if (value == nullptr) {
    s.cache.Erase(doc_id);
  } else {
    (void)s.cache.Insert(doc_id, std::move(value), charge);
  }
}

void LearnedCache::Invalidate(uint64_t doc_id) {
  const uint64_t h = Mix64(doc_id);
  Shard& s = ShardOf(h);
  std::lock_guard<FutexMutex> l(s.mu);
  StripeOf(h).fetch_add(1, std::memory_order_release);
  s.invalidations += s.cache.Erase(doc_id);
}

size_t LearnedCache::EstimateEntryBytes() const {
  size_t used = 0, entries = 0;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    std::lock_guard<FutexMutex> l(shards_[i].mu);
    used += shards_[i].cache.used_bytes();
    entries += shards_[i].cache.entries();
  }
  return entries > 0 ? std::max<size_t>(1, used / entries) : kEntryOverhead + 1024;
}

void LearnedCache::Publish(std::shared_ptr<const RmiModel> model, CacheMode mode,
                           std::string reason) {
  {
    std::lock_guard<std::mutex> l(policy_mu_);
    held_model_ = std::move(model);
    const size_t model_bytes = held_model_ != nullptr ? held_model_->MemoryBytes() : 0;
    policy_budget_ = options_.max_bytes - std::min(options_.max_bytes, model_bytes);
    policy_model_ = mode == CacheMode::kLearned ? held_model_ : nullptr;
    mode_ = mode;
    fallback_reason_ = std::move(reason);
    policy_version_.fetch_add(1, std::memory_order_release);
  }
  // Readers adopt a new policy lazily, on their shard's next access; a shard nobody touches
  // would keep its old budget, so a model that grew (shrinking the entries' budget) would
  // leave the cache over max_bytes. Enforce the new policy on every shard before returning
  // (lock order: shard, then policy_mu_, as in Refresh).
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    std::lock_guard<FutexMutex> l(s.mu);
    if (policy_version_.load(std::memory_order_acquire) != s.policy_version) Refresh(s);
  }
}

Status LearnedCache::TrainNow() {
  if (log_ == nullptr) return Status::FailedPrecondition("cache strategy lru has no model");
  std::lock_guard<std::mutex> t(train_mu_);
  std::vector<AccessRecord> records;
  drained_to_ = log_->DrainSince(drained_to_, &records);
  std::shared_ptr<const RmiModel> previous;
  {
    std::lock_guard<std::mutex> l(policy_mu_);
    previous = held_model_;
    ++trainings_;
  }
  auto fail = [&](const Status& st) {
    {
      std::lock_guard<std::mutex> l(policy_mu_);
      ++training_failures_;
    }
    std::string reason = "training failed: ";
    reason += st.message();
    Publish(nullptr, CacheMode::kFallbackTrainingFailed, std::move(reason));
    return st;
  };
  if (fail_training_.load()) return fail(Status::Internal("injected by test hook"));
  if (records.empty()) return Status::Ok();  // nothing new: keep the current policy

  const size_t entry_bytes = EstimateEntryBytes();
  const size_t cap_entries = std::max<size_t>(1, options_.max_bytes / entry_bytes);
  ReplayResult eval;
  if (previous != nullptr) {
    eval = Replay(records, *previous, cap_entries, previous->MemoryBytes() / entry_bytes,
                  options_.protected_fraction);
  }
  RmiTrainOptions o;
  o.num_leaves = options_.rmi_leaves;
  o.max_keys = std::max<size_t>(1, size_t(options_.model_keys_factor * double(cap_entries)));
  o.hot_keys = std::max<size_t>(
      1, size_t(options_.hot_keys_factor * options_.protected_fraction * double(cap_entries)));
  o.half_life = options_.half_life;
  auto model = RmiModel::Train(records, previous.get(), o);
  if (!model.ok()) return fail(model.status());

  CacheMode mode = CacheMode::kLearned;
  std::string reason;
  if (eval.lru >= 0 && eval.learned < eval.lru - options_.fallback_margin) {
    mode = CacheMode::kFallbackWorseThanLru;
    char buf[160];
    std::snprintf(buf, sizeof(buf),
                  "model hit rate %.4f < LRU %.4f on the last %zu accesses (replayed)",
                  eval.learned, eval.lru, records.size());
    reason = buf;
  }
  {
    std::lock_guard<std::mutex> l(policy_mu_);
    ++model_version_;
    eval_learned_ = eval.learned;
    eval_lru_ = eval.lru;
  }
  Publish(std::move(model).value(), mode, std::move(reason));
  return Status::Ok();
}

CacheStats LearnedCache::Stats() const {
  CacheStats st;
  for (size_t i = 0; i <= shard_mask_; ++i) {
    Shard& s = shards_[i];
    std::lock_guard<FutexMutex> l(s.mu);
    st.hits += s.hits;
    st.misses += s.misses;
    st.fills += s.fills;
    st.stale_fills_dropped += s.stale;
    st.invalidations += s.invalidations;
    st.evictions += s.cache.evictions();
    st.entries += s.cache.entries();
    st.used_bytes += s.cache.used_bytes();
  }
  std::lock_guard<std::mutex> l(policy_mu_);
  st.budget_bytes = policy_budget_;
  st.model_bytes = held_model_ != nullptr ? held_model_->MemoryBytes() : 0;
  st.model_keys = held_model_ != nullptr ? held_model_->num_keys() : 0;
  st.access_log_bytes = log_ != nullptr ? log_->MemoryBytes() : 0;
  st.mode = mode_;
  st.fallback_reason = fallback_reason_;
  st.model_version = model_version_;
  st.trainings = trainings_;
  st.training_failures = training_failures_;
  st.eval_learned_hit_rate = eval_learned_;
  st.eval_lru_hit_rate = eval_lru_;
  return st;
}

}  // namespace kyrodb::cache

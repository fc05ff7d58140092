#include "engine/search_cache.h"

#include <absl/hash/hash.h>

#include <cstring>
#include <string_view>

namespace kyrodb {

namespace {

// Doorkeeper slots per cache entry: a request is remembered across a few cache-fulls of others.
constexpr size_t kDoorkeeperPerEntry = 4;

size_t DoorkeeperSize(size_t capacity) {
  size_t n = 1;
  while (n < capacity * kDoorkeeperPerEntry) n <<= 1;
  return n;
}

}  // namespace

SearchCache::SearchCache(size_t capacity)
    : capacity_(capacity), doorkeeper_(capacity == 0 ? 0 : DoorkeeperSize(capacity), 0) {}

bool SearchCache::AdmitLocked(uint64_t hash) {
  uint64_t& slot = doorkeeper_[hash & (doorkeeper_.size() - 1)];
  if (slot == hash) return true;
  slot = hash;
  return false;
}

uint64_t SearchCache::HashOf(const SearchRequest& r) {
  const std::string_view bytes(reinterpret_cast<const char*>(r.query.data()), r.query.size() * sizeof(float));
  uint32_t min_score_bits = 0;
  std::memcpy(&min_score_bits, &r.min_score, sizeof(min_score_bits));
  return absl::HashOf(bytes, r.k, r.ef, r.has_min_score, min_score_bits, r.include_embeddings,
                      r.include_metadata);
}

SearchCache::Key SearchCache::KeyOf(const SearchRequest& r) {
  return Key{r.query, r.k, r.ef, r.min_score, r.has_min_score, r.include_embeddings, r.include_metadata};
}

bool SearchCache::SameRequest(const Key& e, const SearchRequest& r) {
  // min_score compared as bits, as hashed (a NaN never reaches a search: it is refused).
  return e.k == r.k && e.ef == r.ef && e.has_min_score == r.has_min_score &&
         std::memcmp(&e.min_score, &r.min_score, sizeof(float)) == 0 &&
         e.include_embeddings == r.include_embeddings && e.include_metadata == r.include_metadata &&
         e.query.size() == r.query.size() &&
         std::memcmp(e.query.data(), r.query.data(), r.query.size() * sizeof(float)) == 0;
}

std::optional<std::vector<SearchHit>> SearchCache::Lookup(const SearchRequest& r, uint64_t hash,
                                                          uint64_t generation, bool* admit) {
  if (admit != nullptr) *admit = false;
  if (capacity_ == 0) return std::nullopt;
  std::lock_guard<std::mutex> l(mu_);
  auto it = index_.find(hash);
  if (it == index_.end() || it->second->generation != generation || !SameRequest(it->second->key, r)) {
    ++misses_;
    if (admit != nullptr) *admit = AdmitLocked(hash);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return it->second->hits;
}

void SearchCache::Insert(const SearchRequest& r, uint64_t hash, uint64_t generation,
                         const std::vector<SearchHit>& hits) {
  if (capacity_ == 0) return;
  std::lock_guard<std::mutex> l(mu_);
  auto it = index_.find(hash);
  if (it != index_.end()) {
    Entry& e = *it->second;
    const bool same = SameRequest(e.key, r);
    if (same && e.generation >= generation) return;  // keep the newer answer
    if (!same) e.key = KeyOf(r);  // a collision: the slot now holds this request
    e.generation = generation;
    e.hits = hits;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(Entry{hash, KeyOf(r), generation, hits});
  index_.emplace(hash, lru_.begin());
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().hash);
    lru_.pop_back();
  }
}

uint64_t SearchCache::hits() const {
  std::lock_guard<std::mutex> l(mu_);
  return hits_;
}
uint64_t SearchCache::misses() const {
  std::lock_guard<std::mutex> l(mu_);
  return misses_;
}
size_t SearchCache::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return lru_.size();
}

}  // namespace kyrodb

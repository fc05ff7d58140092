#include "engine/search_cache.h"

#include <cstring>

namespace kyrodb {

std::string SearchCache::KeyOf(const SearchRequest& r) {
  std::string key(reinterpret_cast<const char*>(r.query.data()), r.query.size() * sizeof(float));
  char tail[24];
  std::memcpy(tail, &r.k, 4);
  std::memcpy(tail + 4, &r.ef, 4);
  std::memcpy(tail + 8, &r.min_score, 4);
  tail[12] = r.has_min_score;
  tail[13] = r.include_embeddings;
  tail[14] = r.include_metadata;
  key.append(tail, 15);
  return key;
}

std::optional<std::vector<SearchHit>> SearchCache::Lookup(const SearchRequest& r,
                                                          uint64_t generation) {
  if (capacity_ == 0) return std::nullopt;
  const std::string key = KeyOf(r);
  std::lock_guard<std::mutex> l(mu_);
  auto it = index_.find(key);
  if (it == index_.end() || it->second->generation != generation) {
    ++misses_;
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  ++hits_;
  return it->second->hits;
}

void SearchCache::Insert(const SearchRequest& r, uint64_t generation,
                         const std::vector<SearchHit>& hits) {
  if (capacity_ == 0) return;
  std::string key = KeyOf(r);
  std::lock_guard<std::mutex> l(mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    if (it->second->generation >= generation) return;  // keep the newer answer
    it->second->generation = generation;
    it->second->hits = hits;
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.push_front(Entry{key, generation, hits});
  index_.emplace(std::move(key), lru_.begin());
  if (lru_.size() > capacity_) {
    index_.erase(lru_.back().key);
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

}  // namespace kyrodb

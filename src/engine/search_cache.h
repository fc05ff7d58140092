// SearchCache (L1b): answers identical repeated searches of a collection from memory.
//
// An entry is valid only for the collection generation it was computed at; every write to the
// collection bumps the generation, so a write can never leave a stale answer visible (nothing
// has to be found and erased). Bounded to `capacity` entries, least recently used evicted.
// Thread-safety: all methods may be called concurrently (one mutex; a lookup is a hash probe
// plus a vector compare, far below a search's cost).
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kyrodb/types.h"

namespace kyrodb {

class SearchCache {
 public:
  explicit SearchCache(size_t capacity) : capacity_(capacity) {}

  std::optional<std::vector<SearchHit>> Lookup(const SearchRequest& r, uint64_t generation);
  void Insert(const SearchRequest& r, uint64_t generation, const std::vector<SearchHit>& hits);

  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct Entry {
    std::string key;  // the full request, so equal keys mean equal requests
    uint64_t generation;
    std::vector<SearchHit> hits;
  };
  static std::string KeyOf(const SearchRequest& r);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recent
  absl::flat_hash_map<std::string, std::list<Entry>::iterator> index_;
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace kyrodb

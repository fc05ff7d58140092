// SearchCache (L1b): answers identical repeated searches of a collection from memory.
//
// An entry is valid only for the collection generation it was computed at; every write to the
// collection bumps the generation, so a write can never leave a stale answer visible (nothing
// has to be found and erased). Bounded to `capacity` entries, least recently used evicted.
//
// Entries are indexed by a 64-bit hash of the request (HashOf, computed once per search and
// passed to Lookup and Insert) and keep the request's query and parameters: a lookup answers
// only a request equal to the stored one, so two requests whose hashes collide share a slot
// (the later insert replaces the earlier) but never each other's answer.
// Admission (TinyLFU's doorkeeper): most searches are never repeated, and filling the cache
// with one (copying its hits and query, evicting another) costs a few µs. The first miss of a
// request only remembers its hash in a small direct-mapped table; a missing Lookup admits it
// from its second miss on, so a repeated request is answered from the cache from its third time. A
// miss takes the lock twice: Lookup (which also decides admission) and, if admitted, Insert.
// Thread-safety: all methods may be called concurrently (one mutex; a lookup is a hash probe
// plus a vector compare, far below a search's cost).
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <vector>

#include "kyrodb/types.h"

namespace kyrodb {

class SearchCache {
 public:
  explicit SearchCache(size_t capacity);

  // The hash of everything that decides a search's answer (query, k, ef, min_score, what is
  // included); the filter is not part of it: filtered searches are not cached.
  static uint64_t HashOf(const SearchRequest& r);

  // `hash` is HashOf(r). On a miss, when `admit` is not null, the doorkeeper decides in the same
  // critical section whether the caller should Insert the answer: *admit is true when `hash`
  // missed before (and is still remembered); else the miss is remembered and *admit is false.
  std::optional<std::vector<SearchHit>> Lookup(const SearchRequest& r, uint64_t hash,
                                               uint64_t generation, bool* admit = nullptr);
  void Insert(const SearchRequest& r, uint64_t hash, uint64_t generation, const std::vector<SearchHit>& hits);

  // False when built with capacity 0: nothing is ever cached (callers can skip HashOf).
  bool enabled() const { return capacity_ > 0; }

  uint64_t hits() const;
  uint64_t misses() const;
  size_t size() const;

 private:
  // What decides a search's answer, kept to tell a collision from a repeat.
  struct Key {
    std::vector<float> query;
    uint32_t k, ef;
    float min_score;
    bool has_min_score, include_embeddings, include_metadata;
  };
  struct Entry {
    uint64_t hash;
    Key key;
    uint64_t generation;
    std::vector<SearchHit> hits;
  };
  static Key KeyOf(const SearchRequest& r);
  static bool SameRequest(const Key& key, const SearchRequest& r);
  bool AdmitLocked(uint64_t hash);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // front: most recent
  absl::flat_hash_map<uint64_t, std::list<Entry>::iterator> index_;
  std::vector<uint64_t> doorkeeper_;  // hashes of requests that missed once; a power of 2 long
  uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace kyrodb

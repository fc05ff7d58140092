// CacheShard: one shard of the L1 cache's replacement policy — a byte-bounded map from doc id
// to value with two LRU lists:
//   * protected: ids the model predicts hot. Holds at most `protected_cap` bytes; when over,
//     its least recently used entries are demoted to the front of probation.
//   * probation: everything else, in LRU order. New cold ids enter here (the recency window),
//     and evictions take its tail first, so a scan or a burst of one-off ids only churns
//     probation and never pushes out what the model protects.
// With no model and protected_cap 0 the shard is exactly LRU (strategy `lru` and fallback).
//
// The learned cache and its trainer's offline replay (which measures learned vs LRU hit rate
// on recent traffic) both use this class, so the policy exists once.
//
// Layout: the entries live in one dense array (`nodes_`) linked by 32-bit indices, found through
// a flat id -> index table. A hit touches the table, its node and the node's two list
// neighbours, all in a few contiguous kilobytes per shard — not nodes scattered over the heap
// between the cached documents (this is what kept an L1 hit above 100 ns).
//
// Thread-safety: none; the owner serializes all calls (LearnedCache holds a mutex per shard).
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "cache/cached_doc.h"
#include "cache/rmi_model.h"

namespace kyrodb::cache {

class CacheShard {
 public:
  using Value = std::shared_ptr<const CachedDoc>;

  // `entry_overhead`: bytes charged per entry on top of the value's charge (map node, links).
  CacheShard(size_t budget_bytes, size_t entry_overhead);
  CacheShard(const CacheShard&) = delete;
  CacheShard& operator=(const CacheShard&) = delete;
  ~CacheShard();

  // Policy: the model (null: none; not owned, must outlive its use), the byte budget and the
  // protected segment's cap. Changes take effect at once (evicting/demoting as needed).
  void SetPolicy(const RmiModel* model, size_t budget_bytes, size_t protected_cap_bytes);

  // The value cached for `key` or null; a hit refreshes recency and may promote the entry.
  // The pointer is valid until the next non-const call.
  const Value* Lookup(uint64_t key);
  // Inserts or replaces; false when the entry alone exceeds the budget (nothing is cached and
  // any old entry for `key` is removed).
  bool Insert(uint64_t key, Value value, size_t charge);
  bool Erase(uint64_t key);

  size_t used_bytes() const { return used_bytes_; }
  size_t protected_bytes() const { return prot_bytes_; }
  size_t entries() const { return index_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  // Nodes are addressed by index into nodes_; 0 and 1 are the sentinels of the two lists.
  static constexpr uint32_t kProtected = 0;
  static constexpr uint32_t kProbation = 1;
  struct Node {
    uint32_t prev = 0;
    uint32_t next = 0;
    bool in_protected = false;
    uint64_t key = 0;
    size_t charge = 0;
    Value value;
  };
  uint32_t ListOf(const Node& n) const { return n.in_protected ? kProtected : kProbation; }
  size_t& BytesOf(uint32_t list) { return list == kProtected ? prot_bytes_ : prob_bytes_; }
  bool Empty(uint32_t list) const { return nodes_[list].next == list; }
  void Unlink(uint32_t i);
  void PushFront(uint32_t list, uint32_t i);
  void MoveTo(uint32_t i, bool to_protected);
  void Enforce();
  void EraseNode(uint32_t i);

  const size_t entry_overhead_;
  const RmiModel* model_ = nullptr;
  size_t budget_bytes_;
  size_t protected_cap_ = 0;
  size_t used_bytes_ = 0;
  size_t prot_bytes_ = 0;
  size_t prob_bytes_ = 0;
  uint64_t evictions_ = 0;
  std::vector<Node> nodes_;  // sentinels, entries, and free slots (listed in free_)
  std::vector<uint32_t> free_;
  absl::flat_hash_map<uint64_t, uint32_t> index_;  // key -> node
};

}  // namespace kyrodb::cache

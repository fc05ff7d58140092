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
// Thread-safety: none; the owner serializes all calls (LearnedCache holds a mutex per shard).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

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
  const Value* Lookup(uint64_t key);
  // Inserts or replaces; false when the entry alone exceeds the budget (nothing is cached and
  // any old entry for `key` is removed).
  bool Insert(uint64_t key, Value value, size_t charge);
  bool Erase(uint64_t key);

  size_t used_bytes() const { return used_bytes_; }
  size_t protected_bytes() const { return prot_.bytes; }
  size_t entries() const { return map_.size(); }
  uint64_t evictions() const { return evictions_; }

 private:
  struct Node {
    Node* prev = nullptr;
    Node* next = nullptr;
    uint64_t key = 0;
    size_t charge = 0;
    bool in_protected = false;
    Value value;
  };
  struct List {
    Node head;  // sentinel: head.next is the most recently used
    size_t bytes = 0;
  };
  static void Unlink(List* l, Node* n);
  static void PushFront(List* l, Node* n);
  void MoveTo(Node* n, bool to_protected);
  void Enforce();
  void EraseNode(Node* n);

  const size_t entry_overhead_;
  const RmiModel* model_ = nullptr;
  size_t budget_bytes_;
  size_t protected_cap_ = 0;
  size_t used_bytes_ = 0;
  uint64_t evictions_ = 0;
  List prot_;
  List prob_;
  std::unordered_map<uint64_t, Node> map_;
};

}  // namespace kyrodb::cache

#include "cache/cache_shard.h"

#include <utility>

#include "base/check.h"

namespace kyrodb::cache {

CacheShard::CacheShard(size_t budget_bytes, size_t entry_overhead)
    : entry_overhead_(entry_overhead), budget_bytes_(budget_bytes), nodes_(2) {
  for (uint32_t l : {kProtected, kProbation}) nodes_[l].prev = nodes_[l].next = l;
}

CacheShard::~CacheShard() = default;

inline void CacheShard::Unlink(uint32_t i) {
  Node& n = nodes_[i];
  nodes_[n.prev].next = n.next;
  nodes_[n.next].prev = n.prev;
  BytesOf(ListOf(n)) -= n.charge;
}

inline void CacheShard::PushFront(uint32_t list, uint32_t i) {
  Node& n = nodes_[i];
  Node& head = nodes_[list];
  n.in_protected = list == kProtected;
  n.prev = list;
  n.next = head.next;
  nodes_[head.next].prev = i;
  head.next = i;
  BytesOf(list) += n.charge;
}

inline void CacheShard::MoveTo(uint32_t i, bool to_protected) {
  Unlink(i);
  PushFront(to_protected ? kProtected : kProbation, i);
}

void CacheShard::SetPolicy(const RmiModel* model, size_t budget_bytes, size_t protected_cap_bytes) {
  model_ = model;
  budget_bytes_ = budget_bytes;
  protected_cap_ = protected_cap_bytes;
  Enforce();
}

void CacheShard::Enforce() {
  while (prot_bytes_ > protected_cap_) MoveTo(nodes_[kProtected].prev, false);
  while (used_bytes_ > budget_bytes_) {
    EraseNode(!Empty(kProbation) ? nodes_[kProbation].prev : nodes_[kProtected].prev);
    ++evictions_;
  }
}

void CacheShard::EraseNode(uint32_t i) {
  Unlink(i);
  Node& n = nodes_[i];
  used_bytes_ -= n.charge;
  index_.erase(n.key);
  n.value = nullptr;
  free_.push_back(i);
}

const CacheShard::Value* CacheShard::Lookup(uint64_t key) {
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  const uint32_t i = it->second;
  Node& n = nodes_[i];
  // The caller reads the document next; start fetching it while the lists are relinked.
  __builtin_prefetch(n.value.get());
  if (n.in_protected) {
    if (nodes_[kProtected].next != i) MoveTo(i, true);
  } else if (model_ != nullptr && model_->IsHot(key)) {
    MoveTo(i, true);
    Enforce();
  } else if (nodes_[kProbation].next != i) {
    MoveTo(i, false);
  }
  return &nodes_[i].value;
}

bool CacheShard::Insert(uint64_t key, Value value, size_t charge) {
  charge += entry_overhead_;
  auto it = index_.find(key);
  if (it != index_.end()) {
    const uint32_t i = it->second;
    Unlink(i);
    used_bytes_ -= nodes_[i].charge;
    if (charge > budget_bytes_) {
      index_.erase(it);
      nodes_[i].value = nullptr;
      free_.push_back(i);
      return false;
    }
  } else {
    if (charge > budget_bytes_) return false;
    uint32_t i;
    if (!free_.empty()) {
      i = free_.back();
      free_.pop_back();
    } else {
      KYRODB_CHECK(nodes_.size() < UINT32_MAX);
      i = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back();
    }
    it = index_.emplace(key, i).first;
  }
  const uint32_t i = it->second;
  Node& n = nodes_[i];
  n.key = key;
  n.charge = charge;
  n.value = std::move(value);
  PushFront(model_ != nullptr && model_->IsHot(key) ? kProtected : kProbation, i);
  used_bytes_ += charge;
  Enforce();
  return true;
}

bool CacheShard::Erase(uint64_t key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  EraseNode(it->second);
  return true;
}

}  // namespace kyrodb::cache

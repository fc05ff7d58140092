#include "cache/cache_shard.h"

#include <utility>

namespace kyrodb::cache {

CacheShard::CacheShard(size_t budget_bytes, size_t entry_overhead)
    : entry_overhead_(entry_overhead), budget_bytes_(budget_bytes) {
  for (List* l : {&prot_, &prob_}) l->head.prev = l->head.next = &l->head;
}

CacheShard::~CacheShard() = default;

void CacheShard::Unlink(List* l, Node* n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  l->bytes -= n->charge;
}

void CacheShard::PushFront(List* l, Node* n) {
  n->prev = &l->head;
  n->next = l->head.next;
  l->head.next->prev = n;
  l->head.next = n;
  l->bytes += n->charge;
}

void CacheShard::MoveTo(Node* n, bool to_protected) {
  Unlink(n->in_protected ? &prot_ : &prob_, n);
  n->in_protected = to_protected;
  PushFront(to_protected ? &prot_ : &prob_, n);
}

void CacheShard::SetPolicy(const RmiModel* model, size_t budget_bytes, size_t protected_cap_bytes) {
  model_ = model;
  budget_bytes_ = budget_bytes;
  protected_cap_ = protected_cap_bytes;
  Enforce();
}

void CacheShard::Enforce() {
  while (prot_.bytes > protected_cap_) MoveTo(prot_.head.prev, false);
  while (used_bytes_ > budget_bytes_) {
    Node* victim = prob_.head.prev != &prob_.head ? prob_.head.prev : prot_.head.prev;
    EraseNode(victim);
    ++evictions_;
  }
}

void CacheShard::EraseNode(Node* n) {
  Unlink(n->in_protected ? &prot_ : &prob_, n);
  used_bytes_ -= n->charge;
  map_.erase(n->key);
}

const CacheShard::Value* CacheShard::Lookup(uint64_t key) {
  auto it = map_.find(key);
  if (it == map_.end()) return nullptr;
  Node* n = &it->second;
  if (n->in_protected) {
    if (prot_.head.next != n) MoveTo(n, true);
  } else if (model_ != nullptr && model_->IsHot(key)) {
    MoveTo(n, true);
    Enforce();
  } else if (prob_.head.next != n) {
    MoveTo(n, false);
  }
  return &n->value;
}

bool CacheShard::Insert(uint64_t key, Value value, size_t charge) {
  charge += entry_overhead_;
  auto [it, inserted] = map_.try_emplace(key);
  Node* n = &it->second;
  if (!inserted) {
    Unlink(n->in_protected ? &prot_ : &prob_, n);
    used_bytes_ -= n->charge;
  }
  if (charge > budget_bytes_) {
    map_.erase(it);
    return false;
  }
  n->key = key;
  n->charge = charge;
  n->value = std::move(value);
  n->in_protected = model_ != nullptr && model_->IsHot(key);
  PushFront(n->in_protected ? &prot_ : &prob_, n);
  used_bytes_ += charge;
  Enforce();
  return true;
}

bool CacheShard::Erase(uint64_t key) {
  auto it = map_.find(key);
  if (it == map_.end()) return false;
  EraseNode(&it->second);
  return true;
}

}  // namespace kyrodb::cache

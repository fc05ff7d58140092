// AccessLog: a bounded, lock-free, multi-producer ring buffer of (doc_id, timestamp) pairs that
// records every read the L1 cache serves, so the trainer can learn which ids are hot.
//
// The timestamp is a logical clock: the global sequence number of the access (0, 1, 2, ...).
// Decay in the model is measured in accesses, not seconds, so it is independent of load.
//
// Thread-safety: Append() may be called from any number of threads at once (one relaxed
// fetch_add and two stores; wait-free). DrainSince() may run concurrently with appends; it
// returns the records still in the ring that it could read consistently. When producers lap
// the ring faster than the reader drains it, the oldest records are lost (memory stays bounded)
// — the log is a sample of recent traffic, not an audit trail. A record read while its slot is
// being reused one lap later can carry the newer id with the older seq: a real recent access,
// stamped up to one ring length early. The trainer tolerates that; no lock or fence is paid
// on the read path to prevent it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace kyrodb::cache {

struct AccessRecord {
  uint64_t doc_id;
  uint64_t seq;  // logical timestamp: the access's position in the global access order
};

class AccessLog {
 public:
  // `capacity` is rounded up to a power of two (at least 2).
  explicit AccessLog(size_t capacity);
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  void Append(uint64_t doc_id) {
    const uint64_t seq = next_.fetch_add(1, std::memory_order_relaxed);
    Slot& s = slots_[seq & mask_];
    s.doc_id.store(doc_id, std::memory_order_relaxed);
    s.stamp.store(seq + 1, std::memory_order_release);
  }

  // Appends to *out the records with seq >= from that are still in the ring, in seq order, and
  // returns the seq to pass next time (one past the newest record claimed so far). Records
  // whose slot is being rewritten are skipped.
  uint64_t DrainSince(uint64_t from, std::vector<AccessRecord>* out) const;

  // Accesses appended so far (the logical clock).
  uint64_t Now() const { return next_.load(std::memory_order_relaxed); }
  size_t capacity() const { return mask_ + 1; }
  size_t MemoryBytes() const { return capacity() * sizeof(Slot); }

 private:
  struct Slot {
    std::atomic<uint64_t> stamp{0};  // seq + 1 of the record in the slot
    std::atomic<uint64_t> doc_id{0};
  };
  const uint64_t mask_;
  std::unique_ptr<Slot[]> slots_;
  alignas(64) std::atomic<uint64_t> next_{0};
};

}  // namespace kyrodb::cache

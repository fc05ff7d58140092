#include "cache/access_log.h"

#include <algorithm>
#include <bit>

namespace kyrodb::cache {

AccessLog::AccessLog(size_t capacity)
    : mask_(std::bit_ceil(std::max<size_t>(capacity, 2)) - 1),
      slots_(std::make_unique<Slot[]>(mask_ + 1)) {}

uint64_t AccessLog::DrainSince(uint64_t from, std::vector<AccessRecord>* out) const {
  const uint64_t end = next_.load(std::memory_order_acquire);
  const uint64_t cap = mask_ + 1;
  uint64_t begin = end > cap ? std::max(from, end - cap) : from;
  for (uint64_t seq = begin; seq < end; ++seq) {
    const Slot& s = slots_[seq & mask_];
    // The stamp must name this seq: a writer that claimed `seq` but has not published yet
    // leaves the previous lap's stamp, and the record is skipped.
    if (s.stamp.load(std::memory_order_acquire) != seq + 1) continue;
    const uint64_t id = s.doc_id.load(std::memory_order_relaxed);
    out->push_back({id, seq});
  }
  return std::max(end, from);
}

}  // namespace kyrodb::cache

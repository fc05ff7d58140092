// GracePeriod: lets a writer wait until every reader that might still hold a pointer it just
// unpublished has finished, without readers ever taking a lock (a tiny user-space RCU).
//
// Readers: `auto guard = gp.Enter();` around the read-side section (wait-free: two atomic
// increments on a per-thread-stripe cache line). Writers: unpublish, then `gp.Synchronize()`,
// then reuse or free. Synchronize() calls must not overlap (the caller serializes them) and
// must not be made from inside a read-side section.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace kyrodb {

class GracePeriod {
 public:
  class Guard {
   public:
    Guard(Guard&& o) noexcept : counter_(o.counter_) { o.counter_ = nullptr; }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() {
      if (counter_ != nullptr) counter_->fetch_sub(1, std::memory_order_release);
    }

   private:
    friend class GracePeriod;
    explicit Guard(std::atomic<int64_t>* c) : counter_(c) {}
    std::atomic<int64_t>* counter_;
  };

  Guard Enter();
  // Returns once every read-side section that began before the call has ended.
  void Synchronize();

 private:
  static constexpr int kStripes = 64;
  struct alignas(64) Stripe {
    std::atomic<int64_t> active[2] = {0, 0};
  };
  std::atomic<uint32_t> phase_{0};
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace kyrodb

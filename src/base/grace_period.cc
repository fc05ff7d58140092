#include "base/grace_period.h"

#include <functional>
#include <thread>

namespace kyrodb {
namespace {
size_t ThisThreadStripe() {
  thread_local const size_t stripe = std::hash<std::thread::id>{}(std::this_thread::get_id());
  return stripe;
}
}  // namespace

GracePeriod::Guard GracePeriod::Enter() {
  Stripe& s = stripes_[ThisThreadStripe() % kStripes];
  for (;;) {
    uint32_t p = phase_.load(std::memory_order_seq_cst) & 1;
    s.active[p].fetch_add(1, std::memory_order_seq_cst);
    // Dekker pairing with Synchronize(): either it sees our increment, or we see its flip.
    if ((phase_.load(std::memory_order_seq_cst) & 1) == p) return Guard(&s.active[p]);
    s.active[p].fetch_sub(1, std::memory_order_seq_cst);
  }
}

void GracePeriod::Synchronize() {
  // Two flips: the first drains readers of the old phase, the second those that entered the
  // other phase before the first flip was visible to them.
  for (int round = 0; round < 2; ++round) {
    uint32_t old = phase_.fetch_add(1, std::memory_order_seq_cst) & 1;
    for (Stripe& s : stripes_) {
      while (s.active[old].load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
    }
  }
}

}  // namespace kyrodb

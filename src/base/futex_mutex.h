// FutexMutex: a mutex whose uncontended lock and unlock are one atomic instruction each,
// inlined at the call site (std::mutex goes through two out-of-line pthread calls). For short
// critical sections on hot paths, such as an L1 cache shard; waiters sleep in the kernel
// (futex), so it stays fair to a loaded machine, unlike a spinlock.
//
// The algorithm is "mutex 3" of Drepper, "Futexes Are Tricky": state 0 unlocked, 1 locked,
// 2 locked with possible waiters. Satisfies Lockable (std::lock_guard works).
//
// Thread-safety: lock()/unlock() from any thread; unlock() only by the thread that locked.
#pragma once

#include <atomic>
#include <cstdint>

namespace kyrodb {

class FutexMutex {
 public:
  FutexMutex() = default;
  FutexMutex(const FutexMutex&) = delete;
  FutexMutex& operator=(const FutexMutex&) = delete;

  void lock() {
    uint32_t expected = 0;
    if (!state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
      LockSlow();
    }
  }
  bool try_lock() {
    uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() {
    if (state_.exchange(0, std::memory_order_release) == 2) Wake();
  }

 private:
  void LockSlow();
  void Wake();
  std::atomic<uint32_t> state_{0};
};

}  // namespace kyrodb

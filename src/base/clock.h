// Monotonic time in milliseconds, for intervals (flush age, sync interval, probes).
#pragma once

#include <chrono>
#include <cstdint>

namespace kyrodb {

inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace kyrodb

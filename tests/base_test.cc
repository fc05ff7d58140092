#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "base/crc32c.h"
#include "base/futex_mutex.h"
#include "base/grace_period.h"
#include "kyrodb/status.h"

namespace kyrodb {
namespace {

TEST(Crc32cTest, MatchesKnownVectors) {
  // RFC 3720 test vectors.
  char zeros[32] = {0};
  EXPECT_EQ(crc32c::Value(zeros, 32), 0x8a9136aau);
  char ones[32];
  std::memset(ones, 0xff, 32);
  EXPECT_EQ(crc32c::Value(ones, 32), 0x62a8ab43u);
  EXPECT_EQ(crc32c::Value("123456789", 9), 0xe3069283u);
}

TEST(Crc32cTest, ExtendEqualsWholeAndMaskRoundTrips) {
  std::string s = "hello, kyrodb world of vectors";
  uint32_t whole = crc32c::Value(s.data(), s.size());
  uint32_t part = crc32c::Extend(crc32c::Value(s.data(), 7), s.data() + 7, s.size() - 7);
  EXPECT_EQ(whole, part);
  EXPECT_NE(crc32c::Mask(whole), whole);
  EXPECT_EQ(crc32c::Unmask(crc32c::Mask(whole)), whole);
}

TEST(StatusTest, CarriesCodeAndMessage) {
  Status s = Status::Corruption("bad block");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "CORRUPTION: bad block");
  Result<int> r = Status::NotFound("x");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  Result<int> v = 5;
  EXPECT_TRUE(v.ok());
  EXPECT_EQ(*v, 5);
}

// Synchronize() must not return while a reader that entered before it is still inside.
TEST(FutexMutexTest, ExcludesUnderContentionAndWakesSleepers) {
  // More threads than cores, and a critical section that yields, so waiters go to sleep in
  // the kernel and must be woken; a plain (non-atomic) counter catches any lost exclusion.
  FutexMutex mu;
  uint64_t counter = 0;
  constexpr int kThreads = 4, kIters = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIters; ++i) {
        std::lock_guard<FutexMutex> l(mu);
        const uint64_t v = counter;
        if (i % 1000 == 0) std::this_thread::yield();
        counter = v + 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, uint64_t{kThreads} * kIters);
  EXPECT_TRUE(mu.try_lock());
  EXPECT_FALSE(mu.try_lock());
  mu.unlock();
}

TEST(GracePeriodTest, SynchronizeWaitsForEarlierReaders) {
  GracePeriod gp;
  std::atomic<bool> inside{false}, release{false}, synced{false};
  std::thread reader([&] {
    auto g = gp.Enter();
    inside = true;
    while (!release) std::this_thread::yield();
    EXPECT_FALSE(synced.load());  // the writer is still waiting for us
  });
  while (!inside) std::this_thread::yield();
  std::thread writer([&] {
    gp.Synchronize();
    synced = true;
  });
  // The writer cannot finish while the reader holds its guard; let the reader observe that.
  for (int i = 0; i < 1000 && !synced; ++i) std::this_thread::yield();
  EXPECT_FALSE(synced.load());
  release = true;
  reader.join();
  writer.join();
  EXPECT_TRUE(synced.load());
}

// The pattern the HNSW index relies on: unpublish, Synchronize(), then poison and free.
// A reader must never observe the poison (or, under ASan, touch freed memory).
TEST(GracePeriodTest, ReclaimedObjectsAreNeverSeenByReaders) {
  GracePeriod gp;
  std::atomic<int*> current{new int(1)};
  std::atomic<bool> stop{false};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop) {
        auto g = gp.Enter();
        int* p = current.load(std::memory_order_acquire);
        ASSERT_GT(*p, 0);
        reads.fetch_add(1);
      }
    });
  }
  while (reads.load() < 3) std::this_thread::yield();  // readers are running
  for (int i = 2; i < 2000; ++i) {
    int* old = current.exchange(new int(i), std::memory_order_acq_rel);
    gp.Synchronize();
    *old = -1;
    delete old;
  }
  stop = true;
  for (auto& t : readers) t.join();
  delete current.load();
  EXPECT_GT(reads.load(), 0);
}

}  // namespace
}  // namespace kyrodb

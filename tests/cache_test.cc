// Tests of the L1 cache: access log, RMI model, learned cache (staleness, model swap under
// concurrent reads, fallback to LRU, memory bound, learned-vs-LRU behaviour on a Zipf trace).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "cache/access_log.h"
#include "cache/learned_cache.h"
#include "cache/rmi_model.h"

namespace kyrodb::cache {
namespace {

std::shared_ptr<const CachedDoc> Doc(float tag, size_t dim = 8) {
  auto d = std::make_shared<CachedDoc>();
  d->embedding.assign(dim, tag);
  return d;
}

// Read-through as the engine does it: ticket before reading the source, then Fill.
std::shared_ptr<const CachedDoc> ReadThrough(LearnedCache* c, uint64_t id, float tag) {
  if (auto v = c->Get(id)) return v;
  const uint64_t ticket = c->FillTicket(id);
  auto v = Doc(tag);
  (void)c->Fill(id, v, ticket);
  return v;
}

size_t EntryBytes() { return Doc(0)->ByteSize() + LearnedCache::kEntryOverhead; }

LearnedCacheOptions SmallOptions(size_t entries, CacheStrategy s = CacheStrategy::kLearned) {
  LearnedCacheOptions o;
  o.strategy = s;
  o.max_bytes = entries * EntryBytes();
  o.num_shards = 4;
  o.rmi_leaves = 16;
  o.access_log_capacity = 1 << 16;
  return o;
}

TEST(AccessLogTest, ConcurrentAppendsAreDrainedInOrderAndBounded) {
  AccessLog log(1024);
  std::vector<std::thread> th;
  for (uint64_t t = 0; t < 4; ++t) {
    th.emplace_back([&log, t] {
      for (uint64_t i = 0; i < 500; ++i) log.Append(t * 1000 + i);
    });
  }
  for (auto& x : th) x.join();
  EXPECT_EQ(log.Now(), 2000u);
  std::vector<AccessRecord> r;
  EXPECT_EQ(log.DrainSince(0, &r), 2000u);
  ASSERT_EQ(r.size(), 1024u);  // only the newest `capacity` survive
  for (size_t i = 1; i < r.size(); ++i) EXPECT_LT(r[i - 1].seq, r[i].seq);
  r.clear();
  log.Append(7);
  EXPECT_EQ(log.DrainSince(2000, &r), 2001u);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].doc_id, 7u);
}

TEST(RmiModelTest, ScoresFollowFrequencyAndUnknownIdsScoreZero) {
  std::vector<AccessRecord> rec;
  uint64_t seq = 0;
  for (uint64_t id = 1; id <= 2000; ++id) {
    for (uint64_t k = 0; k < 1 + (id % 5); ++k) rec.push_back({id * 0x9e3779b97f4a7c15ULL, seq++});
  }
  std::sort(rec.begin(), rec.end(), [](auto& a, auto& b) { return a.seq < b.seq; });
  RmiTrainOptions o;
  o.max_keys = 5000;
  o.hot_keys = 400;
  o.half_life = 1e12;  // no decay: scores are counts
  auto m = RmiModel::Train(rec, nullptr, o);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  const RmiModel& model = **m;
  EXPECT_EQ(model.num_keys(), 2000u);
  for (uint64_t id = 1; id <= 2000; ++id) {
    EXPECT_NEAR(model.Score(id * 0x9e3779b97f4a7c15ULL), 1 + (id % 5), 1e-3) << id;
    EXPECT_EQ(model.IsHot(id * 0x9e3779b97f4a7c15ULL), id % 5 == 4) << id;
  }
  EXPECT_EQ(model.Score(12345), 0.0f);
  EXPECT_FALSE(RmiModel::Train({}, nullptr, o).ok());
}

TEST(LearnedCacheTest, NeverStaleAfterPutOrInvalidate) {
  LearnedCache c(SmallOptions(100));
  ReadThrough(&c, 1, 1.0f);
  ASSERT_NE(c.Get(1), nullptr);
  c.Put(1, Doc(2.0f));  // write-through update
  EXPECT_EQ(c.Get(1)->embedding[0], 2.0f);
  c.Invalidate(1);  // delete
  EXPECT_EQ(c.Get(1), nullptr);

  // A fill that read the old version before a write must not land after it.
  const uint64_t t1 = c.FillTicket(1);
  c.Put(1, Doc(3.0f));
  EXPECT_FALSE(c.Fill(1, Doc(2.0f), t1));
  EXPECT_EQ(c.Get(1)->embedding[0], 3.0f);
  const uint64_t t2 = c.FillTicket(1);
  c.Invalidate(1);
  EXPECT_FALSE(c.Fill(1, Doc(3.0f), t2));
  EXPECT_EQ(c.Get(1), nullptr);
  EXPECT_GE(c.Stats().stale_fills_dropped, 2u);
}

TEST(LearnedCacheTest, ConcurrentReadThroughNeverResurrectsOldVersions) {
  constexpr uint64_t kKeys = 64;
  LearnedCache c(SmallOptions(32));
  std::vector<std::atomic<uint32_t>> version(kKeys);  // the "lower tier"
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      while (!stop.load()) {
        const uint64_t id = rng() % kKeys;
        if (c.Get(id + 1) != nullptr) continue;
        const uint64_t ticket = c.FillTicket(id + 1);
        const float v = static_cast<float>(version[id].load());
        (void)c.Fill(id + 1, Doc(v), ticket);
      }
    });
  }
  std::mt19937_64 rng(99);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t id = rng() % kKeys;
    version[id].fetch_add(1);  // apply the write below the cache, then invalidate
    if (i % 2 == 0) {
      c.Invalidate(id + 1);
    } else {
      c.Put(id + 1, Doc(static_cast<float>(version[id].load())));
    }
    if (i % 5000 == 0) {
      ASSERT_TRUE(c.TrainNow().ok());
    }
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  for (uint64_t id = 0; id < kKeys; ++id) {
    if (auto v = c.Get(id + 1)) {
      EXPECT_EQ(v->embedding[0], float(version[id].load())) << id;
    }
  }
}

TEST(LearnedCacheTest, ModelSwapsUnderConcurrentReads) {
  LearnedCache c(SmallOptions(200));
  EXPECT_EQ(c.Stats().mode, CacheMode::kFallbackNoModel);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(t + 1);
      std::geometric_distribution<uint64_t> g(0.01);
      while (!stop.load()) {
        const uint64_t id = g(rng) + 1;
        auto v = ReadThrough(&c, id, static_cast<float>(id));
        ASSERT_EQ(v->embedding[0], static_cast<float>(id));
        reads.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 40; ++i) {
    while (reads.load() < static_cast<uint64_t>(i + 1) * 200) std::this_thread::yield();
    ASSERT_TRUE(c.TrainNow().ok());
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  const CacheStats st = c.Stats();
  EXPECT_GE(st.model_version, 1u);
  EXPECT_GT(st.hits, 0u);
  EXPECT_LE(st.used_bytes, st.budget_bytes);
}

TEST(LearnedCacheTest, FallsBackToLruWhenTrainingFails) {
  LearnedCache c(SmallOptions(100));
  for (uint64_t i = 0; i < 1000; ++i) ReadThrough(&c, i % 50 + 1, 0);
  ASSERT_TRUE(c.TrainNow().ok());
  EXPECT_EQ(c.Stats().mode, CacheMode::kLearned);

  c.SetTrainingFailureForTest(true);
  for (uint64_t i = 0; i < 100; ++i) ReadThrough(&c, i % 50 + 1, 0);
  EXPECT_FALSE(c.TrainNow().ok());
  CacheStats st = c.Stats();
  EXPECT_EQ(st.mode, CacheMode::kFallbackTrainingFailed);
  EXPECT_NE(st.fallback_reason.find("training failed"), std::string::npos);
  EXPECT_EQ(st.training_failures, 1u);
  EXPECT_EQ(st.model_bytes, 0u);  // the failed model is dropped; LRU has the whole budget
  EXPECT_EQ(st.budget_bytes, SmallOptions(100).max_bytes);
  EXPECT_NE(c.Get(1), nullptr);  // still serving, as LRU

  c.SetTrainingFailureForTest(false);
  for (uint64_t i = 0; i < 100; ++i) ReadThrough(&c, i % 50 + 1, 0);
  ASSERT_TRUE(c.TrainNow().ok());
  EXPECT_EQ(c.Stats().mode, CacheMode::kLearned);
  EXPECT_TRUE(c.Stats().fallback_reason.empty());
}

TEST(LearnedCacheTest, FallsBackToLruWhenModelIsWorseThanLru) {
  LearnedCache c(SmallOptions(400));
  // Window 1: ids 1..300 are hot; the model learns them.
  for (int loop = 0; loop < 5; ++loop) {
    for (uint64_t id = 1; id <= 300; ++id) ReadThrough(&c, id, 0);
  }
  ASSERT_TRUE(c.TrainNow().ok());
  ASSERT_EQ(c.Stats().mode, CacheMode::kLearned);
  // Window 2: the old hot ids are touched once (the model protects them), then the traffic
  // loops over 300 new ids. LRU keeps the loop; the stale model keeps the old ids.
  for (uint64_t id = 1; id <= 300; ++id) ReadThrough(&c, id, 0);
  for (int loop = 0; loop < 10; ++loop) {
    for (uint64_t id = 1001; id <= 1300; ++id) ReadThrough(&c, id, 0);
  }
  ASSERT_TRUE(c.TrainNow().ok());
  const CacheStats st = c.Stats();
  EXPECT_EQ(st.mode, CacheMode::kFallbackWorseThanLru) << st.fallback_reason;
  EXPECT_LT(st.eval_learned_hit_rate, st.eval_lru_hit_rate);
  EXPECT_NE(st.fallback_reason.find("LRU"), std::string::npos);
}

TEST(LearnedCacheTest, MemoryBoundIsRespected) {
  LearnedCacheOptions o = SmallOptions(0);
  o.max_bytes = 64 * 1024;
  LearnedCache c(o);
  std::mt19937_64 rng(3);
  for (uint64_t i = 0; i < 20000; ++i) {
    const uint64_t id = rng() % 3000 + 1;
    if (c.Get(id) == nullptr) (void)c.Fill(id, Doc(0, 1 + rng() % 200), c.FillTicket(id));
    if (i % 4000 == 3999) {
      ASSERT_TRUE(c.TrainNow().ok());
    }
    if (i % 1000 == 0) {
      const CacheStats st = c.Stats();
      ASSERT_LE(st.used_bytes, st.budget_bytes);
      ASSERT_LE(st.used_bytes + st.model_bytes, o.max_bytes);
    }
  }
  EXPECT_GT(c.Stats().model_bytes, 0u);
  EXPECT_FALSE(c.Fill(1, Doc(0, 100000), c.FillTicket(1)));  // larger than the whole cache
}

// A trained model takes its bytes out of the entries' budget. The budget must hold as soon as
// training returns, also in shards that no read touches afterwards (they adopt a new policy
// lazily on access, so an idle shard kept the old, larger budget).
TEST(LearnedCacheTest, ModelSwapEnforcesTheBudgetOnIdleShards) {
  LearnedCache c(SmallOptions(200));
  for (uint64_t id = 1; id <= 2000; ++id) (void)ReadThrough(&c, id, 0);  // fill every shard
  for (uint64_t i = 0; i < 4000; ++i) (void)c.Get(i % 300 + 1);         // traffic to learn
  const CacheStats before = c.Stats();
  ASSERT_EQ(before.model_bytes, 0u);
  ASSERT_GT(before.used_bytes + EntryBytes() * 4, before.budget_bytes);  // full, within slack
  ASSERT_TRUE(c.TrainNow().ok());
  const CacheStats st = c.Stats();  // no read in between
  ASSERT_GT(st.model_bytes, 0u);
  EXPECT_LT(st.budget_bytes, before.budget_bytes);
  EXPECT_LE(st.used_bytes, st.budget_bytes);
  EXPECT_LE(st.used_bytes + st.model_bytes, SmallOptions(200).max_bytes);
}

// Behaviour, not timing: on a Zipf 0.8 trace the learned policy must beat LRU at equal memory.
TEST(LearnedCacheTest, LearnedBeatsLruOnZipf08) {
  constexpr uint64_t kDocs = 50000, kRequests = 400000, kTrainEvery = 20000;
  std::vector<double> cdf(kDocs);
  double sum = 0;
  for (uint64_t i = 0; i < kDocs; ++i) cdf[i] = (sum += std::pow(double(i + 1), -0.8));
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0, sum);
  std::vector<uint64_t> trace(kRequests);
  for (auto& t : trace) t = Mix64(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin() + 7);

  double hit_rate[2];
  for (CacheStrategy s : {CacheStrategy::kLearned, CacheStrategy::kLru}) {
    LearnedCache c(SmallOptions(kDocs / 100, s));
    uint64_t hits = 0;
    for (uint64_t i = 0; i < kRequests; ++i) {
      if (c.Get(trace[i]) != nullptr) {
        hits += i >= kRequests / 10;
      } else {
        (void)c.Fill(trace[i], Doc(0), c.FillTicket(trace[i]));
      }
      if (s == CacheStrategy::kLearned && (i + 1) % kTrainEvery == 0) {
      ASSERT_TRUE(c.TrainNow().ok());
    }
    }
    hit_rate[s == CacheStrategy::kLru] = double(hits) / double(kRequests - kRequests / 10);
    if (s == CacheStrategy::kLearned) {
      EXPECT_EQ(c.Stats().mode, CacheMode::kLearned);
    }
  }
  std::printf("zipf 0.8: learned %.4f, lru %.4f\n", hit_rate[0], hit_rate[1]);
  EXPECT_GT(hit_rate[0], hit_rate[1] + 0.05);
}

}  // namespace
}  // namespace kyrodb::cache

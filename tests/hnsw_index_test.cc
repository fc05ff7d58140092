#include "index/hnsw_index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "base/crc32c.h"
#include "index/flat_index.h"
#include "index/hnsw_format.h"
#include "test_support.h"
#include "test_util.h"

namespace kyrodb::index {
namespace {

using kyrodb::testing::ClusteredVectors;
using kyrodb::testing::RecallAtK;
using kyrodb::testing::TempDir;

std::unique_ptr<HnswIndex> MakeIndex(size_t dim, Metric metric, uint32_t max_elements = 1 << 20,
                                     bool quantize = true) {
  HnswOptions o;
  o.dim = dim;
  o.metric = metric;
  o.max_elements = max_elements;
  o.quantize = quantize;
  auto r = HnswIndex::Create(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

std::vector<uint64_t> Labels(size_t n, uint64_t first = 1) {
  std::vector<uint64_t> l(n);
  std::iota(l.begin(), l.end(), first);
  return l;
}

FlatIndex Exact(const std::vector<float>& data, size_t dim, Metric m,
                const std::vector<uint64_t>& labels) {
  FlatIndex f(dim, m);
  for (size_t i = 0; i < labels.size(); ++i) f.Add(labels[i], &data[i * dim]);
  return f;
}

// The bar: 20,000 x 64 clustered vectors, recall@10 >= 0.95 at ef=64, fixed seed.
TEST(HnswIndexTest, RecallAtEf64IsAtLeast95PercentOnClusteredL2) {
  const size_t n = 20000, dim = 64;
  auto ds = kyrodb::testing::Clustered(n, dim, 500, 1);
  auto& data = ds.base;
  auto& queries = ds.queries;
  auto labels = Labels(n);
  auto idx = MakeIndex(dim, Metric::kL2);
  ASSERT_TRUE(idx->AddBatch(labels, data.data(), 2).ok());
  EXPECT_TRUE(idx->Stats().quantized);
  EXPECT_EQ(idx->Size(), n);
  double recall = RecallAtK(*idx, Exact(data, dim, Metric::kL2, labels), queries, dim, 10, 64);
  EXPECT_GE(recall, 0.95);
}

TEST(HnswIndexTest, RecallOnCosineAndInnerProduct) {
  const size_t n = 8000, dim = 48;
  auto ds = kyrodb::testing::Clustered(n, dim, 200, 5);
  auto& data = ds.base;
  auto& queries = ds.queries;
  auto labels = Labels(n);
  for (Metric m : {Metric::kCosine, Metric::kInnerProduct}) {
    SCOPED_TRACE(std::string(MetricName(m)));
    auto idx = MakeIndex(dim, m);
    ASSERT_TRUE(idx->AddBatch(labels, data.data(), 2).ok());
    EXPECT_GE(RecallAtK(*idx, Exact(data, dim, m, labels), queries, dim, 10, 64), 0.95);
  }
}

TEST(HnswIndexTest, FloatWalkWithoutQuantizationReachesSameRecall) {
  const size_t n = 8000, dim = 32;
  auto ds = kyrodb::testing::Clustered(n, dim, 200, 9);
  auto& data = ds.base;
  auto& queries = ds.queries;
  auto labels = Labels(n);
  auto idx = MakeIndex(dim, Metric::kL2, 1 << 16, /*quantize=*/false);
  ASSERT_TRUE(idx->AddBatch(labels, data.data(), 2).ok());
  EXPECT_FALSE(idx->Stats().quantized);
  EXPECT_GE(RecallAtK(*idx, Exact(data, dim, Metric::kL2, labels), queries, dim, 10, 64), 0.95);
}

TEST(HnswIndexTest, ReportedDistancesAreExact) {
  const size_t n = 3000, dim = 24;
  auto data = ClusteredVectors(n, dim, 11);
  auto labels = Labels(n);
  auto idx = MakeIndex(dim, Metric::kL2);
  ASSERT_TRUE(idx->AddBatch(labels, data.data(), 2).ok());
  ASSERT_TRUE(idx->Stats().quantized);
  auto q = ClusteredVectors(1, dim, 12);
  std::vector<SearchHit> hits;
  ASSERT_TRUE(idx->Search(q.data(), 10, 64, &hits).ok());
  ASSERT_EQ(hits.size(), 10u);
  for (size_t i = 0; i < hits.size(); ++i) {
    const float* x = &data[(hits[i].label - 1) * dim];
    double d = 0;
    for (size_t j = 0; j < dim; ++j) d += (double(q[j]) - x[j]) * (double(q[j]) - x[j]);
    EXPECT_NEAR(hits[i].distance, d, 1e-3 * d + 1e-5);
    if (i > 0) {
      EXPECT_LE(hits[i - 1].distance, hits[i].distance);
    }
  }
}

TEST(HnswIndexTest, SmallIndexAnswersExactlyWithLargeEf) {
  const size_t n = 300, dim = 16;  // below kQuantizerTrainSize: float walk
  auto data = ClusteredVectors(n, dim, 13);
  auto labels = Labels(n);
  auto idx = MakeIndex(dim, Metric::kL2);
  for (size_t i = 0; i < n; ++i) ASSERT_TRUE(idx->Add(labels[i], &data[i * dim]).ok());
  EXPECT_FALSE(idx->Stats().quantized);
  auto exact = Exact(data, dim, Metric::kL2, labels);
  auto q = ClusteredVectors(20, dim, 14);
  std::vector<SearchHit> hits;
  for (size_t i = 0; i < 20; ++i) {
    ASSERT_TRUE(idx->Search(&q[i * dim], 5, n, &hits).ok());
    auto want = exact.Search(&q[i * dim], 5);
    ASSERT_EQ(hits.size(), want.size());
    for (size_t j = 0; j < hits.size(); ++j) EXPECT_EQ(hits[j].label, want[j].label);
  }
}

TEST(HnswIndexTest, QuantizerTrainsItselfOnceEnoughVectorsArrive) {
  const size_t dim = 16, n = HnswIndex::kQuantizerTrainSize + 200;
  auto ds = kyrodb::testing::Clustered(n, dim, 100, 15);
  auto& data = ds.base;
  auto idx = MakeIndex(dim, Metric::kL2);
  for (size_t i = 0; i < n; ++i) ASSERT_TRUE(idx->Add(i + 1, &data[i * dim]).ok());
  EXPECT_TRUE(idx->Stats().quantized);
  auto labels = Labels(n);
  auto& q = ds.queries;
  EXPECT_GE(RecallAtK(*idx, Exact(data, dim, Metric::kL2, labels), q, dim, 10, 64), 0.95);
}

TEST(HnswIndexTest, EmptyIndexReturnsNoResults) {
  auto idx = MakeIndex(8, Metric::kL2);
  std::vector<float> q(8, 1.0f);
  std::vector<SearchHit> hits = {{1, 1.0f}};
  ASSERT_TRUE(idx->Search(q.data(), 10, 0, &hits).ok());
  EXPECT_TRUE(hits.empty());
}

TEST(HnswIndexTest, UpsertReplacesTheVector) {
  const size_t dim = 8;
  auto idx = MakeIndex(dim, Metric::kL2);
  auto data = ClusteredVectors(200, dim, 17);
  for (size_t i = 0; i < 200; ++i) ASSERT_TRUE(idx->Add(i + 1, &data[i * dim]).ok());
  std::vector<float> v(dim, 50.0f);
  ASSERT_TRUE(idx->Add(7, v.data()).ok());
  EXPECT_EQ(idx->Size(), 200u);
  std::vector<float> got(dim);
  ASSERT_TRUE(idx->GetVector(7, got.data()).ok());
  EXPECT_EQ(got, v);
  std::vector<SearchHit> hits;
  ASSERT_TRUE(idx->Search(v.data(), 3, 50, &hits).ok());
  ASSERT_FALSE(hits.empty());
  EXPECT_EQ(hits[0].label, 7u);
  EXPECT_NEAR(hits[0].distance, 0.0f, 1e-6);
  // The old vector of 7 no longer matches 7.
  ASSERT_TRUE(idx->Search(&data[6 * dim], 200, 200, &hits).ok());
  for (auto& h : hits) {
    if (h.label == 7) {
      EXPECT_GT(h.distance, 1.0f);
    }
  }
}

TEST(HnswIndexTest, RemovedLabelsNeverAppear) {
  const size_t n = 5000, dim = 16;
  auto data = ClusteredVectors(n, dim, 18);
  auto labels = Labels(n);
  auto idx = MakeIndex(dim, Metric::kL2);
  ASSERT_TRUE(idx->AddBatch(labels, data.data(), 2).ok());
  for (uint64_t l = 1; l <= n; l += 2) ASSERT_TRUE(idx->Remove(l).ok());
  EXPECT_EQ(idx->Remove(1).code(), StatusCode::kNotFound);
  EXPECT_EQ(idx->Size(), n / 2);
  EXPECT_FALSE(idx->Contains(1));
  EXPECT_TRUE(idx->Contains(2));
  std::vector<SearchHit> hits;
  for (size_t i = 0; i < 200; ++i) {
    ASSERT_TRUE(idx->Search(&data[i * dim], 10, 32, &hits).ok());
    EXPECT_EQ(hits.size(), 10u);
    for (auto& h : hits) EXPECT_EQ(h.label % 2, 0u) << "removed label " << h.label << " returned";
  }
}

TEST(HnswIndexTest, RejectsBadVectorsAndOptions) {
  auto idx = MakeIndex(4, Metric::kCosine);
  float zero[4] = {0, 0, 0, 0};
  float nan[4] = {1, NAN, 0, 0};
  float inf[4] = {1, INFINITY, 0, 0};
  EXPECT_EQ(idx->Add(1, zero).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(idx->Add(1, nan).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(idx->Add(1, inf).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(idx->Size(), 0u);
  std::vector<SearchHit> hits;
  float one[4] = {1, 0, 0, 0};
  ASSERT_TRUE(idx->Add(1, one).ok());
  EXPECT_EQ(idx->Search(zero, 1, 0, &hits).code(), StatusCode::kInvalidArgument);
  HnswOptions bad;
  bad.dim = 0;
  EXPECT_FALSE(HnswIndex::Create(bad).ok());
  bad.dim = 4;
  bad.m = 1;
  EXPECT_FALSE(HnswIndex::Create(bad).ok());
}

TEST(HnswIndexTest, FullIndexRefusesInsertWithResourceExhausted) {
  auto idx = MakeIndex(4, Metric::kL2, /*max_elements=*/10);
  float v[4] = {1, 2, 3, 4};
  for (int i = 0; i < 10; ++i) {
    v[0] = static_cast<float>(i);
    ASSERT_TRUE(idx->Add(i + 1, v).ok());
  }
  EXPECT_EQ(idx->Add(99, v).code(), StatusCode::kResourceExhausted);
}

// Delete half of an index, insert as many new vectors, and compare recall with a freshly built
// index of the same final content: the issue asks for at most 2 points of difference.
void ChurnRecall(size_t n, size_t dim) {
  auto ds = kyrodb::testing::Clustered(n + n / 2, dim, 300, 21);
  auto& data = ds.base;
  auto& queries = ds.queries;
  auto idx = MakeIndex(dim, Metric::kL2);
  auto first = Labels(n);
  ASSERT_TRUE(idx->AddBatch(first, data.data(), 2).ok());
  for (uint64_t l = 1; l <= n; l += 2) ASSERT_TRUE(idx->Remove(l).ok());
  auto second = Labels(n / 2, n + 1);
  ASSERT_TRUE(idx->AddBatch(second, data.data() + n * dim, 2).ok());

  std::vector<uint64_t> final_labels;
  std::vector<float> final_data;
  for (size_t i = 0; i < n + n / 2; ++i) {
    uint64_t l = i + 1;
    if (l <= n && l % 2 == 1) continue;
    final_labels.push_back(l);
    final_data.insert(final_data.end(), &data[i * dim], &data[(i + 1) * dim]);
  }
  auto fresh = MakeIndex(dim, Metric::kL2);
  ASSERT_TRUE(fresh->AddBatch(final_labels, final_data.data(), 2).ok());
  auto exact = Exact(final_data, dim, Metric::kL2, final_labels);
  double churned = RecallAtK(*idx, exact, queries, dim, 10, 64);
  double rebuilt = RecallAtK(*fresh, exact, queries, dim, 10, 64);
  EXPECT_GE(churned, rebuilt - 0.02) << "churned " << churned << " vs fresh " << rebuilt;
  // Slots were recycled: memory is not that of n + n/2 vectors.
  HnswStats st = idx->Stats();
  EXPECT_EQ(st.live, n);
  EXPECT_LE(st.slots, n + n / 10 + 64) << "slots were not recycled";
}

TEST(HnswIndexTest, DeleteHalfThenReinsertKeepsRecall) { ChurnRecall(20000, 32); }
TEST(HnswIndexTest, SlowDeleteHalfOf100kThenReinsertKeepsRecall) { ChurnRecall(100000, 32); }

TEST(HnswIndexTest, MemoryStaysBoundedUnderInsertDeleteChurn) {
  const size_t n = 4000, dim = 16;
  auto data = ClusteredVectors(n * 2, dim, 23);
  auto idx = MakeIndex(dim, Metric::kL2);
  ASSERT_TRUE(idx->AddBatch(Labels(n), data.data(), 2).ok());
  uint64_t next = n + 1;
  std::vector<uint64_t> live = Labels(n);
  for (int round = 0; round < 20; ++round) {
    for (size_t i = 0; i < n / 5; ++i) {  // replace 20% per round
      size_t victim = (i * 7919 + round * 104729) % live.size();
      ASSERT_TRUE(idx->Remove(live[victim]).ok());
      live[victim] = next;
      ASSERT_TRUE(idx->Add(next, &data[(next % (2 * n)) * dim]).ok());
      ++next;
    }
  }
  HnswStats st = idx->Stats();
  EXPECT_EQ(st.live, n);
  EXPECT_LE(st.slots, n + n / 5 + 64);
  EXPECT_GT(st.bytes_per_vector, 0.0);
}

TEST(HnswIndexTest, SaveLoadRoundTripGivesIdenticalResults) {
  const size_t n = 6000, dim = 32;
  auto data = ClusteredVectors(n, dim, 31);
  auto idx = MakeIndex(dim, Metric::kCosine);
  ASSERT_TRUE(idx->AddBatch(Labels(n), data.data(), 2).ok());
  for (uint64_t l = 1; l <= 100; ++l) ASSERT_TRUE(idx->Remove(l * 3).ok());
  TempDir dir;
  ASSERT_TRUE(idx->Save(dir.File("index.hnsw")).ok());
  auto loaded = HnswIndex::Load(dir.File("index.hnsw"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ((*loaded)->Size(), idx->Size());
  EXPECT_EQ((*loaded)->Stats().quantized, idx->Stats().quantized);
  auto q = ClusteredVectors(100, dim, 32);
  std::vector<SearchHit> a, b;
  for (size_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(idx->Search(&q[i * dim], 10, 40, &a).ok());
    ASSERT_TRUE((*loaded)->Search(&q[i * dim], 10, 40, &b).ok());
    ASSERT_EQ(a.size(), b.size());
    for (size_t j = 0; j < a.size(); ++j) {
      EXPECT_EQ(a[j].label, b[j].label);
      EXPECT_EQ(a[j].distance, b[j].distance);
    }
  }
  // The loaded index keeps working: inserts, removes, and upserts.
  ASSERT_TRUE((*loaded)->Add(999999, &q[0]).ok());
  ASSERT_TRUE((*loaded)->Search(&q[0], 1, 40, &b).ok());
  EXPECT_EQ(b[0].label, 999999u);
  EXPECT_FALSE((*loaded)->Contains(3));
}

std::string ReadAll(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}
void WriteAll(const std::string& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(s.data(), static_cast<std::streamsize>(s.size()));
}

TEST(HnswIndexTest, TruncatedFileIsRefusedWithCorruption) {
  const size_t n = 2000, dim = 16;
  auto data = ClusteredVectors(n, dim, 33);
  auto idx = MakeIndex(dim, Metric::kL2);
  ASSERT_TRUE(idx->AddBatch(Labels(n), data.data(), 2).ok());
  TempDir dir;
  ASSERT_TRUE(idx->Save(dir.File("i")).ok());
  std::string bytes = ReadAll(dir.File("i"));
  for (size_t cut : {size_t{0}, size_t{10}, size_t{95}, size_t{96}, size_t{200}, bytes.size() / 2,
                     bytes.size() - 5, bytes.size() - 1}) {
    WriteAll(dir.File("t"), bytes.substr(0, cut));
    auto r = HnswIndex::Load(dir.File("t"));
    ASSERT_FALSE(r.ok()) << "cut at " << cut;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << r.status().ToString();
  }
  WriteAll(dir.File("t"), bytes + "x");
  EXPECT_EQ(HnswIndex::Load(dir.File("t")).status().code(), StatusCode::kCorruption);
}

TEST(HnswIndexTest, BitFlipAnywhereIsRefusedWithCorruption) {
  const size_t n = 1500, dim = 16;
  auto data = ClusteredVectors(n, dim, 34);
  auto idx = MakeIndex(dim, Metric::kL2);
  ASSERT_TRUE(idx->AddBatch(Labels(n), data.data(), 2).ok());
  TempDir dir;
  ASSERT_TRUE(idx->Save(dir.File("i")).ok());
  std::string bytes = ReadAll(dir.File("i"));
  std::mt19937 rng(5);
  for (int trial = 0; trial < 60; ++trial) {
    std::string b = bytes;
    size_t pos = trial < 20 ? static_cast<size_t>(trial) * 5 : rng() % b.size();
    b[pos] = static_cast<char>(b[pos] ^ (1 << (rng() % 8)));
    WriteAll(dir.File("f"), b);
    auto r = HnswIndex::Load(dir.File("f"));
    ASSERT_FALSE(r.ok()) << "flip at " << pos << " was accepted";
    EXPECT_TRUE(r.status().code() == StatusCode::kCorruption ||
                r.status().code() == StatusCode::kNotSupported)
        << r.status().ToString();
  }
}

// ---- Level-0 connectivity repairs ----
// The damage below is written into a saved index file (docs/formats/hnsw.md) rather than made
// through a test hook: the tests read the node table and level-0 links, cut links, put the
// level-0 section's checksum right, and load the result, which Load accepts as it is (it
// validates links but does not repair them).

// The node table and level-0 links of a saved index file, editable in place.
class IndexFile {
 public:
  void Read(const std::string& path) {
    bytes_ = ReadAll(path);
    ASSERT_GE(bytes_.size(), sizeof(hnsw_format::Header));
    hnsw_format::Header h;
    std::memcpy(&h, bytes_.data(), sizeof(h));
    ASSERT_EQ(std::memcmp(h.magic, hnsw_format::kMagic, sizeof(h.magic)), 0);
    ASSERT_EQ(h.version, hnsw_format::kVersion);
    n_ = h.num_slots;
    entry_ = h.entry_node;
    code_bytes_ = h.code_bytes;
    stride0_ = h.level0_stride;
    max_links0_ = 2 * h.m;
    size_t pos = sizeof(h);
    for (;;) {  // section: u32 type, u32 reserved, u64 payload bytes, payload, u32 crc
      ASSERT_LE(pos + 16, bytes_.size());
      uint32_t type;
      uint64_t len;
      std::memcpy(&type, &bytes_[pos], 4);
      std::memcpy(&len, &bytes_[pos + 8], 8);
      const size_t payload = pos + 16;
      ASSERT_LE(payload + len + 4, bytes_.size());
      if (type == hnsw_format::kSectionNodes) nodes_off_ = payload;
      if (type == hnsw_format::kSectionLevel0) {
        level0_off_ = payload;
        level0_len_ = len;
      }
      pos = payload + len + 4;
      if (type == hnsw_format::kSectionEnd) break;
    }
    ASSERT_EQ(pos, bytes_.size());
    ASSERT_NE(nodes_off_, 0u);
    ASSERT_EQ(level0_len_, static_cast<uint64_t>(n_) * stride0_);
  }

  // Writes the file with the edited links; only the level-0 section's checksum changes.
  void Write(const std::string& path) {
    const uint32_t crc = crc32c::Mask(crc32c::Value(&bytes_[level0_off_], level0_len_));
    std::memcpy(&bytes_[level0_off_ + level0_len_], &crc, 4);
    WriteAll(path, bytes_);
  }

  uint32_t slots() const { return n_; }
  uint32_t entry() const { return entry_; }
  uint32_t max_links0() const { return max_links0_; }
  uint64_t Label(uint32_t i) const {
    uint64_t l;
    std::memcpy(&l, &bytes_[nodes_off_ + 8 * size_t{i}], 8);
    return l;
  }
  int Level(uint32_t i) const {
    return static_cast<uint8_t>(bytes_[nodes_off_ + 8 * size_t{n_} + i]);
  }
  bool Live(uint32_t i) const { return bytes_[nodes_off_ + 9 * size_t{n_} + i] == 0; }

  std::vector<uint32_t> Links(uint32_t i) const {
    const size_t at = LinksAt(i);
    uint32_t cnt;
    std::memcpy(&cnt, &bytes_[at], 4);
    std::vector<uint32_t> links(cnt);
    if (cnt > 0) std::memcpy(links.data(), &bytes_[at + 4], 4 * size_t{cnt});
    return links;
  }
  void SetLinks(uint32_t i, const std::vector<uint32_t>& links) {
    ASSERT_LE(links.size(), max_links0_);
    const size_t at = LinksAt(i);
    const uint32_t cnt = static_cast<uint32_t>(links.size());
    std::memcpy(&bytes_[at], &cnt, 4);
    std::memset(&bytes_[at + 4], 0, 4 * size_t{max_links0_});
    if (cnt > 0) std::memcpy(&bytes_[at + 4], links.data(), 4 * size_t{cnt});
  }

  // Live nodes not reached by a level-0 walk from the entry point along the links
  // (`towards_entry` false), or that cannot reach the entry point (`towards_entry` true).
  std::set<uint32_t> Unconnected(bool towards_entry) const {
    std::vector<std::vector<uint32_t>> next(n_);
    for (uint32_t i = 0; i < n_; ++i) {
      if (!Live(i)) continue;
      for (uint32_t t : Links(i)) {
        if (towards_entry) {
          next[t].push_back(i);
        } else {
          next[i].push_back(t);
        }
      }
    }
    std::vector<bool> seen(n_, false);
    std::vector<uint32_t> stack = {entry_};
    seen[entry_] = true;
    while (!stack.empty()) {
      const uint32_t u = stack.back();
      stack.pop_back();
      for (uint32_t t : next[u]) {
        if (!seen[t]) {
          seen[t] = true;
          stack.push_back(t);
        }
      }
    }
    std::set<uint32_t> out;
    for (uint32_t i = 0; i < n_; ++i) {
      if (Live(i) && !seen[i]) out.insert(i);
    }
    return out;
  }

  // Live nodes that no live node links to on level 0.
  std::set<uint32_t> WithoutInLinks() const {
    std::vector<bool> linked(n_, false);
    for (uint32_t i = 0; i < n_; ++i) {
      if (!Live(i)) continue;
      for (uint32_t t : Links(i)) linked[t] = true;
    }
    std::set<uint32_t> out;
    for (uint32_t i = 0; i < n_; ++i) {
      if (Live(i) && !linked[i]) out.insert(i);
    }
    return out;
  }

 private:
  size_t LinksAt(uint32_t i) const { return level0_off_ + size_t{i} * stride0_ + code_bytes_ + 4; }

  std::string bytes_;
  uint32_t n_ = 0, entry_ = 0, code_bytes_ = 0, stride0_ = 0, max_links0_ = 0;
  size_t nodes_off_ = 0, level0_off_ = 0;
  uint64_t level0_len_ = 0;
};

enum class Damage {
  kIsland,   // no level-0 link from outside the group into it; members link each other
  kDeadEnd,  // members' level-0 links all stay inside the group; the rest still links in
};
enum class Trigger { kAddBatch, kConsolidate };  // the two production paths that repair

// Builds a 400-node graph, damages a group of 16 neighbouring nodes in its saved file, loads it,
// shows that searches miss what the damage cut off, triggers the repair the way production
// does, and checks that every live vector is found again and the saved links are whole.
void CheckRepair(Damage damage, Trigger trigger) {
  const size_t n = 400, dim = 16, group_size = 16;
  auto data = ClusteredVectors(n, dim, 41);
  auto idx = MakeIndex(dim, Metric::kL2, 1024);
  ASSERT_OK(idx->AddBatch(Labels(n), data.data(), /*num_threads=*/1));  // 1: same graph every run
  TempDir dir;
  ASSERT_OK(idx->Save(dir.File("built")));
  IndexFile file;
  ASSERT_NO_FATAL_FAILURE(file.Read(dir.File("built")));
  ASSERT_EQ(file.slots(), n);
  ASSERT_TRUE(file.Unconnected(false).empty());
  ASSERT_TRUE(file.Unconnected(true).empty());
  const uint32_t entry = file.entry();
  auto vec = [&](uint32_t slot) { return &data[(file.Label(slot) - 1) * dim]; };
  auto dist = [&](uint32_t a, uint32_t b) {
    double d = 0;
    for (size_t j = 0; j < dim; ++j) {
      const double diff = double{vec(a)[j]} - vec(b)[j];
      d += diff * diff;
    }
    return d;
  };

  // The group: a seed node and its nearest neighbours, never the entry point. An island's
  // members are level-0-only, so that no upper-level link leads a search into it; a dead end's
  // seed has an upper level, so that a search for its vector descends into the group.
  auto eligible = [&](uint32_t i) {
    return i != entry && (damage == Damage::kDeadEnd || file.Level(i) == 0);
  };
  uint32_t seed = 0;
  while (seed < n && !(eligible(seed) && (damage == Damage::kIsland || file.Level(seed) > 0))) {
    ++seed;
  }
  ASSERT_LT(seed, n);
  std::vector<uint32_t> others;
  for (uint32_t i = 0; i < n; ++i) {
    if (i != seed && eligible(i)) others.push_back(i);
  }
  std::sort(others.begin(), others.end(),
            [&](uint32_t a, uint32_t b) { return dist(seed, a) < dist(seed, b); });
  std::vector<uint32_t> group = {seed};
  group.insert(group.end(), others.begin(), others.begin() + (group_size - 1));
  const std::set<uint32_t> in_group(group.begin(), group.end());

  // Cut. Each member also gets a link to the next one (a ring), so that every member keeps an
  // in-link from inside the group and the orphan repair (nodes without in-links) passes it by.
  for (uint32_t i = 0; i < n; ++i) {
    if (in_group.count(i) > 0) continue;
    std::vector<uint32_t> links = file.Links(i);
    if (damage == Damage::kIsland) {
      std::erase_if(links, [&](uint32_t t) { return in_group.count(t) > 0; });
    }
    ASSERT_NO_FATAL_FAILURE(file.SetLinks(i, links));
  }
  for (size_t g = 0; g < group.size(); ++g) {
    const uint32_t ring_next = group[(g + 1) % group.size()];
    std::vector<uint32_t> links = {ring_next};
    for (uint32_t t : file.Links(group[g])) {
      if (t == ring_next || (damage == Damage::kDeadEnd && in_group.count(t) == 0)) continue;
      if (links.size() < file.max_links0()) links.push_back(t);
    }
    ASSERT_NO_FATAL_FAILURE(file.SetLinks(group[g], links));
  }
  // The damage is exactly what it should be, on the links as written, and no node is left
  // without in-links (which the orphan repair alone would mend).
  ASSERT_TRUE(file.WithoutInLinks().empty());
  if (damage == Damage::kIsland) {
    ASSERT_EQ(file.Unconnected(false), in_group)
        << "the island is not cut off from the entry point";
    ASSERT_TRUE(file.Unconnected(true).empty())
        << "island members must still reach the entry point";
  } else {
    ASSERT_TRUE(file.Unconnected(false).empty()) << "the dead end must stay reachable";
    ASSERT_EQ(file.Unconnected(true), in_group) << "the dead end has a way out";
  }
  file.Write(dir.File("damaged"));
  auto loaded = HnswIndex::Load(dir.File("damaged"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  HnswIndex& damaged = **loaded;

  // Before the repair, searches wide enough to visit every node they can reach (ef > n) miss
  // what the damage cut off.
  const size_t all = n + 1;
  std::vector<SearchHit> hits;
  if (damage == Damage::kIsland) {
    size_t found = 0;
    for (uint32_t g : group) {
      ASSERT_OK(damaged.Search(vec(g), 1, all, &hits));
      ASSERT_FALSE(hits.empty());
      found += hits[0].label == file.Label(g);
    }
    EXPECT_EQ(found, 0u) << "island members found before the repair";
  } else {
    // A search for the seed descends into the dead end and sees nothing else.
    ASSERT_OK(damaged.Search(vec(seed), all, all, &hits));
    std::set<uint64_t> got, want;
    for (const SearchHit& h : hits) got.insert(h.label);
    for (uint32_t g : group) want.insert(file.Label(g));
    EXPECT_EQ(got, want);
  }

  // Repair the way production does, through a node far from the group (so that its insertion
  // or removal does not touch the group's links itself).
  uint32_t far = entry;
  for (uint32_t i = 0; i < n; ++i) {
    if (i != entry && in_group.count(i) == 0 && (far == entry || dist(seed, i) > dist(seed, far))) {
      far = i;
    }
  }
  ASSERT_NE(far, entry);
  uint64_t gone_label = 0;
  if (trigger == Trigger::kAddBatch) {
    std::vector<float> v(vec(far), vec(far) + dim);
    for (float& x : v) x += 0.01f;
    const uint64_t label = n + 1;
    ASSERT_OK(damaged.AddBatch({&label, 1}, v.data(), 1));
  } else {
    gone_label = file.Label(far);
    ASSERT_OK(damaged.Remove(gone_label));
    ASSERT_EQ(damaged.Consolidate(), 1u);
  }

  // Every live vector is found again, by a search for itself...
  std::vector<uint64_t> missed_in_group, missed_elsewhere;
  for (uint32_t i = 0; i < n; ++i) {
    if (file.Label(i) == gone_label) continue;
    ASSERT_OK(damaged.Search(vec(i), 1, all, &hits));
    ASSERT_FALSE(hits.empty());
    if (hits[0].label != file.Label(i) || hits[0].distance != 0.0f) {
      (in_group.count(i) > 0 ? missed_in_group : missed_elsewhere).push_back(file.Label(i));
    }
  }
  EXPECT_EQ(missed_in_group, std::vector<uint64_t>{}) << "group members not found after the repair";
  EXPECT_EQ(missed_elsewhere, std::vector<uint64_t>{}) << "other nodes not found after the repair";
  // ...a search for the seed (for a dead end: one that descends into it) sees the whole index...
  ASSERT_OK(damaged.Search(vec(seed), all, all, &hits));
  EXPECT_EQ(hits.size(), damaged.Size());
  // ...and in the saved links every live node is reached from the entry point and reaches it.
  ASSERT_OK(damaged.Save(dir.File("repaired")));
  IndexFile repaired;
  ASSERT_NO_FATAL_FAILURE(repaired.Read(dir.File("repaired")));
  EXPECT_TRUE(repaired.Unconnected(false).empty())
      << repaired.Unconnected(false).size() << " unreached";
  EXPECT_TRUE(repaired.Unconnected(true).empty())
      << repaired.Unconnected(true).size() << " without a way out";
}

TEST(HnswIndexTest, AddBatchReconnectsAnIslandCutOffFromTheEntryPoint) {
  CheckRepair(Damage::kIsland, Trigger::kAddBatch);
}
TEST(HnswIndexTest, ConsolidateReconnectsAnIslandCutOffFromTheEntryPoint) {
  CheckRepair(Damage::kIsland, Trigger::kConsolidate);
}
TEST(HnswIndexTest, AddBatchGivesADeadEndGroupAWayOut) {
  CheckRepair(Damage::kDeadEnd, Trigger::kAddBatch);
}
TEST(HnswIndexTest, ConsolidateGivesADeadEndGroupAWayOut) {
  CheckRepair(Damage::kDeadEnd, Trigger::kConsolidate);
}

// The dead-end pass gives a node with a full link list a way out by replacing a link whose
// target keeps another in-link; when that other in-link comes from behind the target, the
// replacement cuts both off. Here x (full: a, b, c, t) is the group's only way in and has no
// way out; t's other in-link is from y, which only t links to. Replacing x -> t cut off {t, y}
// until the next repair; one repair must leave the graph whole.
TEST(HnswIndexTest, ADeadEndRepairThatCutsOffNodesIsRepairedInTheSamePass) {
  const size_t n = 200, dim = 8;
  const std::vector<float> data = ClusteredVectors(n, dim, 43);
  HnswOptions o;
  o.dim = dim;
  o.m = 2;  // 4 level-0 links: x's list is full
  o.max_elements = 1024;
  auto built = HnswIndex::Create(o);
  ASSERT_TRUE(built.ok());
  ASSERT_OK((*built)->AddBatch(Labels(n), data.data(), 1));
  TempDir dir;
  ASSERT_OK((*built)->Save(dir.File("built")));
  IndexFile file;
  ASSERT_NO_FATAL_FAILURE(file.Read(dir.File("built")));
  const uint32_t entry = file.entry();
  std::vector<uint32_t> g;
  for (uint32_t i = 0; i < n && g.size() < 6; ++i) {
    if (i != entry) g.push_back(i);
  }
  const uint32_t x = g[0], a = g[1], b = g[2], c = g[3], t = g[4], y = g[5];
  const std::set<uint32_t> group(g.begin(), g.end());
  // Nothing outside links into the group but the entry point's link to x.
  for (uint32_t i = 0; i < n; ++i) {
    if (group.count(i) > 0) continue;
    std::vector<uint32_t> links = file.Links(i);
    std::erase_if(links, [&](uint32_t u) { return group.count(u) > 0; });
    if (i == entry) {
      if (links.size() < file.max_links0()) {
        links.push_back(x);
      } else {
        links.back() = x;
      }
    }
    file.SetLinks(i, links);
  }
  file.SetLinks(x, {a, b, c, t});
  file.SetLinks(a, {x});
  file.SetLinks(b, {x});
  file.SetLinks(c, {x});
  file.SetLinks(t, {y});
  file.SetLinks(y, {t});
  // Nodes the cuts above left without an in-link get one from outside the group (so the orphan
  // pass has nothing to do).
  for (uint32_t orphan : file.WithoutInLinks()) {
    for (uint32_t p = 0; p < n; ++p) {
      if (p == orphan || group.count(p) > 0) continue;
      std::vector<uint32_t> links = file.Links(p);
      if (links.size() < file.max_links0()) {
        links.push_back(orphan);
        file.SetLinks(p, links);
        break;
      }
    }
  }
  ASSERT_TRUE(file.WithoutInLinks().empty());
  ASSERT_TRUE(file.Unconnected(false).empty()) << "the group is reachable";
  ASSERT_EQ(file.Unconnected(true), group) << "the group has no way out";
  file.Write(dir.File("damaged"));
  auto loaded = HnswIndex::Load(dir.File("damaged"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  HnswIndex& index = **loaded;

  // One repair, triggered by an insert far from the group.
  std::vector<float> far(dim);
  for (size_t j = 0; j < dim; ++j) far[j] = -data[(file.Label(x) - 1) * dim + j];
  const uint64_t label = n + 1;
  ASSERT_OK(index.AddBatch({&label, 1}, far.data(), 1));
  ASSERT_OK(index.Save(dir.File("repaired")));
  IndexFile repaired;
  ASSERT_NO_FATAL_FAILURE(repaired.Read(dir.File("repaired")));
  EXPECT_TRUE(repaired.Unconnected(false).empty()) << "cut off from the entry point: "
                                                   << repaired.Unconnected(false).size();
  EXPECT_TRUE(repaired.Unconnected(true).empty()) << "without a way out: " << repaired.Unconnected(true).size();
  std::vector<SearchHit> hits;
  for (uint32_t u : g) {
    ASSERT_OK(index.Search(&data[(file.Label(u) - 1) * dim], 1, 500, &hits));
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_EQ(hits[0].label, file.Label(u)) << "node " << u;
  }
}

TEST(HnswIndexTest, MissingFileIsNotFound) {
  EXPECT_EQ(HnswIndex::Load("/nonexistent/kyrodb.hnsw").status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace kyrodb::index

// Golden data directory: a storage directory (MANIFEST, one snapshot, three WAL segments)
// written by storage format version 1 must keep recovering to exactly the same documents.
// Regenerate (only when adding a new format version!) with KYRODB_WRITE_GOLDEN=1; the files
// live in tests/compat/storage_v1/.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <ostream>
#include <set>
#include <string>

#include "storage/manifest.h"
#include "storage/snapshot.h"
#include "storage/storage.h"
#include "storage/wal.h"
#include "storage_test_util.h"

#ifndef KYRODB_COMPAT_DIR
#error "KYRODB_COMPAT_DIR must point at tests/compat"
#endif


namespace kyrodb::storage {
namespace {

namespace fs = std::filesystem;
using kyrodb::testing::MapStateMachine;

constexpr uint64_t kBeforeCheckpoint = 20;  // ops 0..19 end up in the snapshot (and segment 1)
constexpr uint64_t kAfterCheckpoint = 50;   // ops 20..69 in segments 2 and 3
constexpr uint64_t kSegmentBytes = 2048;

std::string GoldenDir() { return std::string(KYRODB_COMPAT_DIR) + "/storage_v1"; }

std::string Num(uint64_t v) { return std::to_string(v); }

// The golden workload. Every record type appears: op 0 creates collection (acme, docs), op 1
// creates (acme, scratch); upserts carry string ids and metadata; there are deletes, metadata
// merges and replaces, and op 45 drops (acme, scratch) after it got documents.
WalRecord Op(uint64_t g) {
  WalRecord r;
  r.tenant = "acme";
  r.collection = g % 5 == 1 ? "scratch" : "docs";
  r.doc_id = (g * 5) % 17 + 1;
  if (g <= 1) {
    r.type = RecordType::kCreateCollection;
    r.spec = CollectionSpec{4, static_cast<uint8_t>(g), 8, 64, 32};
  } else if (g == 45) {
    r.type = RecordType::kDropCollection;
    r.collection = "scratch";
  } else if (g % 9 == 4) {
    r.type = RecordType::kDelete;
  } else if (g % 7 == 3) {
    r.type = RecordType::kUpdateMetadata;
    r.merge_metadata = true;
    r.metadata = {{"merged", Num(g)}};
  } else if (g % 11 == 8) {
    r.type = RecordType::kUpdateMetadata;
    r.merge_metadata = false;
    r.metadata = {{"replaced", Num(g)}};
  } else {
    r.type = RecordType::kUpsert;
    r.external_id = "doc_";
    r.external_id += Num(r.doc_id);
    for (int i = 0; i < 4; ++i) r.embedding.push_back(static_cast<float>(g) * 0.5f + i);
    r.metadata = {{"g", Num(g)}};
    if (g % 3 == 0) r.metadata.emplace_back("lang", g % 2 ? "en" : "de");
  }
  return r;
}

MapStateMachine::Docs ModelAfter(uint64_t n) {
  MapStateMachine::Docs d;
  for (uint64_t g = 0; g < n; ++g) MapStateMachine::ApplyTo(Op(g), &d);
  return d;
}

StorageOptions Options(const std::string& dir) {
  StorageOptions o;
  o.dir = dir;
  o.fsync_policy = FsyncPolicy::kAlways;
  o.wal_segment_bytes = kSegmentBytes;
  o.recovery_mode = RecoveryMode::kStrict;
  return o;
}

void WriteGolden(const std::string& dir) {
  fs::remove_all(dir);
  MapStateMachine sm;
  auto st = Storage::Open(Options(dir), &sm, nullptr);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  auto write = [&](uint64_t from, uint64_t to) {
    for (uint64_t g = from; g < to; ++g) {
      WalRecord r = Op(g);
      auto lsn = (*st)->Write(r, [&] { return sm.Apply(r); });
      ASSERT_TRUE(lsn.ok()) << lsn.status().ToString();
      ASSERT_EQ(*lsn, g + 1);
    }
  };
  ASSERT_NO_FATAL_FAILURE(write(0, kBeforeCheckpoint));
  auto cp = (*st)->Checkpoint();
  ASSERT_TRUE(cp.ok()) << cp.status().ToString();
  ASSERT_NO_FATAL_FAILURE(write(kBeforeCheckpoint, kBeforeCheckpoint + kAfterCheckpoint));
  ASSERT_TRUE((*st)->Close().ok());
}

class TempCopy {
 public:
  explicit TempCopy(const std::string& from) {
    char tmpl[] = "/tmp/kyrodb_storage_compat_XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    if (p == nullptr) std::abort();
    path_ = std::string(p) + "/data";
    fs::copy(from, path_, fs::copy_options::recursive);
  }
  ~TempCopy() {
    std::error_code ec;
    fs::remove_all(fs::path(path_).parent_path(), ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::set<std::string> Listing(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out.insert(fs::relative(e.path(), dir).string());
  }
  return out;
}

TEST(StorageCompatTest, Version1GoldenDirectoryRecoversExactly) {
  if (std::getenv("KYRODB_WRITE_GOLDEN") != nullptr) {
    ASSERT_NO_FATAL_FAILURE(WriteGolden(GoldenDir()));
  }
  const std::string snap = SnapshotDirName(kBeforeCheckpoint);
  ASSERT_EQ(Listing(GoldenDir()),
            (std::set<std::string>{"MANIFEST", snap, snap + "/SNAPSHOT", snap + "/docs",
                                   WalSegmentName(1), WalSegmentName(2), WalSegmentName(3)}))
      << "the golden directory changed shape";

  TempCopy copy(GoldenDir());  // recovery may write (a new segment), the golden files stay
  MapStateMachine sm;
  RecoveryReport report;
  auto st = Storage::Open(Options(copy.path()), &sm, &report);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(report.snapshot, snap);
  EXPECT_EQ(report.snapshot_lsn, kBeforeCheckpoint);
  EXPECT_FALSE(report.fell_back);
  EXPECT_EQ(report.segments_replayed, 2u);
  EXPECT_EQ(report.records_replayed, kAfterCheckpoint);
  EXPECT_EQ(report.last_lsn, kBeforeCheckpoint + kAfterCheckpoint);
  EXPECT_FALSE(report.torn_tail_discarded);
  EXPECT_EQ(report.bytes_dropped, 0u);

  const MapStateMachine::Docs got = sm.docs();
  EXPECT_EQ(got, ModelAfter(kBeforeCheckpoint + kAfterCheckpoint));
  // A few values spelled out, so that the workload and the decoder cannot drift together.
  EXPECT_EQ(got.size(), 18u);
  using Key = MapStateMachine::Key;
  auto merged = got.find(Key{"acme", "docs", 7});  // upsert op 42, merge op 59
  ASSERT_NE(merged, got.end());
  EXPECT_EQ(merged->second.embedding, (std::vector<float>{21.0f, 22.0f, 23.0f, 24.0f}));
  EXPECT_EQ(merged->second.metadata, (Metadata{{"g", "42"}, {"lang", "de"}, {"merged", "59"}}));
  auto replaced = got.find(Key{"acme", "docs", 10});  // metadata replaced by op 63
  ASSERT_NE(replaced, got.end());
  EXPECT_EQ(replaced->second.embedding, (std::vector<float>{14.5f, 15.5f, 16.5f, 17.5f}));
  EXPECT_EQ(replaced->second.metadata, (Metadata{{"replaced", "63"}}));
  EXPECT_EQ(got.count(Key{"acme", "scratch", 14}), 0u) << "dropped with its collection (op 45)";
  EXPECT_EQ(got.count(Key{"acme", "scratch", 10}), 1u) << "written again after the drop";
  EXPECT_EQ(got.count(Key{"acme", "docs", 2}), 0u) << "deleted";

  // The manifest names both generations as this version wrote them.
  const Manifest m = (*st)->manifest();
  EXPECT_EQ(m.current.name, snap);
  EXPECT_EQ(m.current.lsn, kBeforeCheckpoint);
  EXPECT_EQ(m.current.wal_first_segment, 2u);
  EXPECT_TRUE(m.previous.name.empty());
  EXPECT_EQ(m.previous.wal_first_segment, 1u);

  // New writes continue after the golden LSNs.
  WalRecord r = Op(100);
  auto lsn = (*st)->Write(r, [&] { return sm.Apply(r); });
  ASSERT_TRUE(lsn.ok()) << lsn.status().ToString();
  EXPECT_EQ(*lsn, kBeforeCheckpoint + kAfterCheckpoint + 1);
}

// The fallback generation of the golden directory (no snapshot, every segment from 1) is
// readable too: with the snapshot damaged, the three segments alone give the same state.
TEST(StorageCompatTest, Version1GoldenWalAloneRecoversTheSameState) {
  TempCopy copy(GoldenDir());
  const std::string docs =
      copy.path() + "/" + SnapshotDirName(kBeforeCheckpoint) + "/docs";
  std::string data;
  {
    std::ifstream in(docs, std::ios::binary);
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(data.size(), 16u);
  data[12] = static_cast<char>(data[12] ^ 0x01);
  {
    std::ofstream out(docs, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  MapStateMachine sm;
  RecoveryReport report;
  auto st = Storage::Open(Options(copy.path()), &sm, &report);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(report.fell_back);
  EXPECT_EQ(report.segments_replayed, 3u);
  EXPECT_EQ(report.records_replayed, kBeforeCheckpoint + kAfterCheckpoint);
  EXPECT_EQ(sm.docs(), ModelAfter(kBeforeCheckpoint + kAfterCheckpoint));
}

}  // namespace
}  // namespace kyrodb::storage

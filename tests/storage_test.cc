// Storage tests: WAL record encoding, the WAL writer/reader, recovery from snapshot + WAL,
// checkpoint trimming, and what happens when the disk misbehaves (fsync failure, ENOSPC, short
// writes, power loss, torn tails, bit flips, missing segments). Every test works on real files
// in its own mkdtemp directory; faults come from io::FaultInjectionFileSystem.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "io/fault_injection_file_system.h"
#include "storage/manifest.h"
#include "storage/snapshot.h"
#include "storage/storage.h"
#include "storage/wal.h"
#include "storage/wal_format.h"
#include "storage/wal_reader.h"
#include "storage/wal_record.h"
#include "storage_test_util.h"
#include "test_support.h"


namespace kyrodb::storage {
namespace {

namespace fs = std::filesystem;
using kyrodb::testing::MapStateMachine;
using Docs = MapStateMachine::Docs;
using kyrodb::testing::TempDir;

// ---------------------------------------------------------------------------------------------
// Helpers

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::string data = ReadFile(path);
  ASSERT_LT(offset, data.size()) << path;
  data[offset] = static_cast<char>(data[offset] ^ 0x5a);
  WriteFile(path, data);
}

std::string Num(uint64_t v) { return std::to_string(v); }

std::string Cat(std::initializer_list<std::string> parts) {
  std::string s;
  for (const auto& p : parts) s += p;
  return s;
}

std::vector<uint64_t> WalSegments(const std::string& dir) {
  std::vector<uint64_t> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    uint64_t seq;
    if (ParseWalSegmentName(e.path().filename().string(), &seq)) out.push_back(seq);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::set<std::string> SnapshotDirs(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    Lsn lsn;
    if (ParseSnapshotDirName(e.path().filename().string(), &lsn)) out.insert(e.path().filename().string());
  }
  return out;
}

std::string SegmentPath(const std::string& dir, uint64_t seq) {
  return io::JoinPath(dir, WalSegmentName(seq));
}

// Start offsets of the records of one segment (as the reader sees them).
std::vector<uint64_t> RecordOffsets(const std::string& path) {
  std::vector<uint64_t> out;
  auto r = WalSegmentReader::Open(io::FileSystem::Default(), path);
  if (!r.ok()) return out;
  WalRecord rec;
  for (;;) {
    uint64_t start = (*r)->good_offset();
    if ((*r)->Next(&rec) != WalSegmentReader::Outcome::kRecord) break;
    out.push_back(start);
  }
  return out;
}

// The g-th operation of the test workload: upserts (some with a string id), deletes, metadata
// merges and replaces, over 50 document ids in four (tenant, collection) pairs.
WalRecord Op(uint64_t g) {
  WalRecord r;
  r.tenant.assign(1, 't');
  r.tenant.push_back(g % 4 == 0 ? '2' : '1');
  r.collection.assign(1, g % 3 == 0 ? 'a' : 'b');
  r.doc_id = (g * 7919) % 50 + 1;
  if (g % 7 == 6) {
    r.type = RecordType::kDelete;
  } else if (g % 11 == 5) {
    r.type = RecordType::kUpdateMetadata;
    r.merge_metadata = true;
    r.metadata = {{"m", Num(g)}};
  } else if (g % 13 == 9) {
    r.type = RecordType::kUpdateMetadata;
    r.merge_metadata = false;
    r.metadata = {{"r", Num(g)}};
  } else {
    r.type = RecordType::kUpsert;
    if (g % 2 == 0) {
      r.external_id = "doc_";
      r.external_id += Num(r.doc_id);
    }
    for (int i = 0; i < 8; ++i) r.embedding.push_back(static_cast<float>(g) + 0.5f * i);
    r.metadata = {{"g", Num(g)}, {"parity", g % 2 ? "odd" : "even"}};
  }
  return r;
}

// State after ops [0, n).
Docs ModelAfter(uint64_t n) {
  Docs d;
  for (uint64_t g = 0; g < n; ++g) MapStateMachine::ApplyTo(Op(g), &d);
  return d;
}

StorageOptions Options(const std::string& dir, io::FileSystem* fs = io::FileSystem::Default(),
                       FsyncPolicy policy = FsyncPolicy::kNever,
                       uint64_t segment_bytes = 64ull << 20) {
  StorageOptions o;
  o.fs = fs;
  o.dir = dir;
  o.fsync_policy = policy;
  o.wal_segment_bytes = segment_bytes;
  return o;
}

// Policy data whose window never comes due: the test calls Sync() where it wants one.
StorageOptions HandSyncedDataOptions(const std::string& dir, io::FileSystem* fs) {
  StorageOptions o = Options(dir, fs, FsyncPolicy::kData);
  o.wal_flush_interval_ms = 1'000'000;
  return o;
}

std::unique_ptr<Storage> MustOpen(const StorageOptions& o, MapStateMachine* sm,
                                  RecoveryReport* report = nullptr) {
  auto st = Storage::Open(o, sm, report);
  EXPECT_TRUE(st.ok()) << st.status().ToString();
  if (!st.ok()) return nullptr;
  return std::move(st).value();
}

Result<Lsn> WriteOne(Storage* st, MapStateMachine* sm, const WalRecord& r) {
  return st->Write(r, [&] { return sm->Apply(r); });
}

// Writes ops [from, to); each must be acknowledged with LSN g + 1 + lsn_offset.
void WriteOps(Storage* st, MapStateMachine* sm, uint64_t from, uint64_t to,
              uint64_t lsn_offset = 0) {
  for (uint64_t g = from; g < to; ++g) {
    auto lsn = WriteOne(st, sm, Op(g));
    ASSERT_TRUE(lsn.ok()) << "op " << g << ": " << lsn.status().ToString();
    ASSERT_EQ(*lsn, g + 1 + lsn_offset);
  }
}

// Writes ops [0, n) into a fresh storage in `dir` and closes it.
void Populate(const StorageOptions& o, uint64_t n) {
  MapStateMachine sm;
  auto st = MustOpen(o, &sm);
  ASSERT_NE(st, nullptr);
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, n));
  ASSERT_TRUE(st->Close().ok());
}

// WalRecord's defaulted operator== is unusable (CollectionSpec has none), so compare here.
bool SameRecord(const WalRecord& a, const WalRecord& b) {
  auto spec = [](const CollectionSpec& s) {
    return std::tie(s.dimension, s.metric, s.m, s.ef_construction, s.ef_search);
  };
  return a.type == b.type && a.lsn == b.lsn && a.tenant == b.tenant &&
         a.collection == b.collection && a.doc_id == b.doc_id && a.external_id == b.external_id &&
         a.embedding == b.embedding && a.metadata == b.metadata &&
         a.merge_metadata == b.merge_metadata && spec(a.spec) == spec(b.spec);
}

void ExpectSameRecords(const std::vector<WalRecord>& got, const std::vector<WalRecord>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(SameRecord(got[i], want[i])) << "record " << i << " (lsn " << want[i].lsn << ")";
  }
}

// ---------------------------------------------------------------------------------------------
// 1. WAL record payloads

std::vector<WalRecord> SampleRecords() {
  std::vector<WalRecord> out;
  WalRecord up;
  up.type = RecordType::kUpsert;
  up.tenant = "acme";
  up.collection = "docs";
  up.doc_id = 0xfedcba9876543210ull;
  up.external_id = "doc_123";
  up.embedding = {1.0f, -2.5f, 3.25f, 0.0f, 1e-30f};
  up.metadata = {{"lang", "en"}, {"", "empty key"}, {"empty value", ""}};
  out.push_back(up);
  WalRecord up_bare;  // no metadata, no string id, no embedding, empty names
  up_bare.type = RecordType::kUpsert;
  up_bare.doc_id = 1;
  out.push_back(up_bare);
  WalRecord up_big = up;
  up_big.embedding.assign(1536, 0.125f);
  up_big.external_id.assign(300, 'x');  // multi-byte varint length
  out.push_back(up_big);
  WalRecord del;
  del.type = RecordType::kDelete;
  del.tenant = "acme";
  del.collection = "docs";
  del.doc_id = 42;
  out.push_back(del);
  WalRecord del_bare;
  del_bare.type = RecordType::kDelete;
  out.push_back(del_bare);
  for (bool merge : {true, false}) {
    WalRecord md;
    md.type = RecordType::kUpdateMetadata;
    md.tenant = "acme";
    md.collection = "docs";
    md.doc_id = 7;
    md.merge_metadata = merge;
    md.metadata = {{"a", "1"}, {"b", ""}};
    out.push_back(md);
    md.metadata.clear();
    out.push_back(md);
  }
  WalRecord create;
  create.type = RecordType::kCreateCollection;
  create.tenant = "acme";
  create.collection = "docs";
  create.spec = CollectionSpec{768, 2, 32, 400, 100};
  out.push_back(create);
  WalRecord create_bare;
  create_bare.type = RecordType::kCreateCollection;
  create_bare.spec = CollectionSpec{0, 0, 0, 0, 0};
  out.push_back(create_bare);
  WalRecord drop;
  drop.type = RecordType::kDropCollection;
  drop.tenant = "acme";
  drop.collection = "docs";
  out.push_back(drop);
  WalRecord drop_bare;
  drop_bare.type = RecordType::kDropCollection;
  out.push_back(drop_bare);
  return out;
}

TEST(WalRecordTest, PayloadRoundTripsForEveryRecordType) {
  std::set<RecordType> seen;
  for (const WalRecord& r : SampleRecords()) {
    seen.insert(r.type);
    EXPECT_TRUE(IsKnownRecordType(static_cast<uint8_t>(r.type)));
    WalRecord got;
    Status s = DecodePayload(r.type, EncodePayload(r), &got);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(SameRecord(got, r)) << "type " << static_cast<int>(r.type);
  }
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_FALSE(IsKnownRecordType(0));
  EXPECT_FALSE(IsKnownRecordType(6));
}

TEST(WalRecordTest, DecodeKeepsTheLsnOfTheOutputRecord) {
  WalRecord r = SampleRecords()[0];
  WalRecord got;
  got.lsn = 77;
  ASSERT_TRUE(DecodePayload(r.type, EncodePayload(r), &got).ok());
  EXPECT_EQ(got.lsn, 77u);
}

TEST(WalRecordTest, DecodeRefusesEveryTruncatedPayloadWithCorruption) {
  for (const WalRecord& r : SampleRecords()) {
    const std::string payload = EncodePayload(r);
    for (size_t n = 0; n < payload.size(); ++n) {
      WalRecord got;
      Status s = DecodePayload(r.type, std::string_view(payload.data(), n), &got);
      ASSERT_EQ(s.code(), StatusCode::kCorruption)
          << "type " << static_cast<int>(r.type) << " prefix " << n << " of " << payload.size();
    }
  }
}

TEST(WalRecordTest, DecodeRefusesTrailingBytesWithCorruption) {
  for (const WalRecord& r : SampleRecords()) {
    std::string payload = EncodePayload(r);
    payload.push_back('\0');
    WalRecord got;
    Status s = DecodePayload(r.type, payload, &got);
    EXPECT_EQ(s.code(), StatusCode::kCorruption) << "type " << static_cast<int>(r.type);
    EXPECT_NE(s.message().find("trailing"), std::string::npos) << s.ToString();
  }
}

TEST(WalRecordTest, DecodeRefusesUnknownRecordTypeWithCorruption) {
  WalRecord got;
  Status s = DecodePayload(static_cast<RecordType>(9), std::string(2, '\0'), &got);
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
}

// ---------------------------------------------------------------------------------------------
// 2. The WAL writer and reader

// Reads every segment in `dir` in order, checking that segments are numbered contiguously and
// LSNs continue across them. Returns the records.
std::vector<WalRecord> ReadWholeWal(const std::string& dir, std::vector<uint64_t>* per_segment) {
  std::vector<WalRecord> out;
  std::vector<uint64_t> segs = WalSegments(dir);
  Lsn expected = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    auto r = WalSegmentReader::Open(io::FileSystem::Default(), SegmentPath(dir, segs[i]));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return out;
    EXPECT_EQ((*r)->segment_seq(), segs[i]);
    if (i > 0) {
      EXPECT_EQ(segs[i], segs[i - 1] + 1) << "segments are contiguous";
      EXPECT_EQ((*r)->first_lsn(), expected) << "segment " << segs[i];
    }
    expected = (*r)->first_lsn();
    uint64_t n = 0;
    WalRecord rec;
    WalSegmentReader::Outcome o;
    while ((o = (*r)->Next(&rec)) == WalSegmentReader::Outcome::kRecord) {
      EXPECT_EQ(rec.lsn, expected);
      ++expected;
      ++n;
      out.push_back(rec);
    }
    EXPECT_EQ(o, WalSegmentReader::Outcome::kEnd) << (*r)->reason();
    if (per_segment != nullptr) per_segment->push_back(n);
  }
  return out;
}

std::unique_ptr<Wal> MustCreateWal(const WalOptions& o) {
  auto w = Wal::Create(o, 1, 1);
  EXPECT_TRUE(w.ok()) << w.status().ToString();
  if (!w.ok()) return nullptr;
  return std::move(w).value();
}

TEST(WalTest, AppendedRecordsReadBackIdenticalWithConsecutiveLsns) {
  TempDir d;
  WalOptions o;
  o.dir = d.path();
  o.policy = FsyncPolicy::kData;
  auto wal = MustCreateWal(o);
  ASSERT_NE(wal, nullptr);
  std::vector<WalRecord> written;
  for (int round = 0; round < 3; ++round) {
    for (WalRecord r : SampleRecords()) {
      auto lsn = wal->Append(r);
      ASSERT_TRUE(lsn.ok()) << lsn.status().ToString();
      EXPECT_EQ(*lsn, written.size() + 1);
      r.lsn = *lsn;
      written.push_back(r);
    }
  }
  EXPECT_EQ(wal->last_lsn(), written.size());
  ASSERT_TRUE(wal->Close().ok());
  EXPECT_FALSE(wal->writable());
  EXPECT_EQ(wal->Append(SampleRecords()[0]).status().code(), StatusCode::kFailedPrecondition);

  std::vector<uint64_t> per_segment;
  std::vector<WalRecord> got = ReadWholeWal(d.path(), &per_segment);
  EXPECT_EQ(per_segment.size(), 1u);
  ExpectSameRecords(got, written);
}

TEST(WalTest, AppendBatchWritesInOrderWithOneFsyncAndInterleavesWithSingleAppends) {
  TempDir d;
  WalOptions o;
  o.dir = d.path();
  o.policy = FsyncPolicy::kAlways;
  auto wal = MustCreateWal(o);
  ASSERT_NE(wal, nullptr);
  std::vector<WalRecord> batch;
  for (uint64_t g = 0; g < 300; ++g) batch.push_back(Op(g));
  std::vector<const WalRecord*> ptrs;
  for (const auto& r : batch) ptrs.push_back(&r);
  // Single appends race with the batch; the batch's records stay contiguous and in order.
  std::thread other([&] {
    for (uint64_t g = 1000; g < 1100; ++g) ASSERT_TRUE(wal->Append(Op(g)).ok());
  });
  std::vector<Lsn> lsns;
  ASSERT_OK(wal->AppendBatch(ptrs, &lsns));
  other.join();
  ASSERT_EQ(lsns.size(), batch.size());
  for (size_t i = 1; i < lsns.size(); ++i) ASSERT_EQ(lsns[i], lsns[i - 1] + 1);
  const WalStats st = wal->Stats();
  EXPECT_EQ(st.records, 400u);
  uint64_t bytes = 0;  // what the WAL's metrics count: record headers and payloads
  for (const auto& [from, to] : {std::pair<uint64_t, uint64_t>{0, 300}, {1000, 1100}}) {
    for (uint64_t g = from; g < to; ++g) {
      bytes += wal_format::kRecordHeaderBytes + EncodePayload(Op(g)).size();
    }
  }
  EXPECT_EQ(st.bytes, bytes);
  EXPECT_LE(st.syncs, 1u + 100u) << "the batch takes one fsync, not 300";
  ASSERT_TRUE(wal->Close().ok());
  std::vector<WalRecord> got = ReadWholeWal(d.path(), nullptr);
  ASSERT_EQ(got.size(), 400u);
  for (size_t i = 0; i < batch.size(); ++i) {
    const WalRecord& r = got[lsns[i] - 1];
    EXPECT_EQ(r.doc_id, batch[i].doc_id);
    EXPECT_EQ(r.embedding, batch[i].embedding);
  }
}

TEST(WalTest, AppendBatchFailureLogsNothingOfTheFailedGroup) {
  TempDir d;
  io::FaultInjectionFileSystem fault(io::FileSystem::Default());
  WalOptions o;
  o.dir = d.path();
  o.fs = &fault;
  o.policy = FsyncPolicy::kAlways;
  auto wal = MustCreateWal(o);
  ASSERT_NE(wal, nullptr);
  ASSERT_TRUE(wal->Append(Op(0)).ok());
  std::vector<WalRecord> batch;
  for (uint64_t g = 1; g <= 50; ++g) batch.push_back(Op(g));
  std::vector<const WalRecord*> ptrs;
  for (const auto& r : batch) ptrs.push_back(&r);
  fault.SetFailAllSyncs(true);
  std::vector<Lsn> lsns;
  Status s = wal->AppendBatch(ptrs, &lsns);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
  EXPECT_TRUE(lsns.empty());
  EXPECT_FALSE(wal->writable());
  fault.SetFailAllSyncs(false);
  wal.reset();
  std::vector<WalRecord> got = ReadWholeWal(d.path(), nullptr);
  ASSERT_EQ(got.size(), 1u) << "the failed batch was cut off the segment";
  EXPECT_EQ(got[0].doc_id, Op(0).doc_id);
}

TEST(WalTest, RotatesAtSegmentBytesIntoContiguousSegments) {
  TempDir d;
  WalOptions o;
  o.dir = d.path();
  o.policy = FsyncPolicy::kNever;
  o.segment_bytes = 1024;
  auto wal = MustCreateWal(o);
  ASSERT_NE(wal, nullptr);
  std::vector<WalRecord> written;
  for (uint64_t g = 0; g < 200; ++g) {
    WalRecord r = Op(g);
    auto lsn = wal->Append(r);
    ASSERT_TRUE(lsn.ok()) << lsn.status().ToString();
    r.lsn = *lsn;
    written.push_back(r);
  }
  const uint64_t created = wal->Stats().segments_created;
  ASSERT_TRUE(wal->Close().ok());

  std::vector<uint64_t> per_segment;
  ExpectSameRecords(ReadWholeWal(d.path(), &per_segment), written);
  std::vector<uint64_t> segs = WalSegments(d.path());
  EXPECT_GE(segs.size(), 10u);
  EXPECT_EQ(segs.size(), created);
  EXPECT_EQ(segs.front(), 1u);
  // Every full segment crossed segment_bytes with its last record, not before.
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    const std::string path = SegmentPath(d.path(), segs[i]);
    EXPECT_GE(fs::file_size(path), o.segment_bytes) << path;
    std::vector<uint64_t> offsets = RecordOffsets(path);
    ASSERT_FALSE(offsets.empty());
    EXPECT_LT(offsets.back(), o.segment_bytes) << path;
  }
}

TEST(WalTest, GroupCommitGivesConcurrentAppendersDistinctConsecutiveLsns) {
  TempDir d;
  WalOptions o;
  o.dir = d.path();
  o.policy = FsyncPolicy::kAlways;
  auto wal = MustCreateWal(o);
  ASSERT_NE(wal, nullptr);
  constexpr int kThreads = 16, kPerThread = 200;
  std::vector<std::vector<Lsn>> lsns(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        WalRecord r;
        r.type = RecordType::kUpsert;
        r.tenant.assign(1, 't');
        r.collection.assign(1, 'c');
        r.doc_id = static_cast<uint64_t>(t) * 1000 + static_cast<uint64_t>(i);
        r.embedding = {static_cast<float>(t), static_cast<float>(i)};
        auto lsn = wal->Append(r);
        EXPECT_TRUE(lsn.ok()) << lsn.status().ToString();
        if (lsn.ok()) lsns[t].push_back(*lsn);
      }
    });
  }
  for (auto& th : threads) th.join();

  std::vector<Lsn> all;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(std::is_sorted(lsns[t].begin(), lsns[t].end())) << "thread " << t;
    all.insert(all.end(), lsns[t].begin(), lsns[t].end());
  }
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1) << "LSNs are 1..3200";

  const WalStats stats = wal->Stats();
  EXPECT_EQ(stats.records, 3200u);
  EXPECT_GE(stats.batches, 1u);
  EXPECT_LE(stats.batches, stats.records);
  EXPECT_LE(stats.syncs, stats.batches) << "kAlways: at most one fsync per batch";
  ::testing::Test::RecordProperty("batches", static_cast<int>(stats.batches));
  ::testing::Test::RecordProperty("syncs", static_cast<int>(stats.syncs));
  ASSERT_TRUE(wal->Close().ok());

  // Each LSN holds what the thread that got it wrote.
  std::vector<WalRecord> got = ReadWholeWal(d.path(), nullptr);
  ASSERT_EQ(got.size(), 3200u);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const WalRecord& r = got[lsns[t][i] - 1];
      EXPECT_EQ(r.doc_id, static_cast<uint64_t>(t) * 1000 + static_cast<uint64_t>(i));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Recovery and checkpoints

TEST(StorageTest, FreshDirectoryOpensEmpty) {
  TempDir d;
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(Options(d.path()), &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_TRUE(sm.docs().empty());
  EXPECT_TRUE(report.snapshot.empty());
  EXPECT_EQ(report.records_replayed, 0u);
  EXPECT_EQ(report.last_lsn, 0u);
  EXPECT_TRUE(fs::exists(io::JoinPath(d.path(), Manifest::kFileName)));
}

TEST(StorageTest, RecoveryLoadsSnapshotThenReplaysTheWalAfterIt) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kData);
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 50));
    auto cp = st->Checkpoint();
    ASSERT_TRUE(cp.ok()) << cp.status().ToString();
    EXPECT_EQ(*cp, 50u);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 50, 80));
    EXPECT_EQ(sm.docs(), ModelAfter(80));
  }
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), ModelAfter(80));
  EXPECT_EQ(report.snapshot, SnapshotDirName(50));
  EXPECT_EQ(report.snapshot_lsn, 50u);
  EXPECT_FALSE(report.fell_back);
  EXPECT_EQ(report.records_replayed, 30u);
  EXPECT_EQ(report.last_lsn, 80u);
  EXPECT_FALSE(report.torn_tail_discarded);
  EXPECT_EQ(report.bytes_dropped, 0u);
  EXPECT_FALSE(report.ToString().empty());
  // New writes continue the LSN sequence.
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 80, 85));
}

TEST(StorageTest, CheckpointsTrimWalAndSnapshotsOlderThanThePreviousGeneration) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kNever, 2048);
  MapStateMachine sm;
  auto st = MustOpen(o, &sm);
  ASSERT_NE(st, nullptr);
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 40));
  ASSERT_TRUE(st->Checkpoint().ok());
  const Manifest m1 = st->manifest();
  EXPECT_EQ(m1.current.name, SnapshotDirName(40));
  EXPECT_EQ(m1.current.lsn, 40u);
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 40, 80));
  ASSERT_TRUE(st->Checkpoint().ok());
  const Manifest m2 = st->manifest();
  EXPECT_EQ(m2.previous, m1.current);
  EXPECT_EQ(m2.current.name, SnapshotDirName(80));
  EXPECT_GT(m2.current.wal_first_segment, m1.current.wal_first_segment);

  std::vector<uint64_t> segs = WalSegments(d.path());
  ASSERT_FALSE(segs.empty());
  EXPECT_EQ(segs.front(), m1.current.wal_first_segment)
      << "segments before the previous generation's first segment are trimmed";
  EXPECT_EQ(SnapshotDirs(d.path()), (std::set<std::string>{m1.current.name, m2.current.name}));

  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 80, 120));
  ASSERT_TRUE(st->Checkpoint().ok());
  const Manifest m3 = st->manifest();
  segs = WalSegments(d.path());
  EXPECT_EQ(segs.front(), m2.current.wal_first_segment);
  EXPECT_EQ(SnapshotDirs(d.path()), (std::set<std::string>{m2.current.name, m3.current.name}));
  for (const auto& e : fs::directory_iterator(d.path())) {
    EXPECT_NE(e.path().extension(), ".tmp") << "no leftover temporary " << e.path();
  }
  st.reset();

  MapStateMachine sm2;
  RecoveryReport report;
  auto st2 = MustOpen(o, &sm2, &report);
  ASSERT_NE(st2, nullptr);
  EXPECT_EQ(sm2.docs(), ModelAfter(120));
  EXPECT_EQ(report.snapshot_lsn, 120u);
  EXPECT_EQ(report.records_replayed, 0u);
}

TEST(StorageTest, ReopeningRepeatedlyIsStable) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kData, 2048);
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 40));
    ASSERT_TRUE(st->Checkpoint().ok());
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 40, 50));
  }
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    MapStateMachine sm;
    RecoveryReport report;
    auto st = MustOpen(o, &sm, &report);
    ASSERT_NE(st, nullptr);
    EXPECT_EQ(sm.docs(), ModelAfter(50));
    EXPECT_EQ(report.snapshot, SnapshotDirName(40));
    EXPECT_EQ(report.records_replayed, 10u);
    EXPECT_EQ(report.last_lsn, 50u);
    EXPECT_FALSE(report.fell_back);
    EXPECT_FALSE(report.torn_tail_discarded);
    EXPECT_EQ(report.bytes_dropped, 0u);
  }
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 50, 60));
  }
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), ModelAfter(60));
  EXPECT_EQ(report.last_lsn, 60u);
}

TEST(StorageTest, ConcurrentWritersAndCheckpointsRecoverToTheAcknowledgedState) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kAlways, 4096);
  constexpr int kThreads = 4, kPerThread = 100;
  auto record = [](int t, int i) {
    WalRecord r;
    r.type = RecordType::kUpsert;
    r.tenant.assign(1, 't');
    r.collection.assign(1, 'c');
    r.doc_id = static_cast<uint64_t>(t) * 1000 + static_cast<uint64_t>(i % 30);
    r.embedding = {static_cast<float>(t), static_cast<float>(i)};
    return r;
  };
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          auto lsn = WriteOne(st.get(), &sm, record(t, i));
          EXPECT_TRUE(lsn.ok()) << lsn.status().ToString();
        }
      });
    }
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto cp = st->Checkpoint();
        EXPECT_TRUE(cp.ok()) << cp.status().ToString();
      }
    });
    for (auto& th : threads) th.join();
  }
  Docs model;  // each thread writes its own keys, so per-thread order decides the state
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) MapStateMachine::ApplyTo(record(t, i), &model);
  }
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), model);
  EXPECT_EQ(report.last_lsn, static_cast<Lsn>(kThreads * kPerThread));
}

// ---------------------------------------------------------------------------------------------
// 4. Faults: power loss, fsync failure, ENOSPC, short writes

TEST(StorageFaultTest, AcknowledgedWritesSurvivePowerLossWithFsyncAlways) {
  TempDir d;
  io::FaultInjectionFileSystem fault(io::FileSystem::Default());
  const StorageOptions o = Options(d.path(), &fault, FsyncPolicy::kAlways, 2048);
  uint64_t done = 0;
  for (int cycle = 0; cycle < 3; ++cycle) {
    SCOPED_TRACE(cycle);
    MapStateMachine sm;
    RecoveryReport report;
    auto st = MustOpen(o, &sm, &report);
    ASSERT_NE(st, nullptr);
    ASSERT_EQ(sm.docs(), ModelAfter(done)) << report.ToString();
    ASSERT_EQ(report.last_lsn, done);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, done, done + 25));
    if (cycle == 1) {
      ASSERT_TRUE(st->Checkpoint().ok());
    }
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, done + 25, done + 50));
    done += 50;
    ASSERT_TRUE(fault.SimulatePowerLoss().ok());
    st.reset();  // its files are dead; closing them fails quietly
  }
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), ModelAfter(done));
  EXPECT_EQ(report.last_lsn, done);
}

TEST(StorageFaultTest, PowerLossWithFsyncNeverLeavesAPrefixOfTheWrites) {
  TempDir d;
  io::FaultInjectionFileSystem fault(io::FileSystem::Default());
  const StorageOptions o = Options(d.path(), &fault, FsyncPolicy::kNever, 2048);
  constexpr uint64_t kOps = 150;
  Lsn durable = 0;  // rotation fsyncs the segment it closes
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    uint64_t segment = st->wal().current_segment();
    for (uint64_t g = 0; g < kOps; ++g) {
      auto lsn = WriteOne(st.get(), &sm, Op(g));
      ASSERT_TRUE(lsn.ok()) << lsn.status().ToString();
      if (st->wal().current_segment() != segment) {
        segment = st->wal().current_segment();
        durable = *lsn;
      }
    }
    ASSERT_GT(durable, 0u) << "the workload should rotate at least once";
    ASSERT_TRUE(fault.SimulatePowerLoss().ok());
  }
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_GE(report.last_lsn, durable) << "fsynced (rotated) segments survive";
  EXPECT_LE(report.last_lsn, kOps);
  EXPECT_EQ(sm.docs(), ModelAfter(report.last_lsn))
      << "the recovered state is the state after a prefix of the writes; " << report.ToString();
  // Writing continues right after the surviving prefix.
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, report.last_lsn, report.last_lsn + 5));
}

// Writeback of one large unsynced group commit can leave holes anywhere in it (pages written,
// pages not). That is a torn tail, not corruption: strict recovery opens, keeps every synced
// record, and recovers a prefix of the writes.
TEST(StorageFaultTest, PowerLossWithHolesInAnUnsyncedBatchIsATornTailInStrictMode) {
  constexpr uint64_t kSynced = 10, kBatch = 3000;
  int torn_seen = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    TempDir d;
    io::FaultInjectionFileSystem fault(io::FileSystem::Default());
    const StorageOptions o = HandSyncedDataOptions(d.path(), &fault);
    {
      MapStateMachine sm;
      auto st = MustOpen(o, &sm);
      ASSERT_NE(st, nullptr);
      ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, kSynced));
      ASSERT_OK(st->Sync());
      std::vector<WalRecord> rs;
      for (uint64_t g = kSynced; g < kSynced + kBatch; ++g) rs.push_back(Op(g));
      std::vector<const WalRecord*> ptrs;
      for (const auto& r : rs) ptrs.push_back(&r);
      size_t logged = 0;
      ASSERT_OK(st->WriteBatch(ptrs, [&](size_t i) { sm.Apply(rs[i]).IgnoreError(); }, &logged));
      ASSERT_EQ(logged, kBatch);
      io::PowerLossOptions loss;
      loss.torn_writeback = true;
      loss.seed = seed;
      ASSERT_OK(fault.SimulatePowerLoss(loss));
    }
    MapStateMachine sm;
    RecoveryReport report;
    auto st = MustOpen(Options(d.path()), &sm, &report);
    ASSERT_NE(st, nullptr) << "strict recovery called a torn unsynced batch corruption";
    EXPECT_GE(report.last_lsn, kSynced) << "synced records survive";
    EXPECT_LE(report.last_lsn, kSynced + kBatch);
    EXPECT_EQ(sm.docs(), ModelAfter(report.last_lsn)) << report.ToString();
    torn_seen += report.torn_tail_discarded ? 1 : 0;
  }
  EXPECT_GT(torn_seen, 0) << "no seed left a hole: the test tests nothing";
}

// Storage creates its data directory; the new entry is durable only once the parent is
// synced, or a power loss takes the directory and every acknowledged write in it.
TEST(StorageFaultTest, NewDataDirectoryAndItsWritesSurvivePowerLoss) {
  TempDir d;
  io::FaultInjectionFileSystem fault(io::FileSystem::Default());
  const std::string dir = d.path() + "/data";
  {
    MapStateMachine sm;
    auto st = MustOpen(Options(dir, &fault, FsyncPolicy::kAlways), &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 5));
    ASSERT_OK(fault.SimulatePowerLoss());
  }
  MapStateMachine sm;
  auto st = MustOpen(Options(dir), &sm);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), ModelAfter(5));
}

// A failure mode: how to provoke it, how to stop it, and whether ResumeWrites must keep
// failing until it is stopped.
struct Fault {
  const char* name;
  std::function<void(io::FaultInjectionFileSystem*)> inject;
  std::function<void(io::FaultInjectionFileSystem*)> clear;
  bool resume_fails_until_cleared;
};

WalRecord FailedWrite() {
  WalRecord r;
  r.type = RecordType::kUpsert;
  r.tenant = "t1";
  r.collection = "failed";
  r.doc_id = 999;
  r.embedding = {9, 9, 9};
  return r;
}

// The common shape: acknowledged writes, a fault, the write under it fails with kUnavailable,
// later writes are refused while reads keep working, ResumeWrites brings writes back, and
// after reopening exactly the acknowledged writes are there.
void CheckWriteFailureShape(const Fault& f) {
  SCOPED_TRACE(f.name);
  TempDir d;
  io::FaultInjectionFileSystem fault(io::FileSystem::Default());
  const StorageOptions o = Options(d.path(), &fault, FsyncPolicy::kAlways);
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 20));
    f.inject(&fault);
    auto failed = WriteOne(st.get(), &sm, FailedWrite());
    ASSERT_FALSE(failed.ok());
    EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable) << failed.status().ToString();
    EXPECT_FALSE(st->writable());
    EXPECT_EQ(sm.docs(), ModelAfter(20)) << "the failed write was not applied";

    auto refused = WriteOne(st.get(), &sm, Op(20));
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(refused.status().message().find("refuses writes"), std::string::npos)
        << refused.status().ToString();
    EXPECT_FALSE(st->wal().Stats().writable);
    EXPECT_EQ(sm.docs(), ModelAfter(20)) << "reads keep working";
    EXPECT_FALSE(st->Checkpoint().ok()) << "no checkpoint while the WAL is failed";

    if (f.resume_fails_until_cleared) {
      EXPECT_FALSE(st->ResumeWrites().ok());
      EXPECT_FALSE(st->writable());
      EXPECT_FALSE(WriteOne(st.get(), &sm, Op(20)).ok());
    }
    f.clear(&fault);
    Status r = st->ResumeWrites();
    ASSERT_TRUE(r.ok()) << r.ToString();
    EXPECT_TRUE(st->writable());
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 20, 30));
    EXPECT_EQ(sm.docs(), ModelAfter(30));
  }
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), ModelAfter(30)) << "acknowledged writes present, the failed one absent; "
                                       << report.ToString();
  EXPECT_EQ(report.last_lsn, 30u);
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 30, 35));
}

void Nothing(io::FaultInjectionFileSystem*) {}

TEST(StorageFaultTest, FailedFsyncFailsTheWriteAndRefusesWritesUntilResumed) {
  CheckWriteFailureShape(
      {"fsync fails once",
       [](io::FaultInjectionFileSystem* f) {
         f->FailNthSync(1, Status::IoError("fdatasync: injected EIO"));
       },
       Nothing, false});
}

TEST(StorageFaultTest, PersistentFsyncFailureKeepsResumeFailingUntilFsyncWorks) {
  CheckWriteFailureShape({"fsync keeps failing",
                          [](io::FaultInjectionFileSystem* f) { f->SetFailAllSyncs(true); },
                          [](io::FaultInjectionFileSystem* f) { f->SetFailAllSyncs(false); },
                          true});
}

TEST(StorageFaultTest, NoSpaceFailsWritesAndResumeWorksOnlyOnceSpaceIsBack) {
  CheckWriteFailureShape({"ENOSPC", [](io::FaultInjectionFileSystem* f) { f->SetNoSpace(true); },
                          [](io::FaultInjectionFileSystem* f) { f->SetNoSpace(false); }, true});
}

TEST(StorageFaultTest, ShortWriteFailsTheWriteAndResumeDiscardsItsBytes) {
  CheckWriteFailureShape(
      {"short write", [](io::FaultInjectionFileSystem* f) { f->ShortWriteNextAppend(); },
       Nothing, false});
}

TEST(StorageFaultTest, BackgroundProbeResumesWritesOnceTheDiskWorksAgain) {
  TempDir d;
  io::FaultInjectionFileSystem fault(io::FileSystem::Default());
  StorageOptions o = Options(d.path(), &fault, FsyncPolicy::kAlways);
  o.write_probe_interval_ms = 0;  // every Tick probes
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 10));
    fault.SetNoSpace(true);
    ASSERT_FALSE(WriteOne(st.get(), &sm, FailedWrite()).ok());
    st->Tick();
    EXPECT_FALSE(st->writable()) << "the probe fails while the disk is full";
    fault.SetNoSpace(false);
    st->Tick();
    EXPECT_TRUE(st->writable()) << "the probe re-enabled writes";
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 10, 15));
  }
  MapStateMachine sm;
  auto st = MustOpen(o, &sm);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), ModelAfter(15));
}

// The process may stop (or restart) without ever calling ResumeWrites: a write that was
// reported failed must still not show up at recovery.
void CheckFailedWriteAbsentWithoutResume(const Fault& f) {
  SCOPED_TRACE(f.name);
  TempDir d;
  io::FaultInjectionFileSystem fault(io::FileSystem::Default());
  const StorageOptions o = Options(d.path(), &fault, FsyncPolicy::kAlways);
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 20));
    f.inject(&fault);
    auto failed = WriteOne(st.get(), &sm, FailedWrite());
    ASSERT_FALSE(failed.ok());
    f.clear(&fault);
  }  // closed without ResumeWrites
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), ModelAfter(20))
      << "a write reported failed must not reappear at recovery; " << report.ToString();
  EXPECT_EQ(report.last_lsn, 20u);
}

// After fdatasync reports EIO the kernel may have dropped the unsynced pages, and a later
// fsync reports success. The records acknowledged before the failure (policy data) must come
// back from memory, not from the lost pages, and strict recovery must open the log.
TEST(StorageFaultTest, FailedFsyncThatLostPagesNeverReportsThemDurable) {
  TempDir d;
  io::FaultInjectionFileSystem fi(io::FileSystem::Default());
  const StorageOptions o = HandSyncedDataOptions(d.path(), &fi);
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 10));
    ASSERT_OK(st->Sync());
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 10, 20));  // acknowledged, unsynced
    fi.SetFailedSyncDropsUnsynced(true);
    fi.FailNthSync(1, Status::IoError("injected fdatasync EIO"));
    EXPECT_FALSE(st->Sync().ok());
    EXPECT_FALSE(st->writable());
    ASSERT_OK(st->ResumeWrites());
    EXPECT_TRUE(st->writable());
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 20, 25));
    ASSERT_OK(st->Sync());
    ASSERT_OK(fi.SimulatePowerLoss());  // everything acknowledged was synced by now
  }
  MapStateMachine recovered;
  RecoveryReport report;
  auto st = MustOpen(Options(d.path()), &recovered, &report);
  ASSERT_NE(st, nullptr) << "strict recovery refused the log";
  EXPECT_EQ(recovered.docs(), ModelAfter(25)) << report.ToString();
  EXPECT_EQ(report.last_lsn, 25u);
}

TEST(StorageFaultTest, FailedFsyncWriteIsAbsentAfterReopenWithoutResume) {
  CheckFailedWriteAbsentWithoutResume(
      {"fsync fails once",
       [](io::FaultInjectionFileSystem* f) {
         f->FailNthSync(1, Status::IoError("fdatasync: injected EIO"));
       },
       Nothing, false});
}

TEST(StorageFaultTest, NoSpaceWriteIsAbsentAfterReopenWithoutResume) {
  CheckFailedWriteAbsentWithoutResume(
      {"ENOSPC", [](io::FaultInjectionFileSystem* f) { f->SetNoSpace(true); },
       [](io::FaultInjectionFileSystem* f) { f->SetNoSpace(false); }, false});
}

TEST(StorageFaultTest, ShortWriteIsAbsentAfterReopenWithoutResume) {
  CheckFailedWriteAbsentWithoutResume(
      {"short write", [](io::FaultInjectionFileSystem* f) { f->ShortWriteNextAppend(); },
       Nothing, false});
}

// ---------------------------------------------------------------------------------------------
// 5. Torn tails

// Records the order records are applied in (their doc_id, unique per write); snapshots are
// not used by the test that needs it.
class OrderStateMachine final : public StateMachine {
 public:
  Status Apply(const WalRecord& r) override {
    std::lock_guard<std::mutex> l(mu_);
    order_.push_back(r.doc_id);
    return Status::Ok();
  }
  Status SaveSnapshot(SnapshotWriter*) override { return Status::Internal("not used"); }
  Status LoadSnapshot(const SnapshotReader&) override { return Status::Internal("not used"); }
  void Clear() override { order_.clear(); }
  std::vector<uint64_t> order() {
    std::lock_guard<std::mutex> l(mu_);
    return order_;
  }

 private:
  std::mutex mu_;
  std::vector<uint64_t> order_;
};

TEST(StorageTest, ConcurrentWritersApplyInTheOrderRecoveryReplays) {
  // A write's apply runs after its WAL append returns, on the writer's thread; writers woken by
  // one group commit must still apply in LSN order, or the state served would differ from the
  // state a restart rebuilds (the last of two concurrent writes of a document decides).
  TempDir d;
  constexpr uint64_t kThreads = 8, kWrites = 400;
  std::vector<uint64_t> live;
  {
    OrderStateMachine sm;
    auto st = Storage::Open(Options(d.path()), &sm, nullptr);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    std::vector<std::thread> writers;
    std::atomic<bool> failed{false};
    for (uint64_t t = 0; t < kThreads; ++t) {
      writers.emplace_back([&, t] {
        for (uint64_t i = 0; i < kWrites; ++i) {
          WalRecord r;
          r.type = RecordType::kUpsert;
          r.tenant.assign(1, 't');  // not = "t": GCC 12's -Wrestrict false positive
          r.collection.assign(1, 'c');
          r.doc_id = t * kWrites + i + 1;
          r.embedding = {static_cast<float>(i)};
          if (i % 3 == 0) {  // batches too, of 3 records
            std::vector<WalRecord> rs = {r, r, r};
            rs[1].doc_id += kThreads * kWrites;
            rs[2].doc_id += 2 * kThreads * kWrites;
            std::vector<const WalRecord*> ptrs = {&rs[0], &rs[1], &rs[2]};
            size_t logged = 0;
            if (!(*st)->WriteBatch(ptrs, [&](size_t j) { sm.Apply(rs[j]).IgnoreError(); }, &logged).ok()) {
              failed.store(true);
            }
          } else if (!(*st)->Write(r, [&] { return sm.Apply(r); }).ok()) {
            failed.store(true);
          }
        }
      });
    }
    for (auto& w : writers) w.join();
    ASSERT_FALSE(failed.load());
    live = sm.order();
    ASSERT_TRUE((*st)->Close().ok());
  }
  OrderStateMachine replayed;
  auto st = Storage::Open(Options(d.path()), &replayed, nullptr);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  const std::vector<uint64_t> recovered = replayed.order();
  ASSERT_EQ(recovered.size(), live.size());
  size_t first_difference = live.size();
  for (size_t i = 0; i < live.size() && first_difference == live.size(); ++i) {
    if (live[i] != recovered[i]) first_difference = i;
  }
  EXPECT_EQ(first_difference, live.size()) << "applied out of log order at position " << first_difference;
}

TEST(StorageRecoveryTest, TornFinalRecordIsDiscardedInStrictMode) {
  TempDir d;
  const StorageOptions o = Options(d.path());
  ASSERT_NO_FATAL_FAILURE(Populate(o, 30));
  std::vector<uint64_t> segs = WalSegments(d.path());
  ASSERT_EQ(segs.size(), 1u);
  const std::string path = SegmentPath(d.path(), segs.back());
  // The clean close ended the segment with a sync marker (a header, no payload) after the
  // last record: cut into that record, as a crash in the middle of its append would.
  const uint64_t last_end = fs::file_size(path) - wal_format::kRecordHeaderBytes;
  ASSERT_GT(last_end - RecordOffsets(path).back(), 3u + wal_format::kRecordHeaderBytes);
  fs::resize_file(path, last_end - 3);  // mid-record

  {
    MapStateMachine sm;
    RecoveryReport report;
    auto st = MustOpen(o, &sm, &report);
    ASSERT_NE(st, nullptr);
    EXPECT_TRUE(report.torn_tail_discarded);
    EXPECT_GT(report.bytes_dropped, 0u);
    EXPECT_EQ(report.last_lsn, 29u);
    EXPECT_EQ(sm.docs(), ModelAfter(29)) << "all but the torn record";
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 29, 31));
  }
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_FALSE(report.torn_tail_discarded) << "the torn bytes were cut away for good";
  EXPECT_EQ(sm.docs(), ModelAfter(31));
}

TEST(StorageRecoveryTest, GarbagePartialHeaderAtTheEndIsDiscardedInStrictMode) {
  TempDir d;
  const StorageOptions o = Options(d.path());
  ASSERT_NO_FATAL_FAILURE(Populate(o, 30));
  const std::string path = SegmentPath(d.path(), WalSegments(d.path()).back());
  std::string data = ReadFile(path);
  data += std::string("\x13\x37\xbe\xef\x01\x02\x03", 7);
  WriteFile(path, data);
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_TRUE(report.torn_tail_discarded);
  EXPECT_EQ(report.bytes_dropped, 7u);
  EXPECT_EQ(sm.docs(), ModelAfter(30)) << "no record lost";
  EXPECT_EQ(report.last_lsn, 30u);
}

// ---------------------------------------------------------------------------------------------
// 6. Corruption

TEST(StorageRecoveryTest, BitFlipInNonFinalWalRecordFailsStrictOpenNamingFileAndOffset) {
  TempDir d;
  const StorageOptions o = Options(d.path());
  ASSERT_NO_FATAL_FAILURE(Populate(o, 40));
  const std::string path = SegmentPath(d.path(), WalSegments(d.path()).back());
  const uint64_t offset = RecordOffsets(path).at(10);  // the record with LSN 11
  ASSERT_NO_FATAL_FAILURE(FlipByte(path, offset + wal_format::kRecordHeaderBytes + 3));
  const std::string before = ReadFile(path);

  MapStateMachine sm;
  auto st = Storage::Open(o, &sm, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kCorruption);
  const std::string msg = st.status().message();
  EXPECT_NE(msg.find(WalSegmentName(WalSegments(d.path()).back())), std::string::npos) << msg;
  EXPECT_NE(msg.find(Cat({"offset ", Num(offset)})), std::string::npos) << msg;
  EXPECT_EQ(ReadFile(path), before) << "strict open leaves the evidence alone";
}

// A damaged length field that points past the end of the last segment must not pass for a torn
// final record (which strict mode would silently drop along with everything after it).
TEST(StorageRecoveryTest, DamagedLengthFieldInLastSegmentIsCorruptionNotATornTail) {
  TempDir d;
  const StorageOptions o = Options(d.path());
  ASSERT_NO_FATAL_FAILURE(Populate(o, 40));
  const std::string path = SegmentPath(d.path(), WalSegments(d.path()).back());
  const uint64_t offset = RecordOffsets(path).at(10);
  ASSERT_NO_FATAL_FAILURE(FlipByte(path, offset + 1));  // length now points past the end
  MapStateMachine sm;
  auto st = Storage::Open(o, &sm, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kCorruption) << st.status().ToString();
}

TEST(StorageRecoveryTest, BestEffortOpenKeepsTheRecordsBeforeABitFlip) {
  TempDir d;
  StorageOptions o = Options(d.path());
  ASSERT_NO_FATAL_FAILURE(Populate(o, 40));
  const std::string path = SegmentPath(d.path(), WalSegments(d.path()).back());
  ASSERT_NO_FATAL_FAILURE(
      FlipByte(path, RecordOffsets(path).at(10) + wal_format::kRecordHeaderBytes + 3));
  o.recovery_mode = RecoveryMode::kBestEffort;
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(sm.docs(), ModelAfter(10));
  EXPECT_EQ(report.last_lsn, 10u);
  EXPECT_GT(report.bytes_dropped, 0u);
  EXPECT_FALSE(report.dropped.empty());
  EXPECT_FALSE(report.torn_tail_discarded);
}

// Best effort dropped whole segments after the corrupt one; what it leaves behind (and what is
// written after it) must open again, in strict mode too.
TEST(StorageRecoveryTest, BestEffortRecoveryLeavesALogThatReopensInStrictMode) {
  TempDir d;
  StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kNever, 1024);
  ASSERT_NO_FATAL_FAILURE(Populate(o, 60));
  std::vector<uint64_t> segs = WalSegments(d.path());
  ASSERT_GE(segs.size(), 3u);
  const std::string first = SegmentPath(d.path(), segs.front());
  std::vector<uint64_t> offsets = RecordOffsets(first);
  ASSERT_GE(offsets.size(), 4u);
  ASSERT_NO_FATAL_FAILURE(FlipByte(first, offsets[3] + wal_format::kRecordHeaderBytes + 3));

  o.recovery_mode = RecoveryMode::kBestEffort;
  {
    MapStateMachine sm;
    RecoveryReport report;
    auto st = MustOpen(o, &sm, &report);
    ASSERT_NE(st, nullptr);
    EXPECT_EQ(sm.docs(), ModelAfter(3));
    EXPECT_EQ(report.last_lsn, 3u);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 3, 8));  // acknowledged after recovery
  }
  o.recovery_mode = RecoveryMode::kStrict;
  MapStateMachine sm;
  RecoveryReport report;
  auto st = Storage::Open(o, &sm, &report);
  ASSERT_TRUE(st.ok()) << "segments left: " << ::testing::PrintToString(WalSegments(d.path()))
                       << ": " << st.status().ToString();
  EXPECT_EQ(sm.docs(), ModelAfter(8));
}

TEST(StorageRecoveryTest, ManifestBitFlipFailsOpenWithCorruption) {
  TempDir d;
  const StorageOptions o = Options(d.path());
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 20));
    ASSERT_TRUE(st->Checkpoint().ok());
  }
  const std::string path = io::JoinPath(d.path(), Manifest::kFileName);
  ASSERT_NO_FATAL_FAILURE(FlipByte(path, 14));
  MapStateMachine sm;
  auto st = Storage::Open(o, &sm, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kCorruption);
  EXPECT_NE(st.status().message().find(Manifest::kFileName), std::string::npos)
      << st.status().ToString();
}

// Two checkpoints (LSN 30 and 60) and 20 more writes.
void TwoGenerations(const StorageOptions& o) {
  MapStateMachine sm;
  auto st = MustOpen(o, &sm);
  ASSERT_NE(st, nullptr);
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 30));
  ASSERT_TRUE(st->Checkpoint().ok());
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 30, 60));
  ASSERT_TRUE(st->Checkpoint().ok());
  ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 60, 80));
}

void CheckFallsBackLosingNothing(const std::string& corrupt_file) {
  SCOPED_TRACE(corrupt_file);
  for (RecoveryMode mode : {RecoveryMode::kStrict, RecoveryMode::kBestEffort}) {
    TempDir d;
    StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kNever, 2048);
    ASSERT_NO_FATAL_FAILURE(TwoGenerations(o));
    ASSERT_NO_FATAL_FAILURE(
        FlipByte(io::JoinPath(io::JoinPath(d.path(), SnapshotDirName(60)), corrupt_file), 10));
    o.recovery_mode = mode;
    MapStateMachine sm;
    RecoveryReport report;
    auto st = MustOpen(o, &sm, &report);
    ASSERT_NE(st, nullptr);
    EXPECT_TRUE(report.fell_back);
    EXPECT_NE(report.fallback_reason.find(SnapshotDirName(60)), std::string::npos)
        << report.fallback_reason;
    EXPECT_EQ(report.snapshot, SnapshotDirName(30));
    EXPECT_EQ(report.records_replayed, 50u);
    EXPECT_EQ(sm.docs(), ModelAfter(80)) << "nothing lost";
    EXPECT_EQ(report.last_lsn, 80u);
  }
}

TEST(StorageRecoveryTest, SnapshotDataBitFlipFallsBackToThePreviousGenerationLosingNothing) {
  CheckFallsBackLosingNothing("docs");
}

TEST(StorageRecoveryTest, SnapshotIndexBitFlipFallsBackToThePreviousGenerationLosingNothing) {
  CheckFallsBackLosingNothing("SNAPSHOT");
}

TEST(StorageRecoveryTest, FirstSnapshotBitFlipFallsBackToReplayingTheWholeWal) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kNever, 2048);
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 30));
    ASSERT_TRUE(st->Checkpoint().ok());
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 30, 40));
  }
  ASSERT_NO_FATAL_FAILURE(FlipByte(io::JoinPath(io::JoinPath(d.path(), SnapshotDirName(30)), "docs"), 9));
  MapStateMachine sm;
  RecoveryReport report;
  auto st = MustOpen(o, &sm, &report);
  ASSERT_NE(st, nullptr);
  EXPECT_TRUE(report.fell_back);
  EXPECT_TRUE(report.snapshot.empty());
  EXPECT_EQ(report.records_replayed, 40u);
  EXPECT_EQ(sm.docs(), ModelAfter(40));
}

TEST(StorageRecoveryTest, SnapshotBitFlipWithoutPreviousGenerationFailsWithCorruption) {
  TempDir d;
  const StorageOptions o = Options(d.path());
  {
    MapStateMachine sm;
    auto st = MustOpen(o, &sm);
    ASSERT_NE(st, nullptr);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 0, 30));
    ASSERT_TRUE(st->Checkpoint().ok());
    // A manifest with no fallback generation (as an older tool or a trimmed directory has it).
    Manifest m = st->manifest();
    m.previous = SnapshotRef{};
    m.previous.wal_first_segment = 0;
    ASSERT_TRUE(m.Write(io::FileSystem::Default(), d.path()).ok());
  }
  ASSERT_NO_FATAL_FAILURE(FlipByte(io::JoinPath(io::JoinPath(d.path(), SnapshotDirName(30)), "docs"), 9));
  MapStateMachine sm;
  auto st = Storage::Open(o, &sm, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kCorruption);
  EXPECT_NE(st.status().message().find(SnapshotDirName(30)), std::string::npos)
      << st.status().ToString();
}

TEST(StorageRecoveryTest, BothSnapshotGenerationsCorruptFailsWithCorruption) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kNever, 2048);
  ASSERT_NO_FATAL_FAILURE(TwoGenerations(o));
  for (Lsn lsn : {30u, 60u}) {
    ASSERT_NO_FATAL_FAILURE(FlipByte(io::JoinPath(io::JoinPath(d.path(), SnapshotDirName(lsn)), "docs"), 9));
  }
  MapStateMachine sm;
  auto st = Storage::Open(o, &sm, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kCorruption);
}

// After a fall back the manifest still names the corrupt snapshot as current. A checkpoint
// then must not make that corrupt snapshot the fallback generation (deleting the good one):
// one more corruption would lose data that was safe.
TEST(StorageRecoveryTest, CheckpointAfterFallingBackKeepsAReadablePreviousGeneration) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kNever, 2048);
  ASSERT_NO_FATAL_FAILURE(TwoGenerations(o));
  ASSERT_NO_FATAL_FAILURE(FlipByte(io::JoinPath(io::JoinPath(d.path(), SnapshotDirName(60)), "docs"), 9));
  {
    MapStateMachine sm;
    RecoveryReport report;
    auto st = MustOpen(o, &sm, &report);
    ASSERT_NE(st, nullptr);
    ASSERT_TRUE(report.fell_back);
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 80, 90));
    ASSERT_TRUE(st->Checkpoint().ok());
    ASSERT_NO_FATAL_FAILURE(WriteOps(st.get(), &sm, 90, 95));
  }
  ASSERT_NO_FATAL_FAILURE(FlipByte(io::JoinPath(io::JoinPath(d.path(), SnapshotDirName(90)), "docs"), 9));
  MapStateMachine sm;
  RecoveryReport report;
  auto st = Storage::Open(o, &sm, &report);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_TRUE(report.fell_back);
  EXPECT_EQ(sm.docs(), ModelAfter(95));
}

// ---------------------------------------------------------------------------------------------
// 7. Missing segments

TEST(StorageRecoveryTest, MissingMiddleWalSegmentFailsStrictOpenNamingIt) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kNever, 1024);
  ASSERT_NO_FATAL_FAILURE(Populate(o, 60));
  std::vector<uint64_t> segs = WalSegments(d.path());
  ASSERT_GE(segs.size(), 3u);
  const uint64_t missing = segs[1];
  fs::remove(SegmentPath(d.path(), missing));
  MapStateMachine sm;
  auto st = Storage::Open(o, &sm, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kCorruption);
  EXPECT_NE(st.status().message().find(WalSegmentName(missing)), std::string::npos)
      << st.status().ToString();
}

TEST(StorageRecoveryTest, MissingFirstWalSegmentFailsStrictOpenNamingIt) {
  TempDir d;
  const StorageOptions o = Options(d.path(), io::FileSystem::Default(), FsyncPolicy::kNever, 1024);
  ASSERT_NO_FATAL_FAILURE(Populate(o, 60));
  std::vector<uint64_t> segs = WalSegments(d.path());
  ASSERT_GE(segs.size(), 3u);
  fs::remove(SegmentPath(d.path(), segs[0]));
  MapStateMachine sm;
  auto st = Storage::Open(o, &sm, nullptr);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), StatusCode::kCorruption);
  EXPECT_NE(st.status().message().find(WalSegmentName(segs[0])), std::string::npos)
      << st.status().ToString();
}

}  // namespace
}  // namespace kyrodb::storage

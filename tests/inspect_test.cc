// kyrodb_inspect end to end: builds a real data directory with storage::Storage, runs the
// binary (KYRODB_INSPECT_BIN) and checks its exit code and what it names.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>

#include "base/coding.h"
#include "io/file_system.h"
#include "storage/storage.h"
#include "storage/wal.h"
#include "storage/wal_format.h"
#include "test_support.h"

namespace kyrodb::storage {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}


// doc_id -> collection, saved as one snapshot file of (u64 id, length-prefixed name) entries.
class MapStateMachine final : public StateMachine {
 public:
  Status Apply(const WalRecord& r) override {
    if (r.type == RecordType::kUpsert) docs_[r.doc_id] = r.collection;
    if (r.type == RecordType::kDelete) docs_.erase(r.doc_id);
    return Status::Ok();
  }
  Status SaveSnapshot(SnapshotWriter* writer) override {
    std::string body;
    for (const auto& [id, c] : docs_) {
      coding::PutFixed64(&body, id);
      coding::PutLengthPrefixed(&body, c);
    }
    auto f = writer->NewFile("docs");
    if (!f.ok()) return f.status();
    KYRODB_RETURN_IF_ERROR((*f)->Append(body.data(), body.size()));
    return (*f)->Close();
  }
  Status LoadSnapshot(const SnapshotReader& reader) override {
    std::ifstream in(reader.PathOf("docs"), std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string_view v(body);
    while (!v.empty()) {
      uint64_t id;
      std::string_view c;
      if (!coding::GetFixed64(&v, &id) || !coding::GetLengthPrefixed(&v, &c)) {
        return Status::Corruption("docs file");
      }
      docs_[id] = std::string(c);
    }
    return Status::Ok();
  }
  void Clear() override { docs_.clear(); }

 private:
  std::map<uint64_t, std::string> docs_;
};

struct RunResult {
  int exit_code = -1;
  std::string output;
};

RunResult Inspect(const std::string& args) {
  RunResult r;
  const std::string cmd = std::string(KYRODB_INSPECT_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

void FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

// A data directory with 30 records, a checkpoint, then 100 more, in small segments.
class InspectTest : public ::testing::Test {
 protected:
  static constexpr int kBefore = 30;
  static constexpr int kAfter = 100;

  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kyrodb_inspect_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    StorageOptions o;
    o.dir = dir_;
    o.fsync_policy = FsyncPolicy::kNever;
    o.wal_segment_bytes = 4096;
    MapStateMachine sm;
    auto s = Storage::Open(o, &sm, nullptr);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    for (int i = 0; i < kBefore + kAfter; ++i) {
      if (i == kBefore) {
        auto cp = (*s)->Checkpoint();
        ASSERT_TRUE(cp.ok()) << cp.status().ToString();
      }
      WalRecord r;
      r.type = RecordType::kUpsert;
      r.tenant = "acme";
      r.collection = "docs";
      r.doc_id = static_cast<uint64_t>(i);
      r.embedding.assign(16, 0.5f * static_cast<float>(i));
      r.metadata = {{"k", "v"}};
      auto lsn = (*s)->Write(r, [&] { return sm.Apply(r); });
      ASSERT_TRUE(lsn.ok()) << lsn.status().ToString();
    }
    ASSERT_OK((*s)->Close());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> Segments() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      uint64_t seq;
      if (ParseWalSegmentName(e.path().filename().string(), &seq)) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string dir_;
};

TEST_F(InspectTest, ConsistentDirectoryExitsZeroAndNamesSegmentsAndRecordCounts) {
  RunResult r = Inspect(dir_);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("OK: no corruption found"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(SnapshotDirName(kBefore)), std::string::npos) << r.output;
  const auto segments = Segments();
  ASSERT_GE(segments.size(), 3u);
  for (const auto& p : segments) {
    EXPECT_NE(r.output.find(std::filesystem::path(p).filename().string()), std::string::npos)
        << p << "\n"
        << r.output;
  }
  // "segment wal-...: seq S, first lsn F, N records" for every segment; the counts add up.
  uint64_t total = 0, lines = 0;
  for (const std::string& l : Lines(r.output)) {
    const size_t at = l.find("segment wal-");
    if (at == std::string::npos) continue;
    char name[64];
    unsigned long long seq, first, records;
    if (std::sscanf(l.c_str() + at, "segment %60[^:]: seq %llu, first lsn %llu, %llu records", name,
                    &seq, &first, &records) == 4 &&
        std::strlen(name) == 28) {
      total += records;
      ++lines;
    }
  }
  EXPECT_EQ(lines, segments.size()) << r.output;
  EXPECT_EQ(total, static_cast<uint64_t>(kBefore + kAfter)) << r.output;
}

TEST_F(InspectTest, RecordsFlagPrintsOneLinePerRecord) {
  RunResult r = Inspect(dir_ + " --records --verify");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  long n = 0;
  for (const std::string& l : Lines(r.output)) {
    const size_t at = l.find("lsn ");
    n += at != std::string::npos &&
         l.find(" upsert tenant=acme collection=docs doc_id=", at) != std::string::npos &&
         l.find(" dim=16 metadata=1") != std::string::npos;
  }
  EXPECT_EQ(n, kBefore + kAfter) << r.output;
  EXPECT_NE(r.output.find("checksums verified"), std::string::npos) << r.output;
}

TEST_F(InspectTest, FlippedByteInWalRecordExitsOneNamingFileAndOffset) {
  const std::string seg = Segments().front();
  std::string head(wal_format::kSegmentHeaderBytes + wal_format::kRecordHeaderBytes, '\0');
  std::ifstream(seg, std::ios::binary).read(head.data(), static_cast<std::streamsize>(head.size()));
  // The second record of the first segment: a record follows it, so it cannot be a torn tail.
  const uint64_t len1 = coding::DecodeFixed32(head.data() + wal_format::kSegmentHeaderBytes);
  const uint64_t second = wal_format::kSegmentHeaderBytes + wal_format::kRecordHeaderBytes + len1;
  FlipByte(seg, second + (wal_format::kRecordHeaderBytes + len1) / 2);

  RunResult r = Inspect(dir_);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(seg + " at offset " + std::to_string(second)), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("CORRUPTION"), std::string::npos) << r.output;
}

TEST_F(InspectTest, TornFinalRecordIsReportedButNotCorruption) {
  const std::string last = Segments().back();
  auto size = io::FileSystem::Default()->FileSize(last);
  ASSERT_TRUE(size.ok());
  ASSERT_GT(*size, wal_format::kSegmentHeaderBytes + 10);
  ASSERT_OK(io::FileSystem::Default()->Truncate(last, *size - 5));
  RunResult r = Inspect(dir_);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("torn final record"), std::string::npos) << r.output;
}

TEST_F(InspectTest, VerifyFindsCorruptSnapshotFile) {
  const std::string file = io::JoinPath(io::JoinPath(dir_, SnapshotDirName(kBefore)), "docs");
  FlipByte(file, 3);
  EXPECT_EQ(Inspect(dir_).exit_code, 0);  // sizes still match; only --verify reads the data
  RunResult r = Inspect(dir_ + " --verify");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(file + ": checksum mismatch"), std::string::npos) << r.output;
}

TEST_F(InspectTest, MissingSegmentAndGarbageFilesAreCorruptionNotCrashes) {
  const auto segments = Segments();
  std::filesystem::remove(segments[1]);
  {
    std::ofstream g(io::JoinPath(dir_, WalSegmentName(999)), std::ios::binary);
    for (int i = 0; i < 1000; ++i) g.put(static_cast<char>(i * 131 + 7));
  }
  std::ofstream(io::JoinPath(dir_, "MANIFEST"), std::ios::binary) << "garbage";
  RunResult r = Inspect(dir_ + " --records --verify");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("MANIFEST: unreadable"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bad magic"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing before"), std::string::npos) << r.output;
}

TEST(InspectUsageTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Inspect("").exit_code, 2);
  EXPECT_EQ(Inspect("--no-such-flag /tmp").exit_code, 2);
  EXPECT_EQ(Inspect("/nonexistent/kyrodb/data").exit_code, 2);
}

}  // namespace
}  // namespace kyrodb::storage

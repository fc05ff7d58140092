#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io/fault_injection_file_system.h"
#include "io/file_system.h"
#include "test_support.h"

namespace kyrodb::io {
namespace {


// A fresh directory under the system temp dir, removed with its contents at the end.
class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kyrodb_io_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return JoinPath(dir_, name); }

  // Writes `content` to `path` through `fs` and syncs it (no SyncDir).
  static void WriteFile(FileSystem* fs, const std::string& path, const std::string& content) {
    auto f = fs->NewWritableFile(path);
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    ASSERT_OK((*f)->Append(content.data(), content.size()));
    ASSERT_OK((*f)->Sync());
    ASSERT_OK((*f)->Close());
  }

  // The whole file, or the error's text.
  static std::string ReadFile(const std::string& path) {
    auto f = FileSystem::Default()->NewSequentialFile(path);
    if (!f.ok()) return f.status().ToString();
    std::string out;
    char buf[4096];
    for (;;) {
      auto r = (*f)->Read(buf, sizeof(buf));
      if (!r.ok()) return r.status().ToString();
      if (*r == 0) return out;
      out.append(buf, *r);
    }
  }

  FileSystem* posix_ = FileSystem::Default();
  std::string dir_;
};

TEST_F(IoTest, PosixWriteSyncReadRoundTrip) {
  std::string big(3 << 20, 'x');  // larger than the write buffer
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i % 26);
  auto f = posix_->NewWritableFile(Path("data"));
  ASSERT_TRUE(f.ok());
  ASSERT_OK((*f)->Append("head", 4));
  ASSERT_OK((*f)->Append(big.data(), big.size()));
  ASSERT_OK((*f)->Append("tail", 4));
  ASSERT_OK((*f)->Sync());
  ASSERT_OK((*f)->Close());

  auto size = posix_->FileSize(Path("data"));
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, big.size() + 8);
  auto in = posix_->NewSequentialFile(Path("data"));
  ASSERT_TRUE(in.ok());
  std::string got(big.size() + 8, '\0');
  ASSERT_OK(ReadExactly(in->get(), got.data(), got.size(), "data"));
  EXPECT_EQ(got, "head" + big + "tail");
  auto r = (*in)->Read(got.data(), 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0u);
}

TEST_F(IoTest, PosixMissingFileIsNotFound) {
  EXPECT_EQ(posix_->NewSequentialFile(Path("missing")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(posix_->FileSize(Path("missing")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(posix_->Remove(Path("missing")).code(), StatusCode::kNotFound);
  EXPECT_FALSE(posix_->Exists(Path("missing")));
}

TEST_F(IoTest, AppendableFileKeepsExistingBytes) {
  WriteFile(posix_, Path("log"), "first;");
  auto f = posix_->NewAppendableFile(Path("log"));
  ASSERT_TRUE(f.ok());
  ASSERT_OK((*f)->Append("second", 6));
  ASSERT_OK((*f)->Close());
  EXPECT_EQ(ReadFile(Path("log")), "first;second");

  auto g = posix_->NewAppendableFile(Path("new"));  // creates a missing file
  ASSERT_TRUE(g.ok());
  ASSERT_OK((*g)->Append("x", 1));
  ASSERT_OK((*g)->Close());
  EXPECT_EQ(ReadFile(Path("new")), "x");
}

TEST_F(IoTest, DirectoryOperations) {
  ASSERT_OK(posix_->CreateDir(Path("sub")));
  ASSERT_OK(posix_->CreateDir(Path("sub")));  // already exists: fine
  WriteFile(posix_, Path("sub/b"), "");
  WriteFile(posix_, Path("sub/a"), "");
  WriteFile(posix_, Path("sub/c"), "");
  auto names = posix_->ListDir(Path("sub"));
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b", "c"}));

  EXPECT_FALSE(posix_->CreateDir(Path("sub/a")).ok());  // a file is in the way
  EXPECT_FALSE(posix_->RemoveDir(Path("sub")).ok());    // not empty
  for (const auto& n : *names) ASSERT_OK(posix_->Remove(JoinPath(Path("sub"), n)));
  ASSERT_OK(posix_->RemoveDir(Path("sub")));
  EXPECT_FALSE(posix_->Exists(Path("sub")));
  EXPECT_EQ(posix_->ListDir(Path("sub")).status().code(), StatusCode::kNotFound);
  ASSERT_OK(posix_->SyncDir(dir_));
}

TEST_F(IoTest, TruncateCutsFile) {
  WriteFile(posix_, Path("t"), "0123456789");
  ASSERT_OK(posix_->Truncate(Path("t"), 4));
  EXPECT_EQ(ReadFile(Path("t")), "0123");
  EXPECT_EQ(posix_->Truncate(Path("missing"), 0).code(), StatusCode::kNotFound);
}

TEST_F(IoTest, AtomicFileWriterKeepsOldContentUntilCommit) {
  WriteFile(posix_, Path("manifest"), "old");
  {
    auto w = AtomicFileWriter::Open(posix_, Path("manifest"));
    ASSERT_TRUE(w.ok());
    ASSERT_OK(w->file()->Append("new", 3));
  }  // dropped without Commit
  EXPECT_EQ(ReadFile(Path("manifest")), "old");
  EXPECT_FALSE(posix_->Exists(Path("manifest.tmp")));

  auto w = AtomicFileWriter::Open(posix_, Path("manifest"));
  ASSERT_TRUE(w.ok());
  ASSERT_OK(w->file()->Append("new", 3));
  ASSERT_OK(w->Commit());
  EXPECT_EQ(ReadFile(Path("manifest")), "new");
  EXPECT_FALSE(posix_->Exists(Path("manifest.tmp")));
}

TEST_F(IoTest, ReadExactlyReportsTruncationAsCorruption) {
  WriteFile(posix_, Path("short"), "abc");
  auto f = posix_->NewSequentialFile(Path("short"));
  ASSERT_TRUE(f.ok());
  char buf[8];
  Status s = ReadExactly(f->get(), buf, sizeof(buf), "wal header");
  EXPECT_EQ(s.code(), StatusCode::kCorruption);
  EXPECT_NE(s.message().find("wal header"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();
}

TEST(PathTest, DirNameAndJoinPath) {
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("c"), ".");
  EXPECT_EQ(DirName("/c"), "/");
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("a", "/b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(JoinPath("/", "b"), "/b");
}

// ---- Fault injection ----

class FaultInjectionTest : public IoTest {
 protected:
  FaultInjectionFileSystem fs_{FileSystem::Default()};
};

TEST_F(FaultInjectionTest, NthWriteFailsWithInjectedStatusThenWritesWork) {
  auto f = fs_.NewWritableFile(Path("w"));
  ASSERT_TRUE(f.ok());
  fs_.FailNthWrite(2, Status::IoError("injected EIO"));
  ASSERT_OK((*f)->Append("a", 1));
  Status s = (*f)->Append("b", 1);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.message(), "injected EIO");
  ASSERT_OK((*f)->Append("c", 1));
  ASSERT_OK((*f)->Close());
  EXPECT_EQ(ReadFile(Path("w")), "ac");
  EXPECT_EQ(fs_.appends(), 3u);
}

TEST_F(FaultInjectionTest, NthSyncFailsWithoutSyncingThenSyncsWork) {
  ASSERT_OK(fs_.SyncDir(dir_));
  auto f = fs_.NewWritableFile(Path("s"));
  ASSERT_TRUE(f.ok());
  ASSERT_OK(fs_.SyncDir(dir_));
  fs_.FailNthSync(2, Status::IoError("injected fsync EIO"));
  ASSERT_OK((*f)->Append("one", 3));
  ASSERT_OK((*f)->Sync());
  ASSERT_OK((*f)->Append("two", 3));
  Status s = (*f)->Sync();
  EXPECT_EQ(s.message(), "injected fsync EIO");
  EXPECT_EQ(fs_.syncs(), 2u);
  // The failed sync made nothing durable.
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("s")), "one");

  // The next sync works again (on a new handle: the old one died with the power).
  auto g = fs_.NewAppendableFile(Path("s"));
  ASSERT_TRUE(g.ok());
  ASSERT_OK((*g)->Append("three", 5));
  ASSERT_OK((*g)->Sync());
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("s")), "onethree");
  EXPECT_EQ(fs_.syncs(), 3u);
}

TEST_F(FaultInjectionTest, FailAllSyncs) {
  auto f = fs_.NewWritableFile(Path("s"));
  ASSERT_TRUE(f.ok());
  fs_.SetFailAllSyncs(true);
  EXPECT_EQ((*f)->Sync().code(), StatusCode::kIoError);
  EXPECT_EQ((*f)->Sync().code(), StatusCode::kIoError);
  fs_.SetFailAllSyncs(false);
  ASSERT_OK((*f)->Sync());
}

TEST_F(FaultInjectionTest, NoSpaceRefusesAppendsButSyncsWrittenData) {
  auto f = fs_.NewWritableFile(Path("full"));
  ASSERT_TRUE(f.ok());
  ASSERT_OK((*f)->Append("kept", 4));
  fs_.SetNoSpace(true);
  Status s = (*f)->Append("lost", 4);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos) << s.message();
  ASSERT_OK((*f)->Sync());
  auto size = fs_.FileSize(Path("full"));
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, 4u);
  fs_.SetNoSpace(false);
  ASSERT_OK((*f)->Append("more", 4));
  ASSERT_OK((*f)->Close());
  EXPECT_EQ(ReadFile(Path("full")), "keptmore");
}

TEST_F(FaultInjectionTest, ShortWriteLeavesExactlyHalfTheBytes) {
  auto f = fs_.NewWritableFile(Path("short"));
  ASSERT_TRUE(f.ok());
  fs_.ShortWriteNextAppend();
  EXPECT_EQ((*f)->Append("0123456789", 10).code(), StatusCode::kIoError);
  ASSERT_OK((*f)->Close());
  EXPECT_EQ(ReadFile(Path("short")), "01234");
  // Only the next append was cut.
  auto g = fs_.NewAppendableFile(Path("short"));
  ASSERT_TRUE(g.ok());
  ASSERT_OK((*g)->Append("abcd", 4));
  ASSERT_OK((*g)->Close());
  EXPECT_EQ(ReadFile(Path("short")), "01234abcd");
}

TEST_F(FaultInjectionTest, PowerLossDropsUnsyncedSuffixAndUnsyncedNewFiles) {
  ASSERT_OK(fs_.CreateDir(Path("never_synced")));
  // "a": created, directory synced, 5 bytes synced then 3 more unsynced.
  auto a = fs_.NewWritableFile(Path("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_OK(fs_.SyncDir(dir_));
  ASSERT_OK((*a)->Append("12345", 5));
  ASSERT_OK((*a)->Sync());
  ASSERT_OK((*a)->Append("678", 3));
  ASSERT_OK((*a)->Flush());
  // "b": fully synced, closed.
  auto b = fs_.NewWritableFile(Path("b"));
  ASSERT_TRUE(b.ok());
  ASSERT_OK((*b)->Append("bbbb", 4));
  ASSERT_OK((*b)->Sync());
  ASSERT_OK((*b)->Close());
  ASSERT_OK(fs_.SyncDir(dir_));
  // "pre": existed before (written directly), reopened for append; only the old bytes survive.
  WriteFile(posix_, Path("pre"), "old");
  auto pre = fs_.NewAppendableFile(Path("pre"));
  ASSERT_TRUE(pre.ok());
  ASSERT_OK((*pre)->Append("new", 3));  // still buffered: lost too
  // "never_synced/c": data synced, but its directory never was.
  auto c = fs_.NewWritableFile(Path("never_synced/c"));
  ASSERT_TRUE(c.ok());
  ASSERT_OK((*c)->Append("cc", 2));
  ASSERT_OK((*c)->Sync());

  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("a")), "12345");
  EXPECT_EQ(ReadFile(Path("b")), "bbbb");
  EXPECT_EQ(ReadFile(Path("pre")), "old");
  EXPECT_FALSE(posix_->Exists(Path("never_synced/c")));
  EXPECT_TRUE(posix_->Exists(Path("never_synced")));

  // Handles from before the power loss are dead; destroying them writes nothing.
  EXPECT_EQ((*a)->Append("x", 1).code(), StatusCode::kIoError);
  EXPECT_EQ((*a)->Sync().code(), StatusCode::kIoError);
  a->reset();
  pre->reset();
  c->reset();
  EXPECT_EQ(ReadFile(Path("a")), "12345");
  EXPECT_EQ(ReadFile(Path("pre")), "old");

  // The restarted "machine" works: new synced data survives the next power loss.
  auto d = fs_.NewAppendableFile(Path("a"));
  ASSERT_TRUE(d.ok());
  ASSERT_OK((*d)->Append("9", 1));
  ASSERT_OK((*d)->Sync());
  ASSERT_OK((*d)->Append("lost", 4));
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("a")), "123459");
}

TEST_F(FaultInjectionTest, PowerLossUndoesRenameWithoutDirectorySync) {
  WriteFile(posix_, Path("manifest"), "old");
  ASSERT_OK(posix_->SyncDir(dir_));
  WriteFile(&fs_, Path("manifest.tmp"), "new");
  ASSERT_OK(fs_.Rename(Path("manifest.tmp"), Path("manifest")));
  EXPECT_EQ(ReadFile(Path("manifest")), "new");
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("manifest")), "old");
  EXPECT_FALSE(posix_->Exists(Path("manifest.tmp")));  // created, directory never synced
}

TEST_F(FaultInjectionTest, PowerLossUnwindsChainedRenamesToLastDurableFile) {
  WriteFile(posix_, Path("manifest"), "v1");
  ASSERT_OK(posix_->SyncDir(dir_));
  for (const char* v : {"v2", "v3"}) {
    WriteFile(&fs_, Path("manifest.tmp"), v);
    ASSERT_OK(fs_.Rename(Path("manifest.tmp"), Path("manifest")));
  }
  EXPECT_EQ(ReadFile(Path("manifest")), "v3");
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("manifest")), "v1");
  EXPECT_FALSE(posix_->Exists(Path("manifest.tmp")));
}

TEST_F(FaultInjectionTest, RenameFollowedByDirectorySyncIsDurable) {
  WriteFile(posix_, Path("manifest"), "old");
  ASSERT_OK(posix_->SyncDir(dir_));
  WriteFile(&fs_, Path("manifest.tmp"), "new");
  ASSERT_OK(fs_.Rename(Path("manifest.tmp"), Path("manifest")));
  ASSERT_OK(fs_.SyncDir(dir_ + "/"));  // same directory, spelled differently
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("manifest")), "new");
  EXPECT_FALSE(posix_->Exists(Path("manifest.tmp")));
}

TEST_F(FaultInjectionTest, AtomicFileWriterCommitSurvivesPowerLoss) {
  WriteFile(posix_, Path("manifest"), "v1");
  ASSERT_OK(posix_->SyncDir(dir_));
  {
    auto w = AtomicFileWriter::Open(&fs_, Path("manifest"));
    ASSERT_TRUE(w.ok());
    ASSERT_OK(w->file()->Append("v2", 2));
    ASSERT_OK(w->Commit());
  }
  {
    auto w = AtomicFileWriter::Open(&fs_, Path("manifest"));
    ASSERT_TRUE(w.ok());
    ASSERT_OK(w->file()->Append("v3", 2));
    ASSERT_OK(w->file()->Sync());
    ASSERT_OK(fs_.SimulatePowerLoss());  // before Commit
  }
  EXPECT_EQ(ReadFile(Path("manifest")), "v2");
  EXPECT_FALSE(posix_->Exists(Path("manifest.tmp")));
}

TEST_F(FaultInjectionTest, PowerLossUndoesDirectoryChangesNotSyncedInTheirParent) {
  WriteFile(posix_, Path("kept"), "durable");
  ASSERT_OK(posix_->SyncDir(dir_));
  ASSERT_OK(fs_.CreateDir(Path("newdir")));
  ASSERT_OK(fs_.Remove(Path("kept")));
  ASSERT_OK(fs_.SyncDir(dir_));            // makes both durable...
  ASSERT_OK(fs_.CreateDir(Path("late")));  // ...but not these two
  WriteFile(&fs_, Path("newdir/file"), "synced data, unsynced entry");
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_FALSE(posix_->Exists(Path("kept")));
  EXPECT_TRUE(posix_->Exists(Path("newdir")));
  EXPECT_FALSE(posix_->Exists(Path("newdir/file")));
  EXPECT_FALSE(posix_->Exists(Path("late")));
}

TEST_F(FaultInjectionTest, PowerLossBringsBackAnUnsyncedRemoveAndAnUnsyncedTruncate) {
  WriteFile(posix_, Path("removed"), "still here");
  WriteFile(posix_, Path("cut"), "0123456789");
  ASSERT_OK(posix_->SyncDir(dir_));
  ASSERT_OK(fs_.Remove(Path("removed")));
  ASSERT_OK(fs_.Truncate(Path("cut"), 4));
  EXPECT_FALSE(posix_->Exists(Path("removed")));
  EXPECT_EQ(ReadFile(Path("cut")), "0123");
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("removed")), "still here");
  EXPECT_EQ(ReadFile(Path("cut")), "0123456789");
  // A truncation followed by a sync of the file is durable.
  ASSERT_OK(fs_.Truncate(Path("cut"), 4));
  {
    auto f = fs_.NewAppendableFile(Path("cut"));
    ASSERT_TRUE(f.ok());
    ASSERT_OK((*f)->Sync());
  }
  ASSERT_OK(fs_.SimulatePowerLoss());
  EXPECT_EQ(ReadFile(Path("cut")), "0123");
}

TEST_F(FaultInjectionTest, ConcurrentAppendsToSeparateFiles) {
  constexpr int kThreads = 4, kRecords = 2000;
  ASSERT_OK(fs_.SyncDir(dir_));
  std::vector<std::thread> threads;
  std::vector<Status> results(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      results[t] = [&]() -> Status {
        auto f = fs_.NewWritableFile(Path("log" + std::to_string(t)));
        if (!f.ok()) return f.status();
        std::string rec(16, static_cast<char>('a' + t));
        for (int i = 0; i < kRecords; ++i) {
          KYRODB_RETURN_IF_ERROR((*f)->Append(rec.data(), rec.size()));
          if (i % 100 == 99) KYRODB_RETURN_IF_ERROR((*f)->Sync());
        }
        return (*f)->Close();
      }();
    });
  }
  for (auto& th : threads) th.join();
  for (const Status& s : results) ASSERT_OK(s);
  EXPECT_EQ(fs_.appends(), uint64_t{kThreads} * kRecords);
  EXPECT_EQ(fs_.syncs(), uint64_t{kThreads} * (kRecords / 100));
  for (int t = 0; t < kThreads; ++t) {
    std::string got = ReadFile(Path("log" + std::to_string(t)));
    EXPECT_EQ(got, std::string(16 * kRecords, static_cast<char>('a' + t)));
  }
}

}  // namespace
}  // namespace kyrodb::io

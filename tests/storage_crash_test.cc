// Crash test: a real child process writes with fsync_policy always and reports each
// acknowledgement over a pipe; the parent kills it with SIGKILL at a random moment, recovers
// the data directory, and checks that every acknowledged write is there with its exact value
// and that nothing else is, except possibly the one write that was in flight.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>

#include "storage/storage.h"
#include "storage_test_util.h"

namespace kyrodb::storage {
namespace {

using kyrodb::testing::MapStateMachine;

// The g-th operation of the workload: upserts, deletes and metadata merges over 300 docs.
WalRecord Op(uint64_t g) {
  WalRecord r;
  r.tenant.assign(1, 't');
  r.collection.assign(1, g % 3 == 0 ? 'a' : 'b');
  r.doc_id = (g * 7919) % 300 + 1;
  if (g % 5 == 4) {
    r.type = RecordType::kDelete;
  } else if (g % 11 == 3) {
    r.type = RecordType::kUpdateMetadata;
    r.merge_metadata = true;
    r.metadata = {{"m", std::to_string(g)}};
  } else {
    r.type = RecordType::kUpsert;
    for (int i = 0; i < 16; ++i) r.embedding.push_back(static_cast<float>(g) + 0.25f * i);
    r.metadata = {{"g", std::to_string(g)}, {"parity", g % 2 ? "odd" : "even"}};
  }
  return r;
}

StorageOptions Options(const std::string& dir) {
  StorageOptions o;
  o.dir = dir;
  o.fsync_policy = FsyncPolicy::kAlways;
  o.wal_segment_bytes = 16 << 10;  // rotate often: crashes land in rotations too
  return o;
}

[[noreturn]] void RunChild(const std::string& dir, uint64_t first_op, int ack_fd) {
  MapStateMachine sm;
  auto st = Storage::Open(Options(dir), &sm, nullptr);
  if (!st.ok()) {
    std::fprintf(stderr, "child: open failed: %s\n", st.status().ToString().c_str());
    _exit(3);
  }
  for (uint64_t g = first_op; g < first_op + 100000; ++g) {
    WalRecord r = Op(g);
    auto lsn = (*st)->Write(r, [&] { return sm.Apply(r); });
    if (!lsn.ok()) {
      std::fprintf(stderr, "child: write failed: %s\n", lsn.status().ToString().c_str());
      _exit(4);
    }
    if (::write(ack_fd, &g, sizeof(g)) != sizeof(g)) _exit(5);
    if (g % 97 == 0) {
      auto cp = (*st)->Checkpoint();
      if (!cp.ok()) {
        std::fprintf(stderr, "child: checkpoint failed: %s\n", cp.status().ToString().c_str());
        _exit(6);
      }
    }
  }
  _exit(0);
}

void CrashCycles(int cycles, uint64_t seed) {
  const std::string dir = "/tmp/kyrodb_crash_" + std::to_string(::getpid()) + "_" +
                          std::to_string(seed);
  std::filesystem::remove_all(dir);
  std::mt19937_64 rng(seed);
  MapStateMachine::Docs model;  // state after every acknowledged op
  uint64_t next_op = 0;         // first op not known to be durable
  for (int cycle = 0; cycle < cycles; ++cycle) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      RunChild(dir, next_op, fds[1]);
    }
    ::close(fds[1]);
    const uint64_t target = 1 + rng() % 150;
    uint64_t acked = 0, g;
    while (acked < target && ::read(fds[0], &g, sizeof(g)) == sizeof(g)) {
      ASSERT_EQ(g, next_op) << "acks arrive in order";
      MapStateMachine::ApplyTo(Op(g), &model);
      ++next_op;
      ++acked;
    }
    ::kill(pid, SIGKILL);
    int status;
    ::waitpid(pid, &status, 0);
    // Acknowledgements the child sent after the target (still in the pipe) count too.
    while (::read(fds[0], &g, sizeof(g)) == sizeof(g)) {
      ASSERT_EQ(g, next_op) << "acks arrive in order";
      MapStateMachine::ApplyTo(Op(g), &model);
      ++next_op;
      ++acked;
    }
    ::close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited by itself with " << WEXITSTATUS(status)
                                     << " in cycle " << cycle;
    ASSERT_GE(acked, target);

    MapStateMachine sm;
    RecoveryReport report;
    auto st = Storage::Open(Options(dir), &sm, &report);
    ASSERT_TRUE(st.ok()) << "cycle " << cycle << ": " << st.status().ToString();
    auto got = sm.docs();
    if (got != model) {
      // Only the write that was in flight at the kill may have become durable.
      MapStateMachine::Docs with_next = model;
      MapStateMachine::ApplyTo(Op(next_op), &with_next);
      ASSERT_EQ(got, with_next) << "cycle " << cycle << ": recovered state is neither the "
                                   "acknowledged state nor it plus the in-flight write; "
                                << report.ToString();
      model = with_next;
      ++next_op;
    }
  }
  std::filesystem::remove_all(dir);
}

TEST(StorageCrashTest, NoAcknowledgedWriteIsLostAcross50Kills) { CrashCycles(50, 1); }
TEST(StorageCrashTest, SlowNoAcknowledgedWriteIsLostAcross400Kills) { CrashCycles(400, 2); }

}  // namespace
}  // namespace kyrodb::storage

// Storage: the durable home of a state machine — WAL, snapshots, manifest and recovery.
//
// The engine gives Storage a StateMachine (its collections). Every mutation goes through
// Write(): appended to the WAL (durable per the fsync policy), then applied. Checkpoint()
// cuts the WAL, has the state machine write a snapshot, verifies it by reading it back, and only
// then moves the manifest forward and trims the generation before the previous one. Open()
// recovers: loads the newest snapshot (falling back to the previous one plus its WAL if the
// newest is unreadable), replays the WAL after it, and reports what happened.
//
// Corruption handling (RecoveryMode):
//   kStrict (default): any corrupt WAL record, missing segment or unreadable manifest stops
//     Open() with Corruption naming the file and offset.
//   kBestEffort: the WAL is cut at the last good record; what follows is dropped and reported.
// A torn tail of the last segment (damage to records never acknowledged as synced; see
// wal_reader.h) is never corruption: it is discarded in both modes.
// Falling back to the previous snapshot loses nothing, so both modes do it, and report it.
//
// Thread-safety: Write, Checkpoint, Sync* may be called concurrently.
#pragma once

#include <cstdint>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "io/file_system.h"
#include "kyrodb/status.h"
#include "storage/manifest.h"
#include "storage/snapshot.h"
#include "storage/wal.h"
#include "storage/wal_record.h"

namespace kyrodb::storage {

enum class RecoveryMode { kStrict, kBestEffort };

struct StorageOptions {
  io::FileSystem* fs = io::FileSystem::Default();
  std::string dir;
  FsyncPolicy fsync_policy = FsyncPolicy::kData;
  uint32_t wal_flush_interval_ms = 100;
  uint64_t wal_segment_bytes = 64ull << 20;
  RecoveryMode recovery_mode = RecoveryMode::kStrict;
  // How often the background task retries writes after a WAL failure.
  uint32_t write_probe_interval_ms = 1000;
};

// What the engine plugs in. Apply must be idempotent in the sense of wal_record.h.
class StateMachine {
 public:
  virtual ~StateMachine() = default;
  virtual Status Apply(const WalRecord& record) = 0;
  // Writes a consistent image of the state that includes at least every record applied
  // before the call.
  virtual Status SaveSnapshot(SnapshotWriter* writer) = 0;
  virtual Status LoadSnapshot(const SnapshotReader& reader) = 0;
  // Forgets everything (before loading an older snapshot after a failed newer one).
  virtual void Clear() = 0;
};

struct RecoveryReport {
  std::string snapshot;            // loaded snapshot directory, empty if none
  Lsn snapshot_lsn = 0;
  bool fell_back = false;          // the newest snapshot was unreadable
  std::string fallback_reason;
  uint64_t segments_replayed = 0;
  uint64_t records_replayed = 0;
  uint64_t bytes_dropped = 0;      // torn tail + (best effort) corrupt suffix
  bool torn_tail_discarded = false;
  std::vector<std::string> dropped;  // what was dropped, with file and offset
  Lsn last_lsn = 0;
  double seconds = 0;
  std::string ToString() const;
};

class Storage {
 public:
  static Result<std::unique_ptr<Storage>> Open(const StorageOptions& options, StateMachine* sm,
                                               RecoveryReport* report);
  ~Storage();

  // Logs `record` then runs `apply` (which must not fail for a record that passed the
  // engine's validation). Returns the record's LSN. Concurrent writers apply their records in
  // LSN order, the order recovery replays them in: a writer whose record was logged after
  // another's waits for that one's apply, so the state served never differs from the state a
  // restart rebuilds (two concurrent writes of one document end as the log says).
  Result<Lsn> Write(const WalRecord& record, const std::function<Status()>& apply);
  // Logs `records` in order with as few group commits as fit, then runs apply(i) for each one
  // that is durable per the policy (a prefix, all of them unless an error is returned);
  // *logged says how many.
  Status WriteBatch(const std::vector<const WalRecord*>& records,
                    const std::function<void(size_t)>& apply, size_t* logged);

  // Snapshot + manifest + WAL trim. Returns the snapshot's LSN.
  Result<Lsn> Checkpoint();

  Status Sync() { return wal_->Sync(); }
  Status SyncIfDue() { return wal_->SyncIfDue(); }
  // After a write failure: re-enable writes once a write + fsync works again.
  Status ResumeWrites() { return wal_->Resume(); }
  bool writable() const { return wal_->writable(); }

  // The background service, a thread of its own (so that nothing else the owner does can
  // delay it): runs Tick() every TickPeriodMs(). Under policy data this is the timer that keeps
  // the promise: a record is fsynced within wal_flush_interval_ms of being written (plus the
  // fsync's own time and scheduling delay). Stop() (also run by Close and the destructor)
  // joins it.
  void Start();
  void Stop();
  // One round of background work: fsync the WAL if due (policy data), and after a write
  // failure, probe (ResumeWrites) once write_probe_interval_ms has passed since the last probe.
  // Tests may call it directly instead of starting the thread.
  void Tick();
  // max(1, min(wal_flush_interval_ms / 4, write_probe_interval_ms)).
  uint32_t TickPeriodMs() const;
  const Wal& wal() const { return *wal_; }
  Manifest manifest() const;
  Status Close();

 private:
  Storage(const StorageOptions& o, StateMachine* sm) : opt_(o), sm_(sm) {}
  Status Recover(RecoveryReport* report);
  Status LoadGeneration(const SnapshotRef& ref, RecoveryReport* report);
  Status Replay(uint64_t first_segment, Lsn snapshot_lsn, RecoveryReport* report,
                uint64_t* next_segment, Lsn* next_lsn);
  Status CollectGarbage();
  // Applies in LSN order: blocks until every record before `first` is applied.
  void WaitForApplyTurn(Lsn first);
  void ApplyDone(Lsn last);  // every record up to `last` is applied

  StorageOptions opt_;
  StateMachine* sm_;
  std::unique_ptr<Wal> wal_;
  std::shared_mutex gate_;     // shared: Write; exclusive: cutting the WAL for a snapshot
  std::mutex checkpoint_mu_;   // one checkpoint at a time
  mutable std::mutex manifest_mu_;
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;      // guarded by bg_mu_
  std::thread bg_thread_;
  int64_t last_probe_ms_ = 0;  // used by Tick() only
  Manifest manifest_;          // guarded by manifest_mu_
  std::mutex apply_mu_;
  std::condition_variable apply_cv_;
  Lsn applied_ = 0;  // guarded by apply_mu_: every record up to this LSN is applied
};

}  // namespace kyrodb::storage

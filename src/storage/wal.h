// Wal: the write-ahead log writer. Every mutation is appended here before it is acknowledged.
//
// Segments are files `wal-<20-digit seq>.log` in one directory, rotated at
// options.segment_bytes (format: docs/formats/wal.md). Durability per FsyncPolicy:
//   kAlways: Append returns once the record is fsynced. Concurrent appenders are grouped: the
//            first in line writes the whole queue behind it with one write() and one fdatasync
//            (group commit), then wakes the others.
//   kData:   Append returns once the record is written to the OS; SyncIfDue() (called by the
//            owner's background task) fsyncs at most every flush_interval_ms.
//   kNever:  written to the OS; fsync is left to the OS (and to rotation and Close).
// In every policy a record survives a crash of the process once Append returned.
//
// Failure: a failed write or fsync (or ENOSPC) makes the WAL refuse every later Append with
// kUnavailable naming the cause — it never reports "maybe written": the records of a failed
// batch are reported failed, and Resume() first truncates the segment back to the last synced
// offset, so they cannot reappear at recovery. Resume() then starts a new segment and writes
// again once a write + fsync succeeds.
//
// Thread-safety: all methods may be called concurrently.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "io/file_system.h"
#include "kyrodb/status.h"
#include "storage/wal_record.h"

namespace kyrodb::storage {

enum class FsyncPolicy { kAlways, kData, kNever };

struct WalOptions {
  io::FileSystem* fs = io::FileSystem::Default();
  std::string dir;
  FsyncPolicy policy = FsyncPolicy::kData;
  uint32_t flush_interval_ms = 100;
  uint64_t segment_bytes = 64ull << 20;
};

struct WalStats {
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t syncs = 0;
  uint64_t batches = 0;
  uint64_t segments_created = 0;
  bool writable = true;
};

std::string WalSegmentName(uint64_t seq);
// Parses "wal-<seq>.log"; false for other names.
bool ParseWalSegmentName(std::string_view name, uint64_t* seq);

class Wal {
 public:
  // Starts a new segment `first_segment` whose first record gets `next_lsn`.
  static Result<std::unique_ptr<Wal>> Create(const WalOptions& options, uint64_t first_segment,
                                             Lsn next_lsn);
  ~Wal();

  // Appends one record (its lsn field is assigned here) and returns its LSN once durable per
  // the policy.
  Result<Lsn> Append(const WalRecord& record);
  // Appends a pre-encoded payload.
  Result<Lsn> AppendPayload(RecordType type, std::string_view payload);
  // Appends records in order, in as few group commits as fit (one write + one fsync for up to
  // 8 MiB). On error the records whose LSNs are in *lsns (a prefix) are durable per the
  // policy; the rest are not in the log.
  Status AppendBatch(const std::vector<const WalRecord*>& records, std::vector<Lsn>* lsns);

  // Makes everything appended so far durable.
  Status Sync();
  // kData: fsyncs if something is unsynced and flush_interval_ms has passed since the last sync.
  Status SyncIfDue();
  // Syncs and closes the current segment and starts the next one; returns its sequence number.
  // Records appended after this returns land in the new segment.
  Result<uint64_t> Rotate();
  // After a failure: truncate the failed segment to its durable prefix, start a new segment
  // and re-enable writes if that works. OK (no-op) when healthy.
  Status Resume();
  // Syncs and closes; further appends fail.
  Status Close();

  bool writable() const;
  Lsn last_lsn() const;           // LSN of the last acknowledged record (next_lsn - 1)
  uint64_t current_segment() const;
  WalStats Stats() const;

 private:
  struct Writer;
  explicit Wal(const WalOptions& options);
  Status AppendWriters(Writer* ws, size_t n);
  void LeadBatch(std::unique_lock<std::mutex>& l);  // group commit; called with mu_ held
  Status OpenSegment(uint64_t seq, Lsn first_lsn);  // caller holds file_mu_
  Status SyncLocked();                               // caller holds file_mu_
  void DiscardFailedTail();                          // caller holds file_mu_
  void Fail(const Status& cause);                    // caller holds mu_

  WalOptions opt_;
  mutable std::mutex mu_;  // queue, error, counters
  std::condition_variable cv_;
  std::deque<Writer*> queue_;
  Status error_;  // non-OK: refusing writes
  bool closed_ = false;
  Lsn next_lsn_ = 1;
  WalStats stats_;

  // The leader (one at a time) holds file_mu_ while writing; so do Sync, Rotate, Resume.
  mutable std::mutex file_mu_;
  std::unique_ptr<io::WritableFile> file_;
  uint64_t segment_ = 0;
  uint64_t segment_size_ = 0;
  uint64_t synced_size_ = 0;  // fsynced prefix of the current segment
  uint64_t good_size_ = 0;    // prefix holding only acknowledged records
  bool dirty_ = false;        // bytes written since the last sync
  int64_t last_sync_ms_ = 0;
  std::string buffer_;
};

}  // namespace kyrodb::storage

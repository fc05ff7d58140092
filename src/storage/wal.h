// Wal: the write-ahead log writer. Every mutation is appended here before it is acknowledged.
//
// Segments are files `wal-<20-digit seq>.log` in one directory, rotated at
// options.segment_bytes (format: docs/formats/wal.md). Durability per FsyncPolicy:
//   kAlways: Append returns once the record is fsynced. Concurrent appenders are grouped: the
//            first in line writes the whole queue behind it with one write() and one fdatasync
//            (group commit), then wakes the others.
//   kData:   Append returns once the record is written to the OS; SyncIfDue() (called by the
//            owner's timer) fsyncs so that no record stays unsynced for longer than
//            flush_interval_ms.
//   kNever:  written to the OS; fsync is left to the OS (and to rotation and Close).
// In every policy a record survives a crash of the process once Append returned. Each record
// carries the LSN up to which the log was fsynced when it was written (synced_lsn), so that
// recovery can tell an unsynced torn tail from damage to acknowledged records.
//
// Failure: a failed write or fsync (or ENOSPC) makes the WAL refuse every later Append with
// kUnavailable naming the cause. The records of a failed batch are reported failed and cut
// off the segment (the cut fsynced), so they cannot reappear at recovery. After a failed
// fsync the kernel may have dropped the pages it did not write, so nothing that was not
// synced before is trusted on disk: the records acknowledged since the last good fsync are
// kept in memory, and Resume() cuts the segment back to its last synced offset, writes them
// again into a new segment and fsyncs it before writes are accepted again. The cost is memory:
// the unsynced records of the current segment are kept (under kData about one flush interval of
// writes; under kNever up to one segment, options.segment_bytes).
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
  // kData: fsyncs if a record has been unsynced for flush_interval_ms - slack_ms or longer
  // (the caller polls every slack_ms, so no record waits longer than flush_interval_ms).
  Status SyncIfDue(uint32_t slack_ms = 0);
  // Syncs and closes the current segment and starts the next one; returns its sequence number.
  // Records appended after this returns land in the new segment.
  Result<uint64_t> Rotate();
  // After a failure: cut the failed segment to its synced prefix (fsynced), write the records
  // acknowledged since into a new segment, fsync it and re-enable writes if all of that works.
  // OK (no-op) when healthy.
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
  // Closes the segment, truncates it to `size` and fsyncs the cut; caller holds file_mu_.
  Status CutSegmentLocked(uint64_t size);
  // After a failed write or fsync: cut what cannot be trusted off the segment.
  void AfterFailureLocked(bool sync_failed);         // caller holds file_mu_
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
  // All fields below are guarded by file_mu_.
  mutable std::mutex file_mu_;
  std::unique_ptr<io::WritableFile> file_;  // null after a failure, until Resume
  uint64_t segment_ = 0;
  uint64_t segment_size_ = 0;  // bytes handed to the file (acknowledged records only)
  uint64_t synced_size_ = 0;   // fsynced prefix of the current segment
  Lsn synced_lsn_ = 0;         // every record up to this LSN is fsynced
  Lsn written_lsn_ = 0;        // the last record in the segment
  // The encoded records of the current segment past synced_size_, so that they can be written
  // again after a failed fsync.
  std::string unsynced_;
  int64_t first_unsynced_ms_ = 0;  // when the oldest of them was written
};

}  // namespace kyrodb::storage

// WalSegmentReader: reads the records of one WAL segment for recovery and inspection.
// A bad record is reported with its offset and whether it is *torn*: what a power loss leaves
// in the unsynced tail of a log, as opposed to damage to records that were synced.
//   Version 2: the damage is torn when no intact record after it claims (by its synced_lsn)
//     that the damaged record had been synced. Writeback may leave holes anywhere in an
//     unsynced batch, so the bytes after a torn point may hold intact records too; they are
//     after the gap and are dropped with it.
//   Version 1 (no synced_lsn): torn only when the damage runs to the end of the file
//     (incomplete, or its checksum fails and nothing follows it).
// The caller decides what a torn or bad record means (only a segment's last one can be torn).
// Thread-safety: one thread per reader.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "io/file_system.h"
#include "kyrodb/status.h"
#include "storage/wal_record.h"

namespace kyrodb::storage {

class WalSegmentReader {
 public:
  enum class Outcome { kRecord, kEnd, kBad };

  // Reads the file and checks its header (Corruption if the header is bad or truncated).
  static Result<std::unique_ptr<WalSegmentReader>> Open(io::FileSystem* fs,
                                                        const std::string& path);

  // Next record into *out (with its LSN), or kEnd, or kBad (see reason(), torn(), offset()).
  Outcome Next(WalRecord* out);

  uint64_t segment_seq() const { return seq_; }
  Lsn first_lsn() const { return first_lsn_; }
  uint64_t size() const { return size_; }
  uint64_t good_offset() const { return pos_; }  // end of the last good record
  const std::string& reason() const { return reason_; }
  bool torn() const { return torn_; }
  uint32_t version() const { return version_; }
  // Version 2: the synced_lsn of the last record read.
  Lsn synced_lsn() const { return synced_lsn_; }

 private:
  std::string path_;
  std::unique_ptr<char[]> data_;  // not zero-filled: replay is read-bound
  size_t size_ = 0;
  uint64_t seq_ = 0;
  Lsn first_lsn_ = 0;
  Lsn next_lsn_ = 0;
  size_t pos_ = 0;
  uint32_t version_ = 0;
  size_t header_bytes_ = 0;
  Lsn synced_lsn_ = 0;
  // Version 2: the highest synced_lsn of an intact record at or after `from` (0 if none).
  Lsn HighestSyncedClaimFrom(size_t from) const;
  std::string reason_;
  bool torn_ = false;
};

}  // namespace kyrodb::storage

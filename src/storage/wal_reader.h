// WalSegmentReader: reads the records of one WAL segment for recovery and inspection.
// A bad record is reported with its offset and whether it is *torn* — it runs to the end of the
// file (incomplete, or its checksum fails and nothing follows it), which is what a crash in the
// middle of an append leaves. The caller decides what a torn or bad record means.
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

 private:
  std::string path_;
  std::unique_ptr<char[]> data_;  // not zero-filled: replay is read-bound
  size_t size_ = 0;
  uint64_t seq_ = 0;
  Lsn first_lsn_ = 0;
  Lsn next_lsn_ = 0;
  size_t pos_ = 0;
  std::string reason_;
  bool torn_ = false;
};

}  // namespace kyrodb::storage

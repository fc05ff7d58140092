// Manifest: the one file that says which snapshot is current and where the WAL starts.
//
// File `MANIFEST` in the data directory (format: docs/formats/manifest.md), replaced
// atomically (temp file, fsync, rename, fsync directory). It names the current snapshot and
// the first WAL segment after it, and the previous snapshot with the first WAL segment after
// that one: both generations are kept so that a corrupt newest snapshot can fall back to the
// previous one plus the WAL, losing nothing. Segments are replayed from `wal_first_segment`
// upwards (all `wal-*.log` files with a larger sequence number, which must be contiguous).
// Thread-safety: value type; Write/Read are not synchronized with each other.
#pragma once

#include <cstdint>
#include <string>

#include "io/file_system.h"
#include "kyrodb/status.h"
#include "storage/wal_record.h"

namespace kyrodb::storage {

struct SnapshotRef {
  std::string name;           // directory name under the data dir; empty: none
  Lsn lsn = 0;                // every record with LSN <= lsn is in the snapshot
  uint64_t wal_first_segment = 1;  // first segment to replay after loading this snapshot
  bool empty() const { return name.empty(); }
  bool operator==(const SnapshotRef&) const = default;
};

struct Manifest {
  SnapshotRef current;   // current.wal_first_segment also applies without a snapshot
  SnapshotRef previous;  // fallback generation; wal_first_segment == 0: there is none

  static constexpr const char* kFileName = "MANIFEST";
  Status Write(io::FileSystem* fs, const std::string& dir) const;
  static Result<Manifest> Read(io::FileSystem* fs, const std::string& dir);
  bool operator==(const Manifest&) const = default;
};

}  // namespace kyrodb::storage

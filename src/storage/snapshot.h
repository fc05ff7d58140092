// Snapshots: a directory of files that together hold the state as of an LSN.
//
// `snapshot-<20-digit lsn>/` in the data directory holds whatever files the state machine
// writes (documents, id maps, HNSW graphs, ...) plus `SNAPSHOT`, an index that lists each file
// with its size and CRC32C (format: docs/formats/snapshot.md). A snapshot is built in
// `snapshot-<lsn>.tmp/`; Commit() fsyncs every file, reads every file back to compute and check
// its checksum (the verification that must pass before older generations may be deleted),
// writes the index, renames the directory into place and fsyncs the data directory.
// Thread-safety: one thread per writer/reader object.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/file_system.h"
#include "kyrodb/status.h"
#include "storage/wal_record.h"

namespace kyrodb::storage {

std::string SnapshotDirName(Lsn lsn);
bool ParseSnapshotDirName(std::string_view name, Lsn* lsn);

// Deletes a directory and the files in it (one level).
Status RemoveDirRecursively(io::FileSystem* fs, const std::string& dir);

class SnapshotWriter {
 public:
  static Result<std::unique_ptr<SnapshotWriter>> Begin(io::FileSystem* fs,
                                                       const std::string& data_dir, Lsn lsn);
  ~SnapshotWriter();

  io::FileSystem* fs() const { return fs_; }
  Lsn lsn() const { return lsn_; }
  // Path at which to write file `name` (a plain name, no '/'); the caller writes it through
  // fs(). Registers the name for the index.
  Result<std::string> PathFor(const std::string& name);
  // Convenience: PathFor + NewWritableFile.
  Result<std::unique_ptr<io::WritableFile>> NewFile(const std::string& name);
  // Returns the final directory name.
  Result<std::string> Commit();

 private:
  SnapshotWriter(io::FileSystem* fs, std::string data_dir, Lsn lsn);
  io::FileSystem* fs_;
  std::string data_dir_, tmp_dir_;
  Lsn lsn_;
  std::vector<std::string> names_;
  bool committed_ = false;
};

class SnapshotReader {
 public:
  struct FileInfo {
    std::string name;
    uint64_t size;
    uint32_t crc;
  };
  // Reads the index; with verify, reads every file and checks size and checksum.
  static Result<std::unique_ptr<SnapshotReader>> Open(io::FileSystem* fs,
                                                      const std::string& data_dir,
                                                      const std::string& name, bool verify);
  io::FileSystem* fs() const { return fs_; }
  Lsn lsn() const { return lsn_; }
  const std::vector<FileInfo>& files() const { return files_; }
  bool Has(const std::string& name) const;
  std::string PathOf(const std::string& name) const;

 private:
  io::FileSystem* fs_ = nullptr;
  std::string dir_;
  Lsn lsn_ = 0;
  std::vector<FileInfo> files_;
};

// CRC32C and size of a whole file, read sequentially.
Status ChecksumFile(io::FileSystem* fs, const std::string& path, uint64_t* size, uint32_t* crc);

}  // namespace kyrodb::storage

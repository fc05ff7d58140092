// The file-system interface every KyroDB storage path goes through, so tests can put a
// fault-injecting layer on top of the real POSIX one.
//
// Thread-safety: a FileSystem may be used from any thread; a file object belongs to one
// thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kyrodb/status.h"

namespace kyrodb::io {

// Append-only file. Data is durable only after Sync() returned OK.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(const void* data, size_t n) = 0;
  virtual Status Flush() = 0;  // hands buffered bytes to the OS
  virtual Status Sync() = 0;   // Flush() + fdatasync
  virtual Status Close() = 0;  // Flush() + close; no Sync
};

// Forward-only reader.
class SequentialFile {
 public:
  virtual ~SequentialFile() = default;
  // Reads up to n bytes; returns how many were read (0 only at end of file).
  virtual Result<size_t> Read(void* buf, size_t n) = 0;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates or truncates `path`.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens `path` for appending at its end, creating it if missing.
  virtual Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) = 0;
  virtual Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) = 0;
  virtual Result<uint64_t> FileSize(const std::string& path) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Remove(const std::string& path) = 0;
  virtual Status SyncDir(const std::string& dir) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // Creates one directory level; OK if it already exists.
  virtual Status CreateDir(const std::string& dir) = 0;
  // Removes an empty directory.
  virtual Status RemoveDir(const std::string& dir) = 0;
  // Names (not paths) of the entries of `dir`, without "." and "..", sorted.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  // Cuts `path` to `size` bytes.
  virtual Status Truncate(const std::string& path, uint64_t size) = 0;

  // The process-wide POSIX file system.
  static FileSystem* Default();
};

// Writes `path` atomically: the producer appends to a temporary file, which is synced,
// renamed over `path`, and the directory synced. Either the old or the new file survives a
// crash, never a mix.
class AtomicFileWriter {
 public:
  static Result<AtomicFileWriter> Open(FileSystem* fs, std::string path);
  WritableFile* file() { return file_.get(); }
  Status Commit();  // sync, rename, sync directory
  ~AtomicFileWriter();
  AtomicFileWriter(AtomicFileWriter&&) = default;

 private:
  AtomicFileWriter(FileSystem* fs, std::string path, std::unique_ptr<WritableFile> f);
  FileSystem* fs_;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
  bool committed_ = false;
};

// The directory part of a path ("a/b/c" -> "a/b", "c" -> ".").
std::string DirName(const std::string& path);
// Joins a directory and a name with one '/'.
std::string JoinPath(const std::string& dir, const std::string& name);

// The whole file; Corruption ("implausible size") if it is larger than max_bytes.
Result<std::string> ReadFileToString(FileSystem* fs, const std::string& path,
                                     uint64_t max_bytes = UINT64_MAX);

// Reads exactly n bytes or fails with Corruption("... truncated") naming `what`.
Status ReadExactly(SequentialFile* f, void* buf, size_t n, const char* what);

}  // namespace kyrodb::io

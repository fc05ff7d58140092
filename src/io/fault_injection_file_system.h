// FaultInjectionFileSystem: a FileSystem for storage tests (WAL, snapshots, manifest) that
// forwards to a real one and can make it fail the way disks fail: the n-th append or sync
// returns an error, the disk is full (ENOSPC), an append is cut short, or the machine loses
// power and every byte and directory entry that was not made durable disappears.
//
// Durability model used by SimulatePowerLoss():
//  - File data is durable up to the size it had at its last successful Sync().
//  - A file created through this wrapper exists only after a SyncDir() of its directory.
//  - A Rename() is durable only after a SyncDir() of the target's directory; until then power
//    loss moves the file back to its old name and restores the replaced target (its durable
//    bytes, kept in memory at rename time).
//  - Remove(), Truncate() to a smaller size, CreateDir() and RemoveDir() are durable at once;
//    NewWritableFile() on an existing file drops its content durably.
//  - Files never written through the wrapper are durable as they are.
// After SimulatePowerLoss() the wrapper keeps working like a restarted machine; files opened
// before it fail every call with IoError.
//
// Fault injection applies to WritableFile::Append and WritableFile::Sync only (SyncDir and the
// other FileSystem calls always forward). Flush and Close are forwarded unchanged.
//
// Thread-safety: every method may be called from any thread. One mutex serialises all calls,
// including the forwarded file I/O (this is a test tool; it trades speed for simple
// reasoning). A file object still belongs to one thread at a time, as for any FileSystem.
// Files opened through the wrapper must be destroyed before it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "io/file_system.h"

namespace kyrodb::io {

class FaultInjectionWritableFile;

class FaultInjectionFileSystem final : public FileSystem {
 public:
  // `base` (usually FileSystem::Default()) must outlive this object.
  explicit FaultInjectionFileSystem(FileSystem* base);
  ~FaultInjectionFileSystem() override;
  FaultInjectionFileSystem(const FaultInjectionFileSystem&) = delete;
  FaultInjectionFileSystem& operator=(const FaultInjectionFileSystem&) = delete;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override;
  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override;
  Result<uint64_t> FileSize(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Remove(const std::string& path) override;
  Status SyncDir(const std::string& dir) override;
  bool Exists(const std::string& path) override;
  Status CreateDir(const std::string& dir) override;
  Status RemoveDir(const std::string& dir) override;
  Result<std::vector<std::string>> ListDir(const std::string& dir) override;
  Status Truncate(const std::string& path, uint64_t size) override;

  // The n-th Append (1-based, counting from this call) on any file returns `s` (not OK)
  // without writing; later appends succeed again. n == 0 disarms.
  void FailNthWrite(uint64_t n, Status s);
  // The same for Sync: the n-th one returns `s` without flushing or syncing.
  void FailNthSync(uint64_t n, Status s);
  // While set, every Sync returns IoError without syncing.
  void SetFailAllSyncs(bool fail);
  // While set, Append returns ResourceExhausted("... No space left on device") and writes
  // nothing; Flush and Sync of bytes appended earlier still work.
  void SetNoSpace(bool no_space);
  // The next Append hands only the first half of its bytes to the base file, then returns
  // IoError.
  void ShortWriteNextAppend();

  // Cuts every file back to what was durable (see the model above) and invalidates open files.
  Status SimulatePowerLoss();

  // Calls to WritableFile::Sync / Append through this wrapper, failed ones included.
  uint64_t syncs() const;
  uint64_t appends() const;

 private:
  friend class FaultInjectionWritableFile;

  // What is known about one file written through the wrapper; shared with its open files,
  // so it follows the file across renames.
  struct FileState {
    uint64_t size = 0;         // bytes appended so far (including ones still buffered)
    uint64_t synced_size = 0;  // size at the last successful Sync
  };
  // A rename not yet made durable by SyncDir of DirName(to).
  struct PendingRename {
    std::string from, to;
    bool replaced_durable_file = false;  // `to` durably existed before the rename...
    std::string replaced_content;        // ...with these bytes
  };

  Result<std::unique_ptr<WritableFile>> OpenLocked(const std::string& path, bool append);
  Status UndoRenameLocked(const PendingRename& r);
  void MoveTrackingLocked(const std::string& from, const std::string& to);

  FileSystem* const base_;
  mutable std::mutex mu_;
  // All fields below are guarded by mu_.
  uint64_t write_countdown_ = 0;  // the Append that takes it to 0 fails
  Status write_failure_;
  uint64_t sync_countdown_ = 0;
  Status sync_failure_;
  bool fail_all_syncs_ = false;
  bool no_space_ = false;
  bool short_write_next_ = false;
  uint64_t syncs_ = 0;
  uint64_t appends_ = 0;
  std::map<std::string, std::shared_ptr<FileState>> files_;  // by path
  std::set<std::string> created_;  // paths created since their directory's last SyncDir
  std::vector<PendingRename> pending_renames_;  // oldest first
  std::set<FaultInjectionWritableFile*> open_files_;
};

}  // namespace kyrodb::io

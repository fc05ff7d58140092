// FaultInjectionFileSystem: a FileSystem for storage tests (WAL, snapshots, manifest) that
// forwards to a real one and can make it fail the way disks fail: the n-th append or sync
// returns an error, the disk is full (ENOSPC), an append is cut short, a failed fsync loses
// the pages it did not write, or the machine loses power and every byte and directory entry
// that was not made durable disappears.
//
// Durability model used by SimulatePowerLoss():
//  - File data is durable as of its last successful Sync(): the bytes it had then come back,
//    whatever was appended, truncated or rewritten (NewWritableFile on an existing file)
//    since. With torn_writeback, the unsynced tail is not cut off cleanly: each 4 KiB page of
//    it may survive or read as zeros, and the file may end at any page boundary of it (what
//    writeback of one large unsynced write() leaves).
//  - Directory entries are durable only after a SyncDir() of their directory: creating a file
//    or a directory, Remove(), RemoveDir() and Rename() (durable with the target's directory)
//    are undone at power loss until then, newest first. An unsynced Remove() brings the file
//    back with its durable bytes; an unsynced Rename() moves the file back and restores the
//    file it replaced.
//  - Files and directories never touched through the wrapper are durable as they are.
// After SimulatePowerLoss() files opened before it fail every call with IoError; with
// stay_down every call fails until Restart() (no process writes to a machine without power),
// otherwise the wrapper goes on like a restarted machine.
//
// Fault injection applies to WritableFile::Append and WritableFile::Sync (SyncDir and the
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
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "io/file_system.h"

namespace kyrodb::io {

class FaultInjectionWritableFile;

struct PowerLossOptions {
  bool torn_writeback = false;  // see the model above
  uint64_t seed = 0;            // chooses the surviving pages with torn_writeback
  bool stay_down = false;       // every call fails until Restart()
};

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
  // While set, a Sync that fails (injected) also loses the file's unsynced bytes: they read
  // as zeros from then on, and a later successful Sync makes those zeros durable — what Linux
  // does after fdatasync reports EIO (the dirty pages are dropped, the error is reported once).
  void SetFailedSyncDropsUnsynced(bool drop);
  // While set, Append returns ResourceExhausted("... No space left on device") and writes
  // nothing; Flush and Sync of bytes appended earlier still work.
  void SetNoSpace(bool no_space);
  // The next Append hands only the first half of its bytes to the base file, then returns
  // IoError.
  void ShortWriteNextAppend();

  // Cuts every file back to what was durable (see the model above) and invalidates open files.
  Status SimulatePowerLoss(const PowerLossOptions& options = {});
  // Ends stay_down.
  void Restart();

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
    // Set when the base file no longer starts with its durable bytes (truncated or
    // rewritten since the last Sync): those bytes.
    std::optional<std::string> durable;
  };
  // A directory-entry change not yet made durable by SyncDir(dir).
  struct Undo {
    enum Kind { kCreateFile, kRemoveFile, kRename, kCreateDir, kRemoveDir } kind;
    std::string dir;        // whose SyncDir makes the change durable
    std::string path, to;   // to: kRename only
    bool restore = false;   // kRemoveFile, kRename: bring `content` back at `path` / `to`
    std::string content;
  };

  Result<std::unique_ptr<WritableFile>> OpenLocked(const std::string& path, bool append);
  Result<std::string> DurableContentLocked(const std::string& path);
  Status UndoLocked(const Undo& u);
  Status RemoveTreeLocked(const std::string& path);
  void MoveTrackingLocked(const std::string& from, const std::string& to);
  void ForgetTrackingLocked(const std::string& path);  // the path and everything under it
  Status DownLocked() const;

  FileSystem* const base_;
  mutable std::mutex mu_;
  // All fields below are guarded by mu_.
  uint64_t write_countdown_ = 0;  // the Append that takes it to 0 fails
  Status write_failure_;
  uint64_t sync_countdown_ = 0;
  Status sync_failure_;
  bool fail_all_syncs_ = false;
  bool failed_sync_drops_ = false;
  bool no_space_ = false;
  bool short_write_next_ = false;
  bool down_ = false;
  uint64_t syncs_ = 0;
  uint64_t appends_ = 0;
  std::map<std::string, std::shared_ptr<FileState>> files_;  // by path
  std::vector<Undo> undo_;  // oldest first
  std::set<FaultInjectionWritableFile*> open_files_;
};

}  // namespace kyrodb::io

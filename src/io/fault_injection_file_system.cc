#include "io/fault_injection_file_system.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "base/check.h"

namespace kyrodb::io {
namespace {

// "a/b/" and "a/b" name the same directory; "" is the current one.
std::string NormalizeDir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir.empty() ? "." : dir;
}

Status Invalidated(const std::string& path) {
  return Status::IoError(path + ": file handle lost in simulated power loss");
}

// Reads the first `limit` bytes of `path` through `fs`.
Result<std::string> ReadPrefix(FileSystem* fs, const std::string& path, uint64_t limit) {
  auto f = fs->NewSequentialFile(path);
  if (!f.ok()) return f.status();
  std::string out;
  char buf[64 * 1024];
  while (out.size() < limit) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof(buf), limit - out.size()));
    auto r = (*f)->Read(buf, want);
    if (!r.ok()) return r.status();
    if (*r == 0) break;
    out.append(buf, *r);
  }
  return out;
}

Status WriteDurably(FileSystem* fs, const std::string& path, const std::string& content) {
  auto f = fs->NewWritableFile(path);
  if (!f.ok()) return f.status();
  KYRODB_RETURN_IF_ERROR((*f)->Append(content.data(), content.size()));
  KYRODB_RETURN_IF_ERROR((*f)->Sync());
  return (*f)->Close();
}

}  // namespace

// Forwards to the base file under the file system's mutex, injecting faults and tracking
// how much of the file is durable.
class FaultInjectionWritableFile final : public WritableFile {
 public:
  FaultInjectionWritableFile(FaultInjectionFileSystem* fs, std::string path,
                             std::unique_ptr<WritableFile> base,
                             std::shared_ptr<FaultInjectionFileSystem::FileState> state)
      : fs_(fs), path_(std::move(path)), base_(std::move(base)), state_(std::move(state)) {}

  ~FaultInjectionWritableFile() override {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    fs_->open_files_.erase(this);
    base_.reset();  // may flush buffered bytes: do it under the lock, like every other write
  }

  Status Append(const void* data, size_t n) override {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    if (lost_) return Invalidated(path_);
    ++fs_->appends_;
    if (fs_->write_countdown_ > 0 && --fs_->write_countdown_ == 0) return fs_->write_failure_;
    if (fs_->no_space_) {
      return Status::ResourceExhausted("append " + path_ + ": No space left on device");
    }
    if (fs_->short_write_next_) {
      fs_->short_write_next_ = false;
      size_t half = n / 2;
      KYRODB_RETURN_IF_ERROR(base_->Append(data, half));
      state_->size += half;
      return Status::IoError("append " + path_ + ": short write (" + std::to_string(half) + " of " +
                             std::to_string(n) + " bytes)");
    }
    KYRODB_RETURN_IF_ERROR(base_->Append(data, n));
    state_->size += n;
    return Status::Ok();
  }

  Status Flush() override {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    if (lost_) return Invalidated(path_);
    return base_->Flush();
  }

  Status Sync() override {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    if (lost_) return Invalidated(path_);
    ++fs_->syncs_;
    if (fs_->sync_countdown_ > 0 && --fs_->sync_countdown_ == 0) return fs_->sync_failure_;
    if (fs_->fail_all_syncs_) return Status::IoError("fdatasync " + path_ + ": injected failure");
    KYRODB_RETURN_IF_ERROR(base_->Sync());
    state_->synced_size = state_->size;
    return Status::Ok();
  }

  Status Close() override {
    std::lock_guard<std::mutex> lock(fs_->mu_);
    if (lost_) return Invalidated(path_);
    return base_->Close();
  }

  // Power loss: hands buffered bytes to the OS (they are cut off right after) and makes
  // every later call fail. Called with fs_->mu_ held.
  void LosePowerLocked() {
    base_->Close().IgnoreError();
    lost_ = true;
  }

 private:
  FaultInjectionFileSystem* const fs_;
  const std::string path_;
  std::unique_ptr<WritableFile> base_;
  // Guarded by fs_->mu_.
  std::shared_ptr<FaultInjectionFileSystem::FileState> state_;
  bool lost_ = false;
};

FaultInjectionFileSystem::FaultInjectionFileSystem(FileSystem* base) : base_(base) {}

FaultInjectionFileSystem::~FaultInjectionFileSystem() {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_CHECK(open_files_.empty());  // files must not outlive their file system
}

Result<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::NewWritableFile(
    const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return OpenLocked(path, /*append=*/false);
}

Result<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::NewAppendableFile(
    const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return OpenLocked(path, /*append=*/true);
}

Result<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::OpenLocked(const std::string& path,
                                                                           bool append) {
  bool existed = base_->Exists(path);
  auto f = append ? base_->NewAppendableFile(path) : base_->NewWritableFile(path);
  if (!f.ok()) return f.status();
  uint64_t size = 0;
  if (append && existed) {
    auto s = base_->FileSize(path);
    if (!s.ok()) return s.status();
    size = *s;
  }
  std::shared_ptr<FileState>& state = files_[path];
  if (state == nullptr) {
    // First write through the wrapper: what is already there is durable.
    state = std::make_shared<FileState>();
    state->synced_size = size;
  }
  state->size = size;
  if (!append) state->synced_size = 0;
  if (!existed) created_.insert(path);
  auto file = std::make_unique<FaultInjectionWritableFile>(this, path, std::move(f).value(), state);
  open_files_.insert(file.get());
  return std::unique_ptr<WritableFile>(std::move(file));
}

Result<std::unique_ptr<SequentialFile>> FaultInjectionFileSystem::NewSequentialFile(
    const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return base_->NewSequentialFile(path);
}

Result<uint64_t> FaultInjectionFileSystem::FileSize(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return base_->FileSize(path);
}

Status FaultInjectionFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  PendingRename r{from, to, false, {}};
  if (from != to && base_->Exists(to) && created_.count(to) == 0) {
    // Keep the durable bytes of the file being replaced so power loss can bring it back.
    auto it = files_.find(to);
    uint64_t limit = it == files_.end() ? UINT64_MAX : it->second->synced_size;
    auto content = ReadPrefix(base_, to, limit);
    if (!content.ok()) return content.status();
    r.replaced_durable_file = true;
    r.replaced_content = std::move(content).value();
  }
  KYRODB_RETURN_IF_ERROR(base_->Rename(from, to));
  if (from == to) return Status::Ok();
  MoveTrackingLocked(from, to);
  pending_renames_.push_back(std::move(r));
  return Status::Ok();
}

// Moves what is known about `from` to `to`, replacing what was known about `to`.
void FaultInjectionFileSystem::MoveTrackingLocked(const std::string& from, const std::string& to) {
  auto it = files_.find(from);
  if (it != files_.end()) {
    files_[to] = std::move(it->second);
    files_.erase(from);
  } else {
    files_.erase(to);
  }
  if (created_.erase(from) != 0) {
    created_.insert(to);
  } else {
    created_.erase(to);
  }
}

Status FaultInjectionFileSystem::UndoRenameLocked(const PendingRename& r) {
  if (base_->Exists(r.to)) {
    KYRODB_RETURN_IF_ERROR(base_->Rename(r.to, r.from));
    MoveTrackingLocked(r.to, r.from);
  }
  if (r.replaced_durable_file) {
    KYRODB_RETURN_IF_ERROR(WriteDurably(base_, r.to, r.replaced_content));
    files_.erase(r.to);
    created_.erase(r.to);
  }
  return Status::Ok();
}

Status FaultInjectionFileSystem::Remove(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(base_->Remove(path));
  files_.erase(path);
  created_.erase(path);
  return Status::Ok();
}

Status FaultInjectionFileSystem::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(base_->SyncDir(dir));
  std::string d = NormalizeDir(dir);
  std::erase_if(created_, [&](const std::string& p) { return DirName(p) == d; });
  std::erase_if(pending_renames_, [&](const PendingRename& r) { return DirName(r.to) == d; });
  return Status::Ok();
}

bool FaultInjectionFileSystem::Exists(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return base_->Exists(path);
}

Status FaultInjectionFileSystem::CreateDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  return base_->CreateDir(dir);
}

Status FaultInjectionFileSystem::RemoveDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  return base_->RemoveDir(dir);
}

Result<std::vector<std::string>> FaultInjectionFileSystem::ListDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  return base_->ListDir(dir);
}

Status FaultInjectionFileSystem::Truncate(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(base_->Truncate(path, size));
  auto it = files_.find(path);
  if (it != files_.end()) {
    it->second->size = size;
    it->second->synced_size = std::min(it->second->synced_size, size);
  }
  return Status::Ok();
}

void FaultInjectionFileSystem::FailNthWrite(uint64_t n, Status s) {
  KYRODB_CHECK(n == 0 || !s.ok());
  std::lock_guard<std::mutex> lock(mu_);
  write_countdown_ = n;
  write_failure_ = std::move(s);
}

void FaultInjectionFileSystem::FailNthSync(uint64_t n, Status s) {
  KYRODB_CHECK(n == 0 || !s.ok());
  std::lock_guard<std::mutex> lock(mu_);
  sync_countdown_ = n;
  sync_failure_ = std::move(s);
}

void FaultInjectionFileSystem::SetFailAllSyncs(bool fail) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_all_syncs_ = fail;
}

void FaultInjectionFileSystem::SetNoSpace(bool no_space) {
  std::lock_guard<std::mutex> lock(mu_);
  no_space_ = no_space;
}

void FaultInjectionFileSystem::ShortWriteNextAppend() {
  std::lock_guard<std::mutex> lock(mu_);
  short_write_next_ = true;
}

Status FaultInjectionFileSystem::SimulatePowerLoss() {
  std::lock_guard<std::mutex> lock(mu_);
  for (FaultInjectionWritableFile* f : open_files_) f->LosePowerLocked();
  // Newest first, so a chain a -> b -> c unwinds to a.
  for (auto r = pending_renames_.rbegin(); r != pending_renames_.rend(); ++r) {
    KYRODB_RETURN_IF_ERROR(UndoRenameLocked(*r));
  }
  pending_renames_.clear();
  for (const std::string& path : created_) {
    if (base_->Exists(path)) KYRODB_RETURN_IF_ERROR(base_->Remove(path));
    files_.erase(path);
  }
  created_.clear();
  for (const auto& [path, state] : files_) {
    if (!base_->Exists(path)) continue;
    auto size = base_->FileSize(path);
    if (!size.ok()) return size.status();
    if (*size > state->synced_size) {
      KYRODB_RETURN_IF_ERROR(base_->Truncate(path, state->synced_size));
    }
  }
  files_.clear();  // what survived is durable
  return Status::Ok();
}

uint64_t FaultInjectionFileSystem::syncs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return syncs_;
}

uint64_t FaultInjectionFileSystem::appends() const {
  std::lock_guard<std::mutex> lock(mu_);
  return appends_;
}

}  // namespace kyrodb::io

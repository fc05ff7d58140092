#include "io/fault_injection_file_system.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>

#include "base/check.h"

namespace kyrodb::io {
namespace {

constexpr uint64_t kPageBytes = 4096;

// "a/b/" and "a/b" name the same directory; "" is the current one.
std::string NormalizeDir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir.empty() ? "." : dir;
}

Status Invalidated(const std::string& path) {
  return Status::IoError(path + ": file handle lost in simulated power loss");
}

bool IsUnder(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
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

// Appends `n` zero bytes to `path`.
Status AppendZeros(FileSystem* fs, const std::string& path, uint64_t n) {
  auto f = fs->NewAppendableFile(path);
  if (!f.ok()) return f.status();
  const std::string zeros(static_cast<size_t>(std::min<uint64_t>(n, 1 << 20)), '\0');
  while (n > 0) {
    const size_t k = static_cast<size_t>(std::min<uint64_t>(n, zeros.size()));
    KYRODB_RETURN_IF_ERROR((*f)->Append(zeros.data(), k));
    n -= k;
  }
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
    Status failure;
    if (fs_->sync_countdown_ > 0 && --fs_->sync_countdown_ == 0) failure = fs_->sync_failure_;
    if (failure.ok() && fs_->fail_all_syncs_) {
      failure = Status::IoError("fdatasync " + path_ + ": injected failure");
    }
    if (!failure.ok()) {
      if (fs_->failed_sync_drops_) DropUnsyncedLocked().IgnoreError();
      return failure;
    }
    KYRODB_RETURN_IF_ERROR(base_->Sync());
    state_->synced_size = state_->size;
    state_->durable.reset();
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
  // The pages behind the unsynced bytes are gone: they read as zeros. The file keeps its
  // size, and this handle keeps appending at its end.
  Status DropUnsyncedLocked() {
    KYRODB_RETURN_IF_ERROR(base_->Flush());
    const uint64_t from = state_->durable ? 0 : state_->synced_size;
    if (state_->size <= from) return Status::Ok();
    KYRODB_RETURN_IF_ERROR(fs_->base_->Truncate(path_, from));
    return AppendZeros(fs_->base_, path_, state_->size - from);
  }

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

Status FaultInjectionFileSystem::DownLocked() const {
  return down_ ? Status::IoError("simulated power loss: the machine is down") : Status::Ok();
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

Result<std::string> FaultInjectionFileSystem::DurableContentLocked(const std::string& path) {
  auto it = files_.find(path);
  if (it == files_.end()) return ReadPrefix(base_, path, UINT64_MAX);
  if (it->second->durable) return *it->second->durable;
  return ReadPrefix(base_, path, it->second->synced_size);
}

Result<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::OpenLocked(const std::string& path,
                                                                           bool append) {
  KYRODB_RETURN_IF_ERROR(DownLocked());
  const bool existed = base_->Exists(path);
  std::optional<std::string> durable_before_truncate;
  if (existed && !append) {
    auto it = files_.find(path);
    if (it == files_.end() || !it->second->durable) {
      auto d = DurableContentLocked(path);
      if (!d.ok()) return d.status();
      durable_before_truncate = std::move(d).value();
    }
  }
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
  if (durable_before_truncate) state->durable = std::move(durable_before_truncate);
  if (!existed) {
    state->synced_size = 0;
    undo_.push_back(Undo{Undo::kCreateFile, NormalizeDir(DirName(path)), path, {}, false, {}});
  }
  auto file = std::make_unique<FaultInjectionWritableFile>(this, path, std::move(f).value(), state);
  open_files_.insert(file.get());
  return std::unique_ptr<WritableFile>(std::move(file));
}

Result<std::unique_ptr<SequentialFile>> FaultInjectionFileSystem::NewSequentialFile(
    const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  return base_->NewSequentialFile(path);
}

Result<uint64_t> FaultInjectionFileSystem::FileSize(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  return base_->FileSize(path);
}

Status FaultInjectionFileSystem::Rename(const std::string& from, const std::string& to) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  Undo u{Undo::kRename, NormalizeDir(DirName(to)), from, to, false, {}};
  if (from != to && base_->Exists(to)) {
    if (base_->ListDir(to).ok()) {
      return Status::NotSupported("fault injection: rename over directory " + to);
    }
    // Keep the durable bytes of the file being replaced so power loss can bring it back.
    auto content = DurableContentLocked(to);
    if (!content.ok()) return content.status();
    u.restore = true;
    u.content = std::move(content).value();
  }
  KYRODB_RETURN_IF_ERROR(base_->Rename(from, to));
  if (from == to) return Status::Ok();
  MoveTrackingLocked(from, to);
  undo_.push_back(std::move(u));
  return Status::Ok();
}

// Moves what is known about `from` (a file, or a directory and what is under it) to `to`,
// replacing what was known about `to`.
void FaultInjectionFileSystem::MoveTrackingLocked(const std::string& from, const std::string& to) {
  ForgetTrackingLocked(to);
  std::vector<std::pair<std::string, std::shared_ptr<FileState>>> moved;
  for (auto it = files_.begin(); it != files_.end();) {
    if (IsUnder(it->first, from)) {
      moved.emplace_back(to + it->first.substr(from.size()), std::move(it->second));
      it = files_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [path, state] : moved) files_[path] = std::move(state);
}

void FaultInjectionFileSystem::ForgetTrackingLocked(const std::string& path) {
  std::erase_if(files_, [&](const auto& kv) { return IsUnder(kv.first, path); });
}

Status FaultInjectionFileSystem::Remove(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  Undo u{Undo::kRemoveFile, NormalizeDir(DirName(path)), path, {}, true, {}};
  if (base_->Exists(path)) {
    auto content = DurableContentLocked(path);
    if (!content.ok()) return content.status();
    u.content = std::move(content).value();
  } else {
    u.restore = false;
  }
  KYRODB_RETURN_IF_ERROR(base_->Remove(path));
  ForgetTrackingLocked(path);
  if (u.restore) undo_.push_back(std::move(u));
  return Status::Ok();
}

Status FaultInjectionFileSystem::SyncDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  KYRODB_RETURN_IF_ERROR(base_->SyncDir(dir));
  const std::string d = NormalizeDir(dir);
  std::erase_if(undo_, [&](const Undo& u) { return u.dir == d; });
  return Status::Ok();
}

bool FaultInjectionFileSystem::Exists(const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  return !down_ && base_->Exists(path);
}

Status FaultInjectionFileSystem::CreateDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  const bool existed = base_->Exists(dir);
  KYRODB_RETURN_IF_ERROR(base_->CreateDir(dir));
  if (!existed) {
    const std::string d = NormalizeDir(dir);
    undo_.push_back(Undo{Undo::kCreateDir, NormalizeDir(DirName(d)), d, {}, false, {}});
  }
  return Status::Ok();
}

Status FaultInjectionFileSystem::RemoveDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  KYRODB_RETURN_IF_ERROR(base_->RemoveDir(dir));
  const std::string d = NormalizeDir(dir);
  undo_.push_back(Undo{Undo::kRemoveDir, NormalizeDir(DirName(d)), d, {}, false, {}});
  return Status::Ok();
}

Result<std::vector<std::string>> FaultInjectionFileSystem::ListDir(const std::string& dir) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  return base_->ListDir(dir);
}

Status FaultInjectionFileSystem::Truncate(const std::string& path, uint64_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  KYRODB_RETURN_IF_ERROR(DownLocked());
  std::shared_ptr<FileState>& state = files_[path];
  if (state == nullptr) {
    auto current = base_->FileSize(path);
    if (!current.ok()) {
      files_.erase(path);
      return current.status();
    }
    state = std::make_shared<FileState>();
    state->size = state->synced_size = *current;
  }
  if (size < state->synced_size && !state->durable) {
    // Until the file is synced, power loss brings the cut bytes back.
    auto d = ReadPrefix(base_, path, state->synced_size);
    if (!d.ok()) return d.status();
    state->durable = std::move(d).value();
  }
  KYRODB_RETURN_IF_ERROR(base_->Truncate(path, size));
  state->size = size;
  return Status::Ok();
}

Status FaultInjectionFileSystem::RemoveTreeLocked(const std::string& path) {
  auto names = base_->ListDir(path);
  if (!names.ok()) return base_->Remove(path);  // a file
  for (const auto& n : *names) KYRODB_RETURN_IF_ERROR(RemoveTreeLocked(JoinPath(path, n)));
  return base_->RemoveDir(path);
}

Status FaultInjectionFileSystem::UndoLocked(const Undo& u) {
  switch (u.kind) {
    case Undo::kCreateFile:
    case Undo::kCreateDir:
      if (base_->Exists(u.path)) KYRODB_RETURN_IF_ERROR(RemoveTreeLocked(u.path));
      ForgetTrackingLocked(u.path);
      return Status::Ok();
    case Undo::kRemoveFile:
      ForgetTrackingLocked(u.path);
      return WriteDurably(base_, u.path, u.content);
    case Undo::kRemoveDir:
      return base_->CreateDir(u.path);
    case Undo::kRename:
      if (base_->Exists(u.to)) {
        KYRODB_RETURN_IF_ERROR(base_->Rename(u.to, u.path));
        MoveTrackingLocked(u.to, u.path);
      }
      if (u.restore) {
        KYRODB_RETURN_IF_ERROR(WriteDurably(base_, u.to, u.content));
        ForgetTrackingLocked(u.to);
      }
      return Status::Ok();
  }
  return Status::Internal("unknown undo entry");
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

void FaultInjectionFileSystem::SetFailedSyncDropsUnsynced(bool drop) {
  std::lock_guard<std::mutex> lock(mu_);
  failed_sync_drops_ = drop;
}

void FaultInjectionFileSystem::SetNoSpace(bool no_space) {
  std::lock_guard<std::mutex> lock(mu_);
  no_space_ = no_space;
}

void FaultInjectionFileSystem::ShortWriteNextAppend() {
  std::lock_guard<std::mutex> lock(mu_);
  short_write_next_ = true;
}

Status FaultInjectionFileSystem::SimulatePowerLoss(const PowerLossOptions& options) {
  std::lock_guard<std::mutex> lock(mu_);
  for (FaultInjectionWritableFile* f : open_files_) f->LosePowerLocked();
  // Newest first, so a chain a -> b -> c unwinds to a, and a file created in a directory
  // created after the last sync goes with it.
  for (auto u = undo_.rbegin(); u != undo_.rend(); ++u) KYRODB_RETURN_IF_ERROR(UndoLocked(*u));
  undo_.clear();
  std::mt19937_64 rng(options.seed);
  for (const auto& [path, state] : files_) {
    if (!base_->Exists(path)) continue;
    if (state->durable) {
      KYRODB_RETURN_IF_ERROR(WriteDurably(base_, path, *state->durable));
      continue;
    }
    auto size = base_->FileSize(path);
    if (!size.ok()) return size.status();
    if (*size <= state->synced_size) continue;
    if (!options.torn_writeback) {
      KYRODB_RETURN_IF_ERROR(base_->Truncate(path, state->synced_size));
      continue;
    }
    // Writeback got to some pages of the unsynced tail and not to others.
    auto content = ReadPrefix(base_, path, *size);
    if (!content.ok()) return content.status();
    std::string c = std::move(content).value();
    const uint64_t first_page = state->synced_size / kPageBytes;
    const uint64_t pages = (c.size() + kPageBytes - 1) / kPageBytes - first_page;
    const uint64_t end = std::max<uint64_t>(
        state->synced_size,
        std::min<uint64_t>(c.size(), (first_page + std::uniform_int_distribution<uint64_t>(
                                                        0, pages)(rng)) * kPageBytes));
    c.resize(end);
    for (uint64_t p = first_page; p * kPageBytes < end; ++p) {
      if (rng() % 2 == 0) continue;  // this page was written back
      const uint64_t from = std::max(p * kPageBytes, state->synced_size);
      const uint64_t to = std::min(end, (p + 1) * kPageBytes);
      if (to > from) std::fill(c.begin() + static_cast<std::ptrdiff_t>(from),
                               c.begin() + static_cast<std::ptrdiff_t>(to), '\0');
    }
    KYRODB_RETURN_IF_ERROR(WriteDurably(base_, path, c));
  }
  files_.clear();  // what survived is durable
  down_ = options.stay_down;
  return Status::Ok();
}

void FaultInjectionFileSystem::Restart() {
  std::lock_guard<std::mutex> lock(mu_);
  down_ = false;
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

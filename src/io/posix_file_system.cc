#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "io/file_system.h"

namespace kyrodb::io {
namespace {

Status Errno(const std::string& what, const std::string& path) {
  int e = errno;
  std::string msg = what + " " + path + ": " + std::strerror(e);
  if (e == ENOSPC || e == EDQUOT) return Status::ResourceExhausted(msg);
  if (e == ENOENT) return Status::NotFound(msg);
  return Status::IoError(msg);
}

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {
    buf_.reserve(kBufferSize);
  }
  ~PosixWritableFile() override {
    if (fd_ >= 0) Close().IgnoreError();
  }

  Status Append(const void* data, size_t n) override {
    const char* p = static_cast<const char*>(data);
    if (buf_.size() + n <= kBufferSize) {
      buf_.insert(buf_.end(), p, p + n);
      return Status::Ok();
    }
    KYRODB_RETURN_IF_ERROR(Flush());
    if (n >= kBufferSize) return WriteAll(p, n);
    buf_.insert(buf_.end(), p, p + n);
    return Status::Ok();
  }

  Status Flush() override {
    if (buf_.empty()) return Status::Ok();
    Status s = WriteAll(buf_.data(), buf_.size());
    buf_.clear();
    return s;
  }

  Status Sync() override {
    KYRODB_RETURN_IF_ERROR(Flush());
    if (::fdatasync(fd_) != 0) return Errno("fdatasync", path_);
    return Status::Ok();
  }

  Status Close() override {
    Status s = Flush();
    if (fd_ >= 0 && ::close(fd_) != 0 && s.ok()) s = Errno("close", path_);
    fd_ = -1;
    return s;
  }

 private:
  static constexpr size_t kBufferSize = 1 << 20;

  Status WriteAll(const char* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Errno("write", path_);
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return Status::Ok();
  }

  int fd_;
  std::string path_;
  std::vector<char> buf_;
};

class PosixSequentialFile final : public SequentialFile {
 public:
  PosixSequentialFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixSequentialFile() override { ::close(fd_); }

  Result<size_t> Read(void* buf, size_t n) override {
    char* p = static_cast<char*>(buf);
    size_t total = 0;
    while (total < n) {
      ssize_t r = ::read(fd_, p + total, n - total);
      if (r < 0) {
        if (errno == EINTR) continue;
        return Errno("read", path_);
      }
      if (r == 0) break;
      total += static_cast<size_t>(r);
    }
    return total;
  }

 private:
  int fd_;
  std::string path_;
};

class PosixFileSystem final : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return Open(path, O_TRUNC);
  }

  Result<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return Open(path, O_APPEND);
  }

  Result<std::unique_ptr<SequentialFile>> NewSequentialFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open", path);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return std::unique_ptr<SequentialFile>(new PosixSequentialFile(fd, path));
  }

  Result<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return Errno("stat", path);
    return static_cast<uint64_t>(st.st_size);
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return Errno("rename", from + " -> " + to);
    return Status::Ok();
  }

  Status Remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return Errno("unlink", path);
    return Status::Ok();
  }

  Status SyncDir(const std::string& dir) override {
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Errno("open dir", dir);
    int rc = ::fsync(fd);
    Status s = rc == 0 ? Status::Ok() : Errno("fsync dir", dir);
    ::close(fd);
    return s;
  }

  bool Exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Status CreateDir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) == 0) return Status::Ok();
    if (errno != EEXIST) return Errno("mkdir", dir);
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Status::Ok();
    return Status::AlreadyExists("mkdir " + dir + ": exists and is not a directory");
  }

  Status RemoveDir(const std::string& dir) override {
    if (::rmdir(dir.c_str()) != 0) return Errno("rmdir", dir);
    return Status::Ok();
  }

  Result<std::vector<std::string>> ListDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return Errno("opendir", dir);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    if (errno != 0) {
      Status s = Errno("readdir", dir);
      ::closedir(d);
      return s;
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
  }

  Status Truncate(const std::string& path, uint64_t size) override {
    if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) return Errno("truncate", path);
    return Status::Ok();
  }

 private:
  // Opens `path` write-only, creating it; `mode_flag` is O_TRUNC or O_APPEND.
  static Result<std::unique_ptr<WritableFile>> Open(const std::string& path, int mode_flag) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | mode_flag, 0644);
    if (fd < 0) return Errno("open", path);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }
};

}  // namespace

FileSystem* FileSystem::Default() {
  static PosixFileSystem fs;
  return &fs;
}

Result<AtomicFileWriter> AtomicFileWriter::Open(FileSystem* fs, std::string path) {
  auto f = fs->NewWritableFile(path + ".tmp");
  if (!f.ok()) return f.status();
  return AtomicFileWriter(fs, std::move(path), std::move(f).value());
}

AtomicFileWriter::AtomicFileWriter(FileSystem* fs, std::string path,
                                   std::unique_ptr<WritableFile> f)
    : fs_(fs), path_(std::move(path)), file_(std::move(f)) {}

Status AtomicFileWriter::Commit() {
  KYRODB_RETURN_IF_ERROR(file_->Sync());
  KYRODB_RETURN_IF_ERROR(file_->Close());
  KYRODB_RETURN_IF_ERROR(fs_->Rename(path_ + ".tmp", path_));
  committed_ = true;
  return fs_->SyncDir(DirName(path_));
}

AtomicFileWriter::~AtomicFileWriter() {
  if (file_ != nullptr && !committed_) {
    file_->Close().IgnoreError();
    fs_->Remove(path_ + ".tmp").IgnoreError();
  }
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  size_t skip = name.find_first_not_of('/');
  std::string tail = skip == std::string::npos ? std::string() : name.substr(skip);
  if (dir.empty()) return tail;
  if (dir.back() == '/') return dir + tail;
  return dir + "/" + tail;
}

Result<std::string> ReadFileToString(FileSystem* fs, const std::string& path,
                                     uint64_t max_bytes) {
  auto size = fs->FileSize(path);
  if (!size.ok()) return size.status();
  if (*size > max_bytes) return Status::Corruption(path + ": implausible size");
  auto f = fs->NewSequentialFile(path);
  if (!f.ok()) return f.status();
  std::string data(*size, '\0');
  KYRODB_RETURN_IF_ERROR(ReadExactly(f->get(), data.data(), data.size(), path.c_str()));
  return data;
}

Status ReadExactly(SequentialFile* f, void* buf, size_t n, const char* what) {
  auto r = f->Read(buf, n);
  if (!r.ok()) return r.status();
  if (*r != n) {
    return Status::Corruption(std::string(what) + ": file truncated (wanted " + std::to_string(n) +
                              " bytes, got " + std::to_string(*r) + ")");
  }
  return Status::Ok();
}

}  // namespace kyrodb::io

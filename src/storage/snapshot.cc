#include "storage/snapshot.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "base/coding.h"
#include "base/crc32c.h"

namespace kyrodb::storage {
namespace {

constexpr char kMagic[8] = {'K', 'Y', 'R', 'O', 'S', 'N', 'P', '1'};
constexpr uint32_t kVersion = 1;
constexpr const char* kIndexName = "SNAPSHOT";

bool ValidName(const std::string& n) {
  return !n.empty() && n != kIndexName && n.find('/') == std::string::npos && n != "." &&
         n != ".." && n.size() < 200;
}

}  // namespace

std::string SnapshotDirName(Lsn lsn) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "snapshot-%020" PRIu64, lsn);
  return buf;
}

bool ParseSnapshotDirName(std::string_view name, Lsn* lsn) {
  if (name.size() != 29 || name.substr(0, 9) != "snapshot-") return false;
  uint64_t v = 0;
  for (char c : name.substr(9)) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *lsn = v;
  return true;
}

Status RemoveDirRecursively(io::FileSystem* fs, const std::string& dir) {
  auto names = fs->ListDir(dir);
  if (!names.ok()) return names.status().code() == StatusCode::kNotFound ? Status::Ok() : names.status();
  for (const auto& n : *names) KYRODB_RETURN_IF_ERROR(fs->Remove(io::JoinPath(dir, n)));
  return fs->RemoveDir(dir);
}

Status ChecksumFile(io::FileSystem* fs, const std::string& path, uint64_t* size, uint32_t* crc) {
  auto f = fs->NewSequentialFile(path);
  if (!f.ok()) return f.status();
  std::vector<char> buf(1 << 20);
  uint32_t c = 0;
  uint64_t total = 0;
  for (;;) {
    auto r = (*f)->Read(buf.data(), buf.size());
    if (!r.ok()) return r.status();
    if (*r == 0) break;
    c = crc32c::Extend(c, buf.data(), *r);
    total += *r;
  }
  *size = total;
  *crc = c;
  return Status::Ok();
}

SnapshotWriter::SnapshotWriter(io::FileSystem* fs, std::string data_dir, Lsn lsn)
    : fs_(fs), data_dir_(std::move(data_dir)), lsn_(lsn) {
  tmp_dir_ = io::JoinPath(data_dir_, SnapshotDirName(lsn) + ".tmp");
}

SnapshotWriter::~SnapshotWriter() {
  if (!committed_) RemoveDirRecursively(fs_, tmp_dir_).IgnoreError();
}

Result<std::unique_ptr<SnapshotWriter>> SnapshotWriter::Begin(io::FileSystem* fs,
                                                              const std::string& data_dir,
                                                              Lsn lsn) {
  std::unique_ptr<SnapshotWriter> w(new SnapshotWriter(fs, data_dir, lsn));
  KYRODB_RETURN_IF_ERROR(RemoveDirRecursively(fs, w->tmp_dir_));  // leftover of a crash
  KYRODB_RETURN_IF_ERROR(fs->CreateDir(w->tmp_dir_));
  return w;
}

Result<std::string> SnapshotWriter::PathFor(const std::string& name) {
  if (!ValidName(name)) return Status::InvalidArgument("bad snapshot file name: " + name);
  if (std::find(names_.begin(), names_.end(), name) != names_.end()) {
    return Status::AlreadyExists("snapshot file " + name + " already written");
  }
  names_.push_back(name);
  return io::JoinPath(tmp_dir_, name);
}

Result<std::unique_ptr<io::WritableFile>> SnapshotWriter::NewFile(const std::string& name) {
  auto path = PathFor(name);
  if (!path.ok()) return path.status();
  return fs_->NewWritableFile(*path);
}

Result<std::string> SnapshotWriter::Commit() {
  std::string index(kMagic, sizeof(kMagic));
  coding::PutFixed32(&index, kVersion);
  coding::PutFixed64(&index, lsn_);
  coding::PutFixed32(&index, static_cast<uint32_t>(names_.size()));
  for (const auto& n : names_) {
    const std::string path = io::JoinPath(tmp_dir_, n);
    {  // make the file durable, whoever wrote it
      auto f = fs_->NewAppendableFile(path);
      if (!f.ok()) return f.status();
      KYRODB_RETURN_IF_ERROR((*f)->Sync());
      KYRODB_RETURN_IF_ERROR((*f)->Close());
    }
    uint64_t size;
    uint32_t crc;
    KYRODB_RETURN_IF_ERROR(ChecksumFile(fs_, path, &size, &crc));  // read back
    coding::PutLengthPrefixed(&index, n);
    coding::PutFixed64(&index, size);
    coding::PutFixed32(&index, crc);
  }
  coding::PutFixed32(&index, crc32c::Mask(crc32c::Value(index.data(), index.size())));
  {
    auto f = fs_->NewWritableFile(io::JoinPath(tmp_dir_, kIndexName));
    if (!f.ok()) return f.status();
    KYRODB_RETURN_IF_ERROR((*f)->Append(index.data(), index.size()));
    KYRODB_RETURN_IF_ERROR((*f)->Sync());
    KYRODB_RETURN_IF_ERROR((*f)->Close());
  }
  KYRODB_RETURN_IF_ERROR(fs_->SyncDir(tmp_dir_));
  const std::string final_name = SnapshotDirName(lsn_);
  const std::string final_dir = io::JoinPath(data_dir_, final_name);
  KYRODB_RETURN_IF_ERROR(RemoveDirRecursively(fs_, final_dir));
  KYRODB_RETURN_IF_ERROR(fs_->Rename(tmp_dir_, final_dir));
  committed_ = true;
  KYRODB_RETURN_IF_ERROR(fs_->SyncDir(data_dir_));
  // The files were verified by reading them back above; check that the index in place parses.
  auto check = SnapshotReader::Open(fs_, data_dir_, final_name, /*verify=*/false);
  if (!check.ok()) return check.status();
  return final_name;
}

Result<std::unique_ptr<SnapshotReader>> SnapshotReader::Open(io::FileSystem* fs,
                                                             const std::string& data_dir,
                                                             const std::string& name,
                                                             bool verify) {
  std::unique_ptr<SnapshotReader> r(new SnapshotReader());
  r->fs_ = fs;
  r->dir_ = io::JoinPath(data_dir, name);
  const std::string path = io::JoinPath(r->dir_, kIndexName);
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  auto file = io::ReadFileToString(fs, path, 64 << 20);
  if (!file.ok()) return file.status();
  const std::string& body = *file;
  if (body.size() < 28 || body.compare(0, 8, kMagic, 8) != 0) return bad("bad magic or too short");
  if (crc32c::Unmask(coding::DecodeFixed32(body.data() + body.size() - 4)) !=
      crc32c::Value(body.data(), body.size() - 4)) {
    return bad("checksum mismatch");
  }
  std::string_view in(body.data() + 8, body.size() - 12);
  uint32_t version, count;
  if (!coding::GetFixed32(&in, &version) || !coding::GetFixed64(&in, &r->lsn_) ||
      !coding::GetFixed32(&in, &count)) {
    return bad("truncated");
  }
  if (version != kVersion) return Status::NotSupported(path + ": snapshot version " + std::to_string(version));
  for (uint32_t i = 0; i < count; ++i) {
    std::string_view n;
    FileInfo fi;
    if (!coding::GetLengthPrefixed(&in, &n) || !coding::GetFixed64(&in, &fi.size) ||
        !coding::GetFixed32(&in, &fi.crc)) {
      return bad("malformed file list");
    }
    fi.name.assign(n.data(), n.size());
    if (!ValidName(fi.name)) return bad("bad file name in index");
    r->files_.push_back(std::move(fi));
  }
  if (!in.empty()) return bad("trailing bytes");
  Lsn dir_lsn;
  if (!ParseSnapshotDirName(name, &dir_lsn) || dir_lsn != r->lsn_) {
    return bad("snapshot LSN does not match its directory name");
  }
  if (verify) {
    for (const auto& fi : r->files_) {
      uint64_t sz;
      uint32_t crc;
      const std::string fp = io::JoinPath(r->dir_, fi.name);
      Status s = ChecksumFile(fs, fp, &sz, &crc);
      if (!s.ok()) return Status::Corruption(fp + ": unreadable: " + s.message());
      if (sz != fi.size) return Status::Corruption(fp + ": size " + std::to_string(sz) + " != " + std::to_string(fi.size));
      if (crc != fi.crc) return Status::Corruption(fp + ": checksum mismatch");
    }
  }
  return r;
}

bool SnapshotReader::Has(const std::string& name) const {
  return std::any_of(files_.begin(), files_.end(), [&](const FileInfo& f) { return f.name == name; });
}

std::string SnapshotReader::PathOf(const std::string& name) const {
  return io::JoinPath(dir_, name);
}

}  // namespace kyrodb::storage

#include "storage/manifest.h"

#include <vector>

#include "base/coding.h"
#include "base/crc32c.h"

namespace kyrodb::storage {
namespace {

constexpr char kMagic[8] = {'K', 'Y', 'R', 'O', 'M', 'A', 'N', '1'};
constexpr uint32_t kVersion = 1;

void PutRef(std::string* out, const SnapshotRef& r) {
  coding::PutLengthPrefixed(out, r.name);
  coding::PutFixed64(out, r.lsn);
  coding::PutFixed64(out, r.wal_first_segment);
}

bool GetRef(std::string_view* in, SnapshotRef* r) {
  std::string_view name;
  if (!coding::GetLengthPrefixed(in, &name)) return false;
  r->name.assign(name.data(), name.size());
  return coding::GetFixed64(in, &r->lsn) && coding::GetFixed64(in, &r->wal_first_segment);
}

}  // namespace

Status Manifest::Write(io::FileSystem* fs, const std::string& dir) const {
  std::string body(kMagic, sizeof(kMagic));
  coding::PutFixed32(&body, kVersion);
  PutRef(&body, current);
  PutRef(&body, previous);
  coding::PutFixed32(&body, crc32c::Mask(crc32c::Value(body.data(), body.size())));
  auto w = io::AtomicFileWriter::Open(fs, io::JoinPath(dir, kFileName));
  if (!w.ok()) return w.status();
  KYRODB_RETURN_IF_ERROR(w->file()->Append(body.data(), body.size()));
  return w->Commit();
}

Result<Manifest> Manifest::Read(io::FileSystem* fs, const std::string& dir) {
  const std::string path = io::JoinPath(dir, kFileName);
  auto file = io::ReadFileToString(fs, path, 1 << 20);
  if (!file.ok()) return file.status();
  const std::string& body = *file;
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  if (body.size() < sizeof(kMagic) + 8 || body.compare(0, 8, kMagic, 8) != 0) {
    return bad("not a KyroDB manifest (bad magic or too short)");
  }
  uint32_t stored = coding::DecodeFixed32(body.data() + body.size() - 4);
  if (crc32c::Unmask(stored) != crc32c::Value(body.data(), body.size() - 4)) {
    return bad("checksum mismatch");
  }
  std::string_view in(body.data() + 8, body.size() - 12);
  uint32_t version;
  if (!coding::GetFixed32(&in, &version)) return bad("truncated");
  if (version != kVersion) {
    return Status::NotSupported(path + ": manifest version " + std::to_string(version));
  }
  Manifest m;
  if (!GetRef(&in, &m.current) || !GetRef(&in, &m.previous) || !in.empty()) {
    return bad("malformed body");
  }
  return m;
}

}  // namespace kyrodb::storage

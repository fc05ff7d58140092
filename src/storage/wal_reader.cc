#include "storage/wal_reader.h"

#include <algorithm>
#include <cstring>

#include "base/coding.h"
#include "base/crc32c.h"
#include "storage/wal_format.h"

namespace kyrodb::storage {

Result<std::unique_ptr<WalSegmentReader>> WalSegmentReader::Open(io::FileSystem* fs,
                                                                 const std::string& path) {
  auto size = fs->FileSize(path);
  if (!size.ok()) return size.status();
  auto f = fs->NewSequentialFile(path);
  if (!f.ok()) return f.status();
  std::unique_ptr<WalSegmentReader> r(new WalSegmentReader());
  r->path_ = path;
  r->size_ = *size;
  r->data_.reset(new char[r->size_ + 1]);
  KYRODB_RETURN_IF_ERROR(io::ReadExactly(f->get(), r->data_.get(), r->size_, path.c_str()));
  const std::string_view d(r->data_.get(), r->size_);
  if (d.size() < wal_format::kSegmentHeaderBytes) {
    return Status::Corruption(path + ": segment header truncated (" + std::to_string(d.size()) +
                              " bytes)");
  }
  if (std::memcmp(d.data(), wal_format::kMagic, 8) != 0) {
    return Status::Corruption(path + ": not a KyroDB WAL segment (bad magic)");
  }
  if (crc32c::Unmask(coding::DecodeFixed32(d.data() + 28)) != crc32c::Value(d.data(), 28)) {
    return Status::Corruption(path + ": segment header checksum mismatch at offset 0");
  }
  uint32_t version = coding::DecodeFixed32(d.data() + 8);
  if (version != wal_format::kVersion) {
    return Status::NotSupported(path + ": WAL version " + std::to_string(version));
  }
  r->seq_ = coding::DecodeFixed64(d.data() + 12);
  r->first_lsn_ = r->next_lsn_ = coding::DecodeFixed64(d.data() + 20);
  r->pos_ = wal_format::kSegmentHeaderBytes;
  return r;
}

WalSegmentReader::Outcome WalSegmentReader::Next(WalRecord* out) {
  const size_t n = size_;
  if (pos_ == n) return Outcome::kEnd;
  auto bad = [&](std::string why, bool torn) {
    reason_ = path_ + " at offset " + std::to_string(pos_) + ": " + std::move(why);
    torn_ = torn;
    return Outcome::kBad;
  };
  if (n - pos_ < wal_format::kRecordHeaderBytes) return bad("record header truncated", true);
  const char* h = data_.get() + pos_;
  if (crc32c::Unmask(coding::DecodeFixed32(h + 17)) != crc32c::Value(h, 17)) {
    // A crash can leave zeros where the header was going; anything else is damage.
    bool zeros = std::all_of(data_.get() + pos_, data_.get() + size_, [](char c) { return c == 0; });
    return bad("record header checksum mismatch", zeros);
  }
  const uint32_t len = coding::DecodeFixed32(h);
  const uint32_t crc = crc32c::Unmask(coding::DecodeFixed32(h + 4));
  const Lsn lsn = coding::DecodeFixed64(h + 8);
  const uint8_t type = static_cast<uint8_t>(h[16]);
  const size_t end = pos_ + wal_format::kRecordHeaderBytes + len;
  if (len > wal_format::kMaxPayloadBytes) return bad("implausible record length", false);
  if (end > n) return bad("record truncated", true);
  const char* payload = h + wal_format::kRecordHeaderBytes;
  if (crc32c::Extend(crc32c::Value(h + 8, 9), payload, len) != crc) {
    return bad("record checksum mismatch", end == n);
  }
  if (lsn != next_lsn_) {
    return bad("LSN " + std::to_string(lsn) + " where " + std::to_string(next_lsn_) +
                   " was expected",
               false);
  }
  if (!IsKnownRecordType(type)) return bad("unknown record type " + std::to_string(type), false);
  out->lsn = lsn;
  Status s = DecodePayload(static_cast<RecordType>(type), std::string_view(payload, len), out);
  if (!s.ok()) return bad(s.message(), false);
  out->lsn = lsn;
  pos_ = end;
  ++next_lsn_;
  return Outcome::kRecord;
}

}  // namespace kyrodb::storage

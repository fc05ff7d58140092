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
  if (version != wal_format::kVersion && version != wal_format::kVersion1) {
    return Status::NotSupported(path + ": WAL version " + std::to_string(version));
  }
  r->version_ = version;
  r->header_bytes_ = version == wal_format::kVersion1 ? wal_format::kRecordHeaderBytesV1
                                                      : wal_format::kRecordHeaderBytes;
  r->seq_ = coding::DecodeFixed64(d.data() + 12);
  r->first_lsn_ = r->next_lsn_ = coding::DecodeFixed64(d.data() + 20);
  r->pos_ = wal_format::kSegmentHeaderBytes;
  return r;
}

Lsn WalSegmentReader::HighestSyncedClaimFrom(size_t from) const {
  Lsn best = 0;
  const char* d = data_.get();
  for (size_t p = from; p + wal_format::kRecordHeaderBytes <= size_; ++p) {
    const char* h = d + p;
    const Lsn lsn = coding::DecodeFixed64(h + 8);
    if (lsn + 1 < next_lsn_) continue;  // after the damage: a higher LSN (or a sync marker)
    if (crc32c::Unmask(coding::DecodeFixed32(h + 25)) != crc32c::Value(h, 25)) continue;
    const uint32_t len = coding::DecodeFixed32(h);
    if (len > size_ - p - wal_format::kRecordHeaderBytes) continue;
    const char* payload = h + wal_format::kRecordHeaderBytes;
    if (crc32c::Extend(crc32c::Value(h + 8, 9), payload, len) !=
        crc32c::Unmask(coding::DecodeFixed32(h + 4))) {
      continue;
    }
    best = std::max<Lsn>(best, coding::DecodeFixed64(h + 17));
  }
  return best;
}

WalSegmentReader::Outcome WalSegmentReader::Next(WalRecord* out) {
  const size_t n = size_;
  if (pos_ == n) return Outcome::kEnd;
  const bool v1 = version_ == wal_format::kVersion1;
  const size_t hb = header_bytes_;
  // at_end: the damage runs to the end of the file (what decides tornness in version 1).
  // checksum_damage: the bytes fail their checksums (or end early), which a torn write can
  // cause; anything else (an intact record that makes no sense) is never torn.
  auto bad = [&](std::string why, bool at_end, bool checksum_damage = true) {
    reason_ = path_ + " at offset " + std::to_string(pos_) + ": " + std::move(why);
    if (v1 || !checksum_damage) {
      torn_ = at_end && checksum_damage;
    } else {
      const Lsn claim = HighestSyncedClaimFrom(pos_ + 1);
      torn_ = claim < next_lsn_;
      if (!torn_) {
        reason_ += "; a later record says LSN " + std::to_string(claim) +
                   " was synced, so this is damage to acknowledged records, not a torn tail";
      }
    }
    return Outcome::kBad;
  };
  if (n - pos_ < hb) return bad("record header truncated", true);
  const char* h = data_.get() + pos_;
  if (crc32c::Unmask(coding::DecodeFixed32(h + hb - 4)) != crc32c::Value(h, hb - 4)) {
    // A crash can leave zeros where the header was going; anything else is damage.
    bool zeros = std::all_of(data_.get() + pos_, data_.get() + size_, [](char c) { return c == 0; });
    return bad("record header checksum mismatch", zeros);
  }
  const uint32_t len = coding::DecodeFixed32(h);
  const uint32_t crc = crc32c::Unmask(coding::DecodeFixed32(h + 4));
  const Lsn lsn = coding::DecodeFixed64(h + 8);
  const uint8_t type = static_cast<uint8_t>(h[16]);
  const size_t end = pos_ + hb + len;
  if (len > wal_format::kMaxPayloadBytes) return bad("implausible record length", false, false);
  if (end > n) return bad("record truncated", true);
  const char* payload = h + hb;
  if (crc32c::Extend(crc32c::Value(h + 8, 9), payload, len) != crc) {
    return bad("record checksum mismatch", end == n);
  }
  if (!v1 && type == wal_format::kSyncMarkerType) {
    if (len != 0 || lsn + 1 != next_lsn_) return bad("malformed sync marker", false, false);
    synced_lsn_ = coding::DecodeFixed64(h + 17);
    pos_ = end;
    return Next(out);
  }
  if (lsn != next_lsn_) {
    return bad("LSN " + std::to_string(lsn) + " where " + std::to_string(next_lsn_) +
                   " was expected",
               false, false);
  }
  if (!IsKnownRecordType(type)) return bad("unknown record type " + std::to_string(type), false, false);
  out->lsn = lsn;
  Status s = DecodePayload(static_cast<RecordType>(type), std::string_view(payload, len), out);
  if (!s.ok()) return bad(s.message(), false, false);
  out->lsn = lsn;
  if (!v1) synced_lsn_ = coding::DecodeFixed64(h + 17);
  pos_ = end;
  ++next_lsn_;
  return Outcome::kRecord;
}

}  // namespace kyrodb::storage

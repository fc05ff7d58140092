#include "base/clock.h"
#include "storage/wal.h"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/coding.h"
#include "base/crc32c.h"
#include "storage/wal_format.h"

namespace kyrodb::storage {
namespace {

constexpr size_t kMaxBatchBytes = 8u << 20;

// Encodes one version-2 record (wal_format.h) onto *out.
void AppendRecord(std::string* out, Lsn lsn, uint8_t type, Lsn synced_lsn,
                  std::string_view payload) {
  char h[wal_format::kRecordHeaderBytes];
  const uint32_t len = static_cast<uint32_t>(payload.size());
  std::memcpy(h, &len, 4);
  std::memcpy(h + 8, &lsn, 8);
  h[16] = static_cast<char>(type);
  std::memcpy(h + 17, &synced_lsn, 8);
  const uint32_t crc = crc32c::Extend(crc32c::Value(h + 8, 9), payload.data(), payload.size());
  const uint32_t masked = crc32c::Mask(crc);
  std::memcpy(h + 4, &masked, 4);
  const uint32_t header_crc = crc32c::Mask(crc32c::Value(h, 25));
  std::memcpy(h + 25, &header_crc, 4);
  out->append(h, sizeof(h));
  out->append(payload.data(), payload.size());
}

}  // namespace

std::string WalSegmentName(uint64_t seq) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "wal-%020" PRIu64 ".log", seq);
  return buf;
}

bool ParseWalSegmentName(std::string_view name, uint64_t* seq) {
  if (name.size() != 28 || name.substr(0, 4) != "wal-" || name.substr(24) != ".log") return false;
  uint64_t v = 0;
  for (char c : name.substr(4, 20)) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *seq = v;
  return true;
}

struct Wal::Writer {
  RecordType type;
  std::string_view payload;
  Lsn lsn = 0;
  Status status;
  bool done = false;
};

Wal::Wal(const WalOptions& options) : opt_(options) {}

Wal::~Wal() { Close().IgnoreError(); }

Result<std::unique_ptr<Wal>> Wal::Create(const WalOptions& options, uint64_t first_segment,
                                         Lsn next_lsn) {
  if (next_lsn == 0) return Status::InvalidArgument("LSNs start at 1");
  std::unique_ptr<Wal> wal(new Wal(options));
  wal->next_lsn_ = next_lsn;
  std::lock_guard<std::mutex> fl(wal->file_mu_);
  KYRODB_RETURN_IF_ERROR(wal->OpenSegment(first_segment, next_lsn));
  return wal;
}

Status Wal::OpenSegment(uint64_t seq, Lsn first_lsn) {
  std::string path = io::JoinPath(opt_.dir, WalSegmentName(seq));
  auto f = opt_.fs->NewWritableFile(path);
  if (!f.ok()) return f.status();
  std::string h(wal_format::kMagic, sizeof(wal_format::kMagic));
  coding::PutFixed32(&h, wal_format::kVersion);
  coding::PutFixed64(&h, seq);
  coding::PutFixed64(&h, first_lsn);
  coding::PutFixed32(&h, crc32c::Mask(crc32c::Value(h.data(), h.size())));
  KYRODB_RETURN_IF_ERROR((*f)->Append(h.data(), h.size()));
  KYRODB_RETURN_IF_ERROR((*f)->Sync());
  KYRODB_RETURN_IF_ERROR(opt_.fs->SyncDir(opt_.dir));
  file_ = std::move(f).value();
  segment_ = seq;
  segment_size_ = synced_size_ = h.size();
  synced_lsn_ = written_lsn_ = first_lsn - 1;
  unsynced_.clear();
  std::lock_guard<std::mutex> l(mu_);
  stats_.segments_created++;
  return Status::Ok();
}

Status Wal::CutSegmentLocked(uint64_t size) {
  if (file_ != nullptr) {
    file_->Close().IgnoreError();
    file_.reset();
  }
  const std::string path = io::JoinPath(opt_.dir, WalSegmentName(segment_));
  KYRODB_RETURN_IF_ERROR(opt_.fs->Truncate(path, size));
  auto f = opt_.fs->NewAppendableFile(path);
  if (!f.ok()) return f.status();
  KYRODB_RETURN_IF_ERROR((*f)->Sync());  // a truncation is durable only once synced
  return (*f)->Close();
}

void Wal::AfterFailureLocked(bool sync_failed) {
  // A failed fsync may have lost any unsynced page: keep only the synced prefix on disk (the
  // acknowledged records after it are in unsynced_ for Resume). A failed write lost nothing
  // acknowledged: cut just the failed batch, and if that cut syncs, the acknowledged records
  // before it are durable now.
  const uint64_t keep = sync_failed ? synced_size_ : synced_size_ + unsynced_.size();
  Status s = CutSegmentLocked(keep);
  segment_size_ = keep;
  if (s.ok() && !sync_failed) {
    synced_size_ = keep;
    synced_lsn_ = written_lsn_;
    unsynced_.clear();
  }
}

Status Wal::SyncLocked() {
  Status s = file_->Sync();
  if (!s.ok()) return s;
  synced_size_ = segment_size_;
  synced_lsn_ = written_lsn_;
  unsynced_.clear();
  std::lock_guard<std::mutex> l(mu_);
  stats_.syncs++;
  return s;
}

void Wal::Fail(const Status& cause) {
  if (!error_.ok()) return;
  error_ = Status::Unavailable("WAL refuses writes after a failed write or fsync (" +
                               cause.ToString() + "); reads still work");
  stats_.writable = false;
}

Result<Lsn> Wal::Append(const WalRecord& record) {
  std::string payload = EncodePayload(record);
  return AppendPayload(record.type, payload);
}

Result<Lsn> Wal::AppendPayload(RecordType type, std::string_view payload) {
  Writer w;
  w.type = type;
  w.payload = payload;
  KYRODB_RETURN_IF_ERROR(AppendWriters(&w, 1));
  return w.lsn;
}

Status Wal::AppendBatch(const std::vector<const WalRecord*>& records, std::vector<Lsn>* lsns) {
  lsns->clear();
  if (records.empty()) return Status::Ok();
  std::vector<std::string> payloads;
  payloads.reserve(records.size());
  for (const WalRecord* r : records) payloads.push_back(EncodePayload(*r));
  std::vector<Writer> ws(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    ws[i].type = records[i]->type;
    ws[i].payload = payloads[i];
  }
  Status s = AppendWriters(ws.data(), ws.size());
  for (const Writer& w : ws) {
    if (!w.done || !w.status.ok()) break;
    lsns->push_back(w.lsn);
  }
  return s;
}

// Queues `n` writers back to back. Whenever one of them reaches the front of the queue this
// thread leads a group commit (which takes it and whatever follows, up to kMaxBatchBytes);
// returns once the last one is done, with the first error.
Status Wal::AppendWriters(Writer* ws, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (ws[i].payload.size() > wal_format::kMaxPayloadBytes) {
      return Status::InvalidArgument("WAL record payload too large");
    }
  }
  std::unique_lock<std::mutex> l(mu_);
  if (closed_) return Status::FailedPrecondition("WAL is closed");
  if (!error_.ok()) return error_;
  for (size_t i = 0; i < n; ++i) queue_.push_back(&ws[i]);
  Writer* const first = ws;
  Writer* const last = ws + n - 1;
  for (;;) {
    cv_.wait(l, [&] {
      return last->done || (queue_.front() >= first && queue_.front() <= last);
    });
    if (last->done) break;
    LeadBatch(l);
  }
  for (size_t i = 0; i < n; ++i) {
    if (!ws[i].status.ok()) return ws[i].status;
  }
  return Status::Ok();
}

// Group commit: writes the writers at the front of the queue with one write (+ one fsync
// under kAlways). Called and returns with `l` (mu_) held.
void Wal::LeadBatch(std::unique_lock<std::mutex>& l) {
  l.unlock();
  std::unique_lock<std::mutex> fl(file_mu_);
  l.lock();
  std::vector<Writer*> batch;
  Status s;
  if (closed_) s = Status::FailedPrecondition("WAL is closed");
  else if (!error_.ok()) s = error_;
  const Lsn first = next_lsn_;
  if (s.ok()) {
    size_t bytes = 0;
    for (Writer* x : queue_) {
      if (!batch.empty() && bytes + x->payload.size() > kMaxBatchBytes) break;
      bytes += x->payload.size() + wal_format::kRecordHeaderBytes;
      x->lsn = next_lsn_++;
      batch.push_back(x);
    }
  } else {
    batch.push_back(queue_.front());
  }
  l.unlock();

  const size_t old_unsynced = unsynced_.size();
  size_t batch_bytes = 0;
  bool sync_failed = false;
  if (s.ok()) {
    for (Writer* x : batch) {
      AppendRecord(&unsynced_, x->lsn, static_cast<uint8_t>(x->type), synced_lsn_, x->payload);
    }
    const size_t n = batch_bytes = unsynced_.size() - old_unsynced;
    s = file_->Append(unsynced_.data() + old_unsynced, n);
    if (s.ok()) s = file_->Flush();
    if (s.ok()) {
      if (old_unsynced == 0) first_unsynced_ms_ = NowMs();
      segment_size_ += n;
      written_lsn_ = batch.back()->lsn;
      if (opt_.policy == FsyncPolicy::kAlways) {
        s = SyncLocked();
        sync_failed = !s.ok();
      }
    }
    if (!s.ok()) {
      // The batch is reported failed: it is not in the log.
      unsynced_.resize(old_unsynced);
      written_lsn_ = first - 1;
      AfterFailureLocked(sync_failed);
    }
  }

  l.lock();
  if (!s.ok()) {
    Fail(s);
    next_lsn_ = first;  // the failed batch is not in the log
  } else {
    stats_.records += batch.size();
    stats_.bytes += batch_bytes;  // not unsynced_'s growth: a sync under kAlways empties it
    stats_.batches++;
  }
  for (Writer* x : batch) {
    x->status = s.ok() ? Status::Ok() : error_.ok() ? s : error_;
    x->done = true;
    queue_.pop_front();
  }
  const bool rotate = s.ok() && segment_size_ >= opt_.segment_bytes;
  l.unlock();
  if (rotate) {
    Status r = SyncLocked();
    if (!r.ok()) {
      AfterFailureLocked(/*sync_failed=*/true);
    } else {
      r = file_->Close();
      if (r.ok()) r = OpenSegment(segment_ + 1, written_lsn_ + 1);
    }
    if (!r.ok()) {
      l.lock();
      Fail(r);
      l.unlock();
    }
  }
  cv_.notify_all();
  l.lock();
}

Status Wal::Sync() {
  std::lock_guard<std::mutex> fl(file_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!error_.ok()) return error_;
    if (closed_) return Status::FailedPrecondition("WAL is closed");
  }
  if (unsynced_.empty()) return Status::Ok();
  Status s = SyncLocked();
  if (!s.ok()) {
    // The unsynced records were acknowledged (kData, kNever): they stay in memory for Resume.
    AfterFailureLocked(/*sync_failed=*/true);
    std::lock_guard<std::mutex> l(mu_);
    Fail(s);
    return error_;
  }
  return s;
}

Status Wal::SyncIfDue(uint32_t slack_ms) {
  {
    std::lock_guard<std::mutex> fl(file_mu_);
    const int64_t due_after = static_cast<int64_t>(opt_.flush_interval_ms) - slack_ms;
    if (unsynced_.empty() || NowMs() - first_unsynced_ms_ < due_after) return Status::Ok();
  }
  return Sync();
}

Result<uint64_t> Wal::Rotate() {
  std::lock_guard<std::mutex> fl(file_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!error_.ok()) return error_;
    if (closed_) return Status::FailedPrecondition("WAL is closed");
  }
  Status s = unsynced_.empty() ? Status::Ok() : SyncLocked();
  if (!s.ok()) {
    AfterFailureLocked(/*sync_failed=*/true);
  } else {
    s = file_->Close();
    if (s.ok()) s = OpenSegment(segment_ + 1, written_lsn_ + 1);
  }
  if (!s.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    Fail(s);
    return error_;
  }
  return segment_;
}

Status Wal::Resume() {
  std::lock_guard<std::mutex> fl(file_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (error_.ok()) return Status::Ok();
    if (closed_) return Status::FailedPrecondition("WAL is closed");
  }
  // The failed segment keeps only what is known to be synced, and that cut is made durable
  // before anything is written after it.
  KYRODB_RETURN_IF_ERROR(CutSegmentLocked(synced_size_));
  segment_size_ = synced_size_;
  // The acknowledged records after it go into a new segment, from memory.
  std::string pending = std::move(unsynced_);
  const Lsn pending_last = written_lsn_;
  Status s = OpenSegment(segment_ + 1, synced_lsn_ + 1);
  if (s.ok() && !pending.empty()) {
    written_lsn_ = pending_last;
    s = file_->Append(pending.data(), pending.size());
    if (s.ok()) s = file_->Flush();
    if (s.ok()) {
      segment_size_ += pending.size();
      unsynced_ = pending;
      s = SyncLocked();
    }
  }
  if (!s.ok()) {
    // Still failing: the new segment (if it was created) holds at most a synced header.
    if (file_ != nullptr) CutSegmentLocked(synced_size_).IgnoreError();
    segment_size_ = synced_size_;
    written_lsn_ = pending_last;
    unsynced_ = std::move(pending);
    return s;
  }
  std::lock_guard<std::mutex> l(mu_);
  error_ = Status::Ok();
  stats_.writable = true;
  return Status::Ok();
}

Status Wal::Close() {
  bool failed;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return Status::Ok();
    failed = !error_.ok();
  }
  // A failed WAL still holds acknowledged records in memory: one last try to keep them.
  if (failed) Resume().IgnoreError();
  std::lock_guard<std::mutex> fl(file_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return Status::Ok();
    closed_ = true;
    failed = !error_.ok();
  }
  Status s;
  if (file_ != nullptr && !failed) {
    if (!unsynced_.empty()) s = SyncLocked();
    if (s.ok() && written_lsn_ > 0) {
      // Recovery can then tell damage anywhere in this segment from a torn tail.
      std::string marker;
      AppendRecord(&marker, written_lsn_, wal_format::kSyncMarkerType, written_lsn_, {});
      s = file_->Append(marker.data(), marker.size());
      if (s.ok()) s = file_->Sync();
    }
    Status c = file_->Close();
    if (s.ok()) s = c;
  }
  file_.reset();
  cv_.notify_all();
  return s;
}

bool Wal::writable() const {
  std::lock_guard<std::mutex> l(mu_);
  return error_.ok() && !closed_;
}

Lsn Wal::last_lsn() const {
  std::lock_guard<std::mutex> l(mu_);
  return next_lsn_ - 1;
}

uint64_t Wal::current_segment() const {
  std::lock_guard<std::mutex> fl(file_mu_);
  return segment_;
}

WalStats Wal::Stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

}  // namespace kyrodb::storage

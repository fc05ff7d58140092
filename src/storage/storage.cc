#include "base/clock.h"
#include "storage/storage.h"

#include <algorithm>
#include <chrono>
#include <set>

#include "storage/wal_reader.h"

namespace kyrodb::storage {

std::string RecoveryReport::ToString() const {
  std::string s = "recovery: ";
  s += snapshot.empty() ? "no snapshot" : "snapshot " + snapshot + " (lsn " + std::to_string(snapshot_lsn) + ")";
  if (fell_back) s += ", FELL BACK to the previous snapshot because: " + fallback_reason;
  s += ", replayed " + std::to_string(records_replayed) + " records from " +
       std::to_string(segments_replayed) + " WAL segments, last lsn " + std::to_string(last_lsn);
  if (torn_tail_discarded) s += ", discarded a torn final record";
  if (bytes_dropped > 0) s += ", dropped " + std::to_string(bytes_dropped) + " bytes";
  for (const auto& d : dropped) s += " [" + d + "]";
  s += ", " + std::to_string(static_cast<int64_t>(seconds * 1000)) + " ms";
  return s;
}

Storage::~Storage() { Close().IgnoreError(); }

Result<std::unique_ptr<Storage>> Storage::Open(const StorageOptions& options, StateMachine* sm,
                                               RecoveryReport* report) {
  if (options.dir.empty()) return Status::InvalidArgument("storage directory not set");
  if (!options.fs->Exists(options.dir)) {
    // A new directory's entry is durable only once its parent is synced.
    KYRODB_RETURN_IF_ERROR(options.fs->CreateDir(options.dir));
    KYRODB_RETURN_IF_ERROR(options.fs->SyncDir(io::DirName(options.dir)));
  }
  std::unique_ptr<Storage> s(new Storage(options, sm));
  RecoveryReport local;
  if (report == nullptr) report = &local;
  auto t0 = std::chrono::steady_clock::now();
  KYRODB_RETURN_IF_ERROR(s->Recover(report));
  report->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return s;
}

Status Storage::LoadGeneration(const SnapshotRef& ref, RecoveryReport* report) {
  if (ref.empty()) return Status::Ok();
  auto reader = SnapshotReader::Open(opt_.fs, opt_.dir, ref.name, /*verify=*/true);
  if (!reader.ok()) return reader.status();
  if ((*reader)->lsn() != ref.lsn) {
    return Status::Corruption(ref.name + ": LSN " + std::to_string((*reader)->lsn()) +
                              " differs from the manifest's " + std::to_string(ref.lsn));
  }
  KYRODB_RETURN_IF_ERROR(sm_->LoadSnapshot(**reader));
  report->snapshot = ref.name;
  report->snapshot_lsn = ref.lsn;
  return Status::Ok();
}

Status Storage::Recover(RecoveryReport* report) {
  io::FileSystem* fs = opt_.fs;
  auto names = fs->ListDir(opt_.dir);
  if (!names.ok()) return names.status();
  bool has_data = false;
  for (const auto& n : *names) {
    uint64_t x;
    has_data |= ParseWalSegmentName(n, &x) || ParseSnapshotDirName(n, &x);
  }
  if (fs->Exists(io::JoinPath(opt_.dir, Manifest::kFileName))) {
    auto m = Manifest::Read(fs, opt_.dir);
    if (!m.ok()) return m.status();
    manifest_ = *m;
  } else if (has_data) {
    return Status::Corruption(opt_.dir + ": WAL or snapshot files present but no MANIFEST");
  } else {
    manifest_ = Manifest{};
    manifest_.current.wal_first_segment = 1;
    manifest_.previous.wal_first_segment = 0;
    KYRODB_RETURN_IF_ERROR(manifest_.Write(fs, opt_.dir));
  }

  SnapshotRef gen = manifest_.current;
  Status s = LoadGeneration(gen, report);
  if (!s.ok()) {
    if (manifest_.previous.wal_first_segment == 0) {
      return Status::Corruption("newest snapshot unreadable and no previous generation: " +
                                s.ToString());
    }
    report->fell_back = true;
    report->fallback_reason = s.ToString();
    sm_->Clear();
    gen = manifest_.previous;
    Status p = LoadGeneration(gen, report);
    if (!p.ok()) {
      return Status::Corruption("both snapshot generations unreadable: newest: " + s.ToString() +
                                "; previous: " + p.ToString());
    }
    // The generation we loaded becomes the current one; the unreadable snapshot is set aside
    // (renamed *.corrupt, for inspection) so that no later checkpoint keeps it as a fallback.
    const std::string bad = manifest_.current.name;
    manifest_.current = gen;
    manifest_.previous = SnapshotRef{};
    manifest_.previous.wal_first_segment = 0;
    KYRODB_RETURN_IF_ERROR(manifest_.Write(fs, opt_.dir));
    const std::string bad_path = io::JoinPath(opt_.dir, bad);
    if (fs->Exists(bad_path)) {
      const std::string aside = bad_path + ".corrupt";
      KYRODB_RETURN_IF_ERROR(RemoveDirRecursively(fs, aside));
      KYRODB_RETURN_IF_ERROR(fs->Rename(bad_path, aside));
    }
  }
  uint64_t next_segment;
  Lsn next_lsn;
  KYRODB_RETURN_IF_ERROR(Replay(gen.wal_first_segment, gen.lsn, report, &next_segment, &next_lsn));
  report->last_lsn = next_lsn - 1;
  KYRODB_RETURN_IF_ERROR(CollectGarbage());

  WalOptions wo;
  wo.fs = fs;
  wo.dir = opt_.dir;
  wo.policy = opt_.fsync_policy;
  wo.flush_interval_ms = opt_.wal_flush_interval_ms;
  wo.segment_bytes = opt_.wal_segment_bytes;
  auto wal = Wal::Create(wo, next_segment, next_lsn);
  if (!wal.ok()) return wal.status();
  wal_ = std::move(wal).value();
  applied_ = wal_->last_lsn();
  return Status::Ok();
}

Status Storage::Replay(uint64_t first_segment, Lsn snapshot_lsn, RecoveryReport* report,
                       uint64_t* next_segment, Lsn* next_lsn) {
  io::FileSystem* fs = opt_.fs;
  auto names = fs->ListDir(opt_.dir);
  if (!names.ok()) return names.status();
  std::vector<uint64_t> segs;
  for (const auto& n : *names) {
    uint64_t seq;
    if (!ParseWalSegmentName(n, &seq)) continue;
    if (seq >= first_segment) segs.push_back(seq);
  }
  std::sort(segs.begin(), segs.end());
  Lsn expected = snapshot_lsn + 1;
  uint64_t last_kept = first_segment - 1;  // new segments continue after what remains
  const bool strict = opt_.recovery_mode == RecoveryMode::kStrict;
  bool stop = false;  // best effort: everything after a corrupt point is dropped
  auto drop_file = [&](uint64_t seq, const std::string& why) -> Status {
    const std::string path = io::JoinPath(opt_.dir, WalSegmentName(seq));
    auto size = fs->FileSize(path);
    report->bytes_dropped += size.ok() ? *size : 0;
    report->dropped.push_back(path + ": " + why);
    return fs->Remove(path);
  };
  for (size_t i = 0; i < segs.size(); ++i) {
    const uint64_t seq = segs[i];
    const std::string path = io::JoinPath(opt_.dir, WalSegmentName(seq));
    const bool last = i + 1 == segs.size();
    if (stop) {
      KYRODB_RETURN_IF_ERROR(drop_file(seq, "after a corrupt record"));
      continue;
    }
    auto corrupt = [&](const std::string& why) -> Status {
      return Status::Corruption(why + " (recovery_mode strict refuses to start; best_effort "
                                      "would drop from here on)");
    };
    if (seq != first_segment + i) {
      std::string why = "WAL segment " + WalSegmentName(first_segment + i) + " is missing";
      if (strict) return corrupt(why);
      report->dropped.push_back(why);
      stop = true;
      KYRODB_RETURN_IF_ERROR(drop_file(seq, "after a missing segment"));
      continue;
    }
    auto reader = WalSegmentReader::Open(fs, path);
    if (!reader.ok()) {
      // A segment whose header never became durable is what a crash during rotation leaves.
      auto size = fs->FileSize(path);
      const bool torn_header = last && size.ok() && *size < 32;
      if (strict && !torn_header) return corrupt(reader.status().message());
      if (torn_header) report->torn_tail_discarded = true;
      stop = true;
      KYRODB_RETURN_IF_ERROR(drop_file(seq, reader.status().message()));
      continue;
    }
    WalSegmentReader& r = **reader;
    if (r.segment_seq() != seq) {
      if (strict) return corrupt(path + ": header names segment " + std::to_string(r.segment_seq()));
      stop = true;
      KYRODB_RETURN_IF_ERROR(drop_file(seq, "wrong segment number in header"));
      continue;
    }
    if (i == 0 ? r.first_lsn() > expected : r.first_lsn() != expected) {
      std::string why = path + ": starts at LSN " + std::to_string(r.first_lsn()) + ", expected " +
                        std::to_string(expected);
      if (strict) return corrupt(why);
      stop = true;
      KYRODB_RETURN_IF_ERROR(drop_file(seq, why));
      continue;
    }
    report->segments_replayed++;
    last_kept = seq;
    WalRecord rec;
    for (;;) {
      auto o = r.Next(&rec);
      if (o == WalSegmentReader::Outcome::kEnd) break;
      if (o == WalSegmentReader::Outcome::kBad) {
        const bool torn = r.torn() && last;
        if (!torn && strict) return corrupt(r.reason());
        report->bytes_dropped += r.size() - r.good_offset();
        report->dropped.push_back(r.reason() + (torn ? " (torn final record)" : ""));
        report->torn_tail_discarded |= torn;
        KYRODB_RETURN_IF_ERROR(fs->Truncate(path, r.good_offset()));
        auto f = fs->NewAppendableFile(path);
        if (!f.ok()) return f.status();
        KYRODB_RETURN_IF_ERROR((*f)->Sync());
        KYRODB_RETURN_IF_ERROR((*f)->Close());
        stop = !torn;
        break;
      }
      if (rec.lsn < expected) continue;  // already in the snapshot
      Status s = sm_->Apply(rec);
      if (!s.ok()) {
        return Status::Internal("replaying " + path + " LSN " + std::to_string(rec.lsn) + ": " +
                                s.ToString());
      }
      report->records_replayed++;
      expected = rec.lsn + 1;
    }
  }
  // New records will say that everything replayed is synced (wal_format.h's synced_lsn): after
  // a crash of the process the last segment may still be only in the page cache.
  if (report->segments_replayed > 0) {
    auto f = fs->NewAppendableFile(io::JoinPath(opt_.dir, WalSegmentName(last_kept)));
    if (!f.ok()) return f.status();
    KYRODB_RETURN_IF_ERROR((*f)->Sync());
    KYRODB_RETURN_IF_ERROR((*f)->Close());
  }
  *next_segment = last_kept + 1;
  *next_lsn = expected;
  return Status::Ok();
}

Status Storage::CollectGarbage() {
  io::FileSystem* fs = opt_.fs;
  auto names = fs->ListDir(opt_.dir);
  if (!names.ok()) return names.status();
  Manifest m = manifest();
  const uint64_t keep_from = m.previous.wal_first_segment != 0
                                 ? std::min(m.previous.wal_first_segment, m.current.wal_first_segment)
                                 : m.current.wal_first_segment;
  for (const auto& n : *names) {
    uint64_t seq;
    Lsn lsn;
    const std::string path = io::JoinPath(opt_.dir, n);
    if (ParseWalSegmentName(n, &seq)) {
      if (seq < keep_from) KYRODB_RETURN_IF_ERROR(fs->Remove(path));
    } else if (ParseSnapshotDirName(n, &lsn)) {
      if (n != m.current.name && n != m.previous.name) {
        KYRODB_RETURN_IF_ERROR(RemoveDirRecursively(fs, path));
      }
    } else if (n.size() > 4 && n.substr(n.size() - 4) == ".tmp") {
      // Leftovers of an interrupted snapshot or manifest write.
      if (ParseSnapshotDirName(n.substr(0, n.size() - 4), &lsn)) {
        KYRODB_RETURN_IF_ERROR(RemoveDirRecursively(fs, path));
      } else {
        KYRODB_RETURN_IF_ERROR(fs->Remove(path));
      }
    }
  }
  return fs->SyncDir(opt_.dir);
}

void Storage::WaitForApplyTurn(Lsn first) {
  std::unique_lock<std::mutex> l(apply_mu_);
  apply_cv_.wait(l, [&] { return applied_ + 1 == first; });
}

void Storage::ApplyDone(Lsn last) {
  {
    std::lock_guard<std::mutex> l(apply_mu_);
    applied_ = last;
  }
  apply_cv_.notify_all();
}

Result<Lsn> Storage::Write(const WalRecord& record, const std::function<Status()>& apply) {
  std::shared_lock<std::shared_mutex> gate(gate_);
  auto lsn = wal_->Append(record);
  if (!lsn.ok()) return lsn.status();
  WaitForApplyTurn(*lsn);
  Status s = apply();
  ApplyDone(*lsn);
  if (!s.ok()) {
    return Status::Internal("record " + std::to_string(*lsn) + " is logged but failed to apply: " +
                            s.ToString());
  }
  return lsn;
}

Status Storage::WriteBatch(const std::vector<const WalRecord*>& records,
                           const std::function<void(size_t)>& apply, size_t* logged) {
  std::shared_lock<std::shared_mutex> gate(gate_);
  std::vector<Lsn> lsns;
  Status s = wal_->AppendBatch(records, &lsns);
  // In runs of consecutive LSNs: between two group commits of this batch, another writer's
  // records may have been logged, and they are applied in between.
  for (size_t begin = 0; begin < lsns.size();) {
    size_t end = begin + 1;
    while (end < lsns.size() && lsns[end] == lsns[end - 1] + 1) ++end;
    WaitForApplyTurn(lsns[begin]);
    for (size_t i = begin; i < end; ++i) apply(i);
    ApplyDone(lsns[end - 1]);
    begin = end;
  }
  *logged = lsns.size();
  return s;
}

Result<Lsn> Storage::Checkpoint() {
  std::lock_guard<std::mutex> cl(checkpoint_mu_);
  uint64_t segment;
  Lsn lsn;
  {
    // No write is between its WAL append and its apply while we cut the log.
    std::unique_lock<std::shared_mutex> gate(gate_);
    auto seg = wal_->Rotate();
    if (!seg.ok()) return seg.status();
    segment = *seg;
    lsn = wal_->last_lsn();
  }
  auto writer = SnapshotWriter::Begin(opt_.fs, opt_.dir, lsn);
  if (!writer.ok()) return writer.status();
  KYRODB_RETURN_IF_ERROR(sm_->SaveSnapshot(writer->get()));
  auto name = (*writer)->Commit();  // includes the read-back verification
  if (!name.ok()) return name.status();
  Manifest next;
  {
    std::lock_guard<std::mutex> l(manifest_mu_);
    next.previous = manifest_.current;
    next.current = SnapshotRef{*name, lsn, segment};
  }
  KYRODB_RETURN_IF_ERROR(next.Write(opt_.fs, opt_.dir));
  {
    std::lock_guard<std::mutex> l(manifest_mu_);
    manifest_ = next;
  }
  KYRODB_RETURN_IF_ERROR(CollectGarbage());
  return lsn;
}

Manifest Storage::manifest() const {
  std::lock_guard<std::mutex> l(manifest_mu_);
  return manifest_;
}

void Storage::Start() {
  std::lock_guard<std::mutex> l(bg_mu_);
  if (bg_thread_.joinable()) return;
  bg_stop_ = false;
  bg_thread_ = std::thread([this] {
    const auto period = std::chrono::milliseconds(TickPeriodMs());
    std::unique_lock<std::mutex> lock(bg_mu_);
    while (!bg_stop_) {
      lock.unlock();
      Tick();
      lock.lock();
      bg_cv_.wait_for(lock, period, [this] { return bg_stop_; });
    }
  });
}

void Storage::Stop() {
  {
    std::lock_guard<std::mutex> l(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_thread_.joinable()) bg_thread_.join();
}

uint32_t Storage::TickPeriodMs() const {
  return std::max<uint32_t>(
      1, std::min(opt_.wal_flush_interval_ms / 4, opt_.write_probe_interval_ms));
}

void Storage::Tick() {
  if (wal_->writable()) {
    // Polled every TickPeriodMs(): syncing that much early keeps every record's wait within
    // wal_flush_interval_ms. A failure turns writes off; the next Tick probes.
    wal_->SyncIfDue(TickPeriodMs()).IgnoreError();
    return;
  }
  const int64_t now = NowMs();
  if (now - last_probe_ms_ < static_cast<int64_t>(opt_.write_probe_interval_ms)) return;
  last_probe_ms_ = now;
  wal_->Resume().IgnoreError();  // stays read-only until a write + fsync works again
}

Status Storage::Close() {
  Stop();
  if (wal_ == nullptr) return Status::Ok();
  return wal_->Close();
}

}  // namespace kyrodb::storage

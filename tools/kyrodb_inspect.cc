// kyrodb_inspect: prints and checks a KyroDB data directory without opening it for writing.
//
//   kyrodb_inspect DATA_DIR [--records] [--verify]
//
// Shows the MANIFEST (current and previous generation), each snapshot directory (LSN, files,
// sizes; with --verify every file is read and its CRC32C checked), and each WAL segment
// (sequence, first LSN, records, LSN range, bytes, and the first bad record with its offset and
// whether it is a torn tail). With --records, one line per WAL record. Checks across files what
// recovery checks: segments contiguous from the oldest generation's first segment, LSNs
// continuous across segments, snapshots named by the MANIFEST present and matching its LSNs.
// A torn final record (what a crash mid-append leaves) is reported but is not corruption.
//
// Exit code: 0 consistent, 1 corruption found (each problem is printed with file and offset),
// 2 usage error (bad flags, DATA_DIR not a readable directory). Read-only: it changes nothing.
// Formats: docs/formats/{wal,manifest,snapshot}.md; recovery rules: docs/operations.md.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "io/file_system.h"
#include "storage/manifest.h"
#include "storage/snapshot.h"
#include "storage/wal.h"
#include "storage/wal_format.h"
#include "storage/wal_reader.h"
#include "storage/wal_record.h"

namespace kyrodb::tools {
namespace {

using storage::Lsn;
using storage::Manifest;
using storage::SnapshotRef;

std::string_view TypeName(storage::RecordType t) {
  switch (t) {
    case storage::RecordType::kUpsert:
      return "upsert";
    case storage::RecordType::kDelete:
      return "delete";
    case storage::RecordType::kUpdateMetadata:
      return "update_metadata";
    case storage::RecordType::kCreateCollection:
      return "create_collection";
    case storage::RecordType::kDropCollection:
      return "drop_collection";
  }
  return "unknown";
}

// Names from a record are client data: print them escaped and bounded.
std::string Printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 64; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (s.size() > 64) out += "...";
  return out;
}

std::string DescribeRef(const SnapshotRef& r) {
  std::string snap = r.empty() ? "no snapshot" : fmt::format("snapshot {} (lsn {})", r.name, r.lsn);
  return fmt::format("{}, WAL from segment {}", snap, r.wal_first_segment);
}

class Inspector {
 public:
  Inspector(std::string dir, bool records, bool verify)
      : fs_(io::FileSystem::Default()), dir_(std::move(dir)), records_(records), verify_(verify) {}

  // Returns the exit code.
  int Run() {
    auto names = fs_->ListDir(dir_);
    if (!names.ok()) {
      fmt::print(stderr, "kyrodb_inspect: cannot read data directory: {}\n",
                 names.status().ToString());
      return 2;
    }
    fmt::print("data directory {}\n", dir_);
    Classify(*names);
    InspectManifest();
    for (const auto& n : others_) {
      fmt::print("other entry {} (leftover *.tmp entries are removed at the next open)\n",
                 Printable(n));
    }
    InspectSnapshots();
    InspectWal();
    if (problems_ == 0) {
      fmt::print("OK: no corruption found\n");
      return 0;
    }
    fmt::print("CORRUPTION: {} problem(s) found\n", problems_);
    return 1;
  }

 private:
  void Problem(const std::string& what) {
    ++problems_;
    fmt::print("  CORRUPT: {}\n", what);
  }
  std::string Path(const std::string& name) const { return io::JoinPath(dir_, name); }

  void Classify(const std::vector<std::string>& names) {
    for (const auto& n : names) {
      uint64_t v;
      if (n == Manifest::kFileName) {
        has_manifest_ = true;
      } else if (storage::ParseWalSegmentName(n, &v)) {
        segments_[v] = n;
      } else if (storage::ParseSnapshotDirName(n, &v)) {
        snapshots_[v] = n;
      } else {
        others_.push_back(n);
      }
    }
  }

  void InspectManifest() {
    if (!has_manifest_) {
      if (!segments_.empty() || !snapshots_.empty()) {
        fmt::print("MANIFEST: missing\n");
        Problem(Path(Manifest::kFileName) + ": missing, but WAL or snapshot files are present");
      } else {
        fmt::print("MANIFEST: none (empty data directory; opening it creates one)\n");
      }
      return;
    }
    auto m = Manifest::Read(fs_, dir_);
    if (!m.ok()) {
      fmt::print("MANIFEST: unreadable\n");
      Problem(m.status().ToString());
      return;
    }
    manifest_ = *m;
    fmt::print("MANIFEST\n  current:  {}\n", DescribeRef(manifest_->current));
    if (manifest_->previous.wal_first_segment == 0) {
      fmt::print("  previous: none\n");
    } else {
      fmt::print("  previous: {}\n", DescribeRef(manifest_->previous));
    }
  }

  bool HasPrevious() const { return manifest_ && manifest_->previous.wal_first_segment != 0; }

  void InspectSnapshots() {
    for (const auto& [lsn, name] : snapshots_) {
      std::string role = "not in MANIFEST: removed at the next open";
      bool needed = !manifest_;  // without a MANIFEST, any snapshot might be the one
      if (manifest_ && name == manifest_->current.name) role = "current";
      if (HasPrevious() && name == manifest_->previous.name) role = "previous";
      if (role == "current" || role == "previous") needed = true;
      fmt::print("snapshot {} [{}]\n", name, role);
      const int before = problems_;
      // Damage in a snapshot recovery will not read is worth showing, but is not corruption.
      auto report = [&](const std::string& what) {
        if (needed) {
          Problem(what);
        } else {
          fmt::print("  unreadable (not needed by recovery): {}\n", what);
        }
      };
      InspectSnapshot(name, report);
      if (problems_ > before && manifest_ && name == manifest_->current.name && HasPrevious()) {
        fmt::print("  recovery falls back to the previous generation (nothing is lost)\n");
      }
    }
    if (!manifest_) return;
    for (const SnapshotRef* ref : {&manifest_->current, &manifest_->previous}) {
      if (ref == &manifest_->previous && !HasPrevious()) continue;
      if (ref->empty()) continue;
      Lsn lsn;
      if (!storage::ParseSnapshotDirName(ref->name, &lsn) || !snapshots_.count(lsn) ||
          snapshots_[lsn] != ref->name) {
        Problem(Path(ref->name) + ": named by the MANIFEST but missing");
      }
    }
  }

  template <typename Report>
  void InspectSnapshot(const std::string& name, const Report& report) {
    auto r = storage::SnapshotReader::Open(fs_, dir_, name, /*verify=*/false);
    if (!r.ok()) {
      report(r.status().ToString());
      return;
    }
    const storage::SnapshotReader& reader = **r;
    uint64_t total = 0;
    for (const auto& f : reader.files()) total += f.size;
    fmt::print("  lsn {}, {} file(s), {} bytes\n", reader.lsn(), reader.files().size(), total);
    for (const auto& f : reader.files()) {
      auto size = fs_->FileSize(reader.PathOf(f.name));
      fmt::print("  {} {} bytes crc32c {:08x}\n", Printable(f.name), f.size, f.crc);
      if (!size.ok()) {
        report(reader.PathOf(f.name) +
               ": listed in SNAPSHOT but unreadable: " + size.status().message());
      } else if (*size != f.size) {
        report(
            fmt::format("{}: size {} but SNAPSHOT says {}", reader.PathOf(f.name), *size, f.size));
      }
    }
    if (verify_) {
      auto v = storage::SnapshotReader::Open(fs_, dir_, name, /*verify=*/true);
      if (v.ok()) {
        fmt::print("  checksums verified\n");
      } else {
        report(v.status().ToString());
      }
    }
    if (!manifest_) return;
    for (const SnapshotRef* ref : {&manifest_->current, &manifest_->previous}) {
      if (ref->name == name && ref->lsn != reader.lsn()) {
        report(fmt::format("{}: LSN {} but the MANIFEST says {}", name, reader.lsn(), ref->lsn));
      }
    }
  }

  // The first segment recovery needs: the oldest generation's, as Storage keeps it.
  uint64_t KeepFrom() const {
    if (!manifest_) return segments_.empty() ? 0 : segments_.begin()->first;
    uint64_t keep = manifest_->current.wal_first_segment;
    if (HasPrevious()) keep = std::min(keep, manifest_->previous.wal_first_segment);
    return keep;
  }

  void InspectWal() {
    if (segments_.empty()) {
      fmt::print("WAL: no segments\n");
      return;
    }
    const uint64_t keep_from = KeepFrom();
    const uint64_t last_seq = segments_.rbegin()->first;
    std::optional<uint64_t> expected_seq;
    if (manifest_) expected_seq = keep_from;
    // Next LSN after the previous segment, when that one was read cleanly (0: unknown).
    Lsn expected_lsn = 0;
    for (const auto& [seq, name] : segments_) {
      const std::string path = Path(name);
      const bool last = seq == last_seq;
      const bool needed = seq >= keep_from;
      auto size = fs_->FileSize(path);
      if (!needed) {
        fmt::print("segment {}: before the oldest generation (removed at the next open)\n", name);
      }
      if (needed && expected_seq && seq != *expected_seq) {
        fmt::print("segment {}\n", name);
        Problem(fmt::format("WAL segment(s) {} .. {} missing before {}{}",
                            storage::WalSegmentName(*expected_seq),
                            storage::WalSegmentName(seq - 1), path, FallbackNote(seq - 1)));
        expected_lsn = 0;
      }
      if (needed) expected_seq = seq + 1;
      auto problem = [&](const std::string& what) { Problem(what + FallbackNote(seq)); };
      auto opened = storage::WalSegmentReader::Open(fs_, path);
      if (!opened.ok()) {
        fmt::print("segment {}: {} bytes, header unreadable\n", name, size.ok() ? *size : 0);
        if (last && size.ok() && *size < storage::wal_format::kSegmentHeaderBytes) {
          fmt::print("  torn segment header (a crash while creating it): discarded at recovery\n");
        } else if (needed) {
          problem(opened.status().ToString());
        } else {
          fmt::print("  {}\n", opened.status().ToString());
        }
        expected_lsn = 0;
        continue;
      }
      storage::WalSegmentReader& r = **opened;
      uint64_t count = 0;
      Lsn first = 0, last_lsn = 0;
      storage::WalRecord rec;
      std::vector<std::string> lines;
      storage::WalSegmentReader::Outcome o;
      while ((o = r.Next(&rec)) == storage::WalSegmentReader::Outcome::kRecord) {
        if (count == 0) first = rec.lsn;
        last_lsn = rec.lsn;
        ++count;
        if (records_) lines.push_back(RecordLine(rec));
      }
      const std::string range = count == 0 ? "none" : fmt::format("{}..{}", first, last_lsn);
      fmt::print("segment {}: seq {}, first lsn {}, {} records, lsn {}, {} bytes\n", name,
                 r.segment_seq(), r.first_lsn(), count, range, r.size());
      for (const auto& l : lines) fmt::print("{}\n", l);
      if (needed && r.segment_seq() != seq) {
        problem(fmt::format("{}: header names segment {}", path, r.segment_seq()));
      }
      if (needed && expected_lsn != 0 && r.first_lsn() != expected_lsn) {
        problem(fmt::format("{}: starts at LSN {}, but the previous segment ends before {}", path,
                            r.first_lsn(), expected_lsn));
      }
      if (needed && manifest_) CheckGenerationStart(seq, path, r.first_lsn());
      if (o == storage::WalSegmentReader::Outcome::kBad) {
        if (r.torn() && last) {
          fmt::print("  torn final record: {} ({} bytes discarded at recovery; not corruption)\n",
                     r.reason(), r.size() - r.good_offset());
        } else if (needed) {
          problem(fmt::format("first bad record: {}{} ({} bytes from offset {} unreadable)",
                              r.reason(), r.torn() ? " (torn, but not in the last segment)" : "",
                              r.size() - r.good_offset(), r.good_offset()));
        } else {
          fmt::print("  bad record (not needed by recovery): {}\n", r.reason());
        }
        expected_lsn = 0;
      } else {
        expected_lsn = r.first_lsn() + count;
      }
    }
  }

  // Segments before the current generation's first one matter only if recovery has to fall
  // back to the previous snapshot; damage there still removes that safety net.
  std::string FallbackNote(uint64_t seq) const {
    if (!manifest_ || seq >= manifest_->current.wal_first_segment) return "";
    return " [WAL of the previous generation: needed only if recovery falls back to it]";
  }

  // Recovery starts a generation at its first segment, which must not begin after the LSN
  // that follows the generation's snapshot.
  void CheckGenerationStart(uint64_t seq, const std::string& path, Lsn first_lsn) {
    for (const SnapshotRef* ref : {&manifest_->current, &manifest_->previous}) {
      if (ref == &manifest_->previous && !HasPrevious()) continue;
      if (ref->wal_first_segment == seq && first_lsn > ref->lsn + 1) {
        Problem(fmt::format("{}: starts at LSN {}, but its snapshot ends at LSN {}", path,
                            first_lsn, ref->lsn));
      }
    }
  }

  static std::string RecordLine(const storage::WalRecord& r) {
    uint64_t dim = r.embedding.size();
    if (r.type == storage::RecordType::kCreateCollection) dim = r.spec.dimension;
    return fmt::format("  lsn {} {} tenant={} collection={} doc_id={} dim={} metadata={}", r.lsn,
                       TypeName(r.type), Printable(r.tenant), Printable(r.collection), r.doc_id,
                       dim, r.metadata.size());
  }

  io::FileSystem* fs_;
  std::string dir_;
  bool records_;
  bool verify_;
  int problems_ = 0;
  bool has_manifest_ = false;
  std::optional<Manifest> manifest_;
  std::map<uint64_t, std::string> segments_;   // seq -> file name
  std::map<uint64_t, std::string> snapshots_;  // lsn -> directory name
  std::vector<std::string> others_;
};

}  // namespace
}  // namespace kyrodb::tools

int main(int argc, char** argv) {
  CLI::App app{"kyrodb_inspect: print and verify a KyroDB data directory (read-only)"};
  std::string dir;
  bool records = false;
  bool verify = false;
  app.add_option("DATA_DIR", dir, "The data directory")->required();
  app.add_flag("--records", records, "Print one line per WAL record");
  app.add_flag("--verify", verify, "Read every snapshot file and check its checksum");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    return kyrodb::tools::Inspector(dir, records, verify).Run();
  } catch (const std::exception& e) {  // e.g. bad_alloc on an absurd file
    fmt::print("kyrodb_inspect: failed: {}\n", e.what());
    return 1;
  }
}

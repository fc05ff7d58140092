// WAL records: what a mutation looks like in the log, and its payload encoding.
//
// Records are self-contained (a replica can apply them without the primary's memory) and
// ordered by LSN. Applying a record must be idempotent given the records before it, so that
// replaying a WAL suffix over a snapshot that already contains part of it converges to the same
// state: upsert and metadata replace set values, delete ignores absent documents, create
// ignores an existing identical collection, drop ignores a missing one, and metadata merge sets
// each key it names.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kyrodb/status.h"

namespace kyrodb::storage {

using Lsn = uint64_t;

enum class RecordType : uint8_t {
  kUpsert = 1,
  kDelete = 2,
  kUpdateMetadata = 3,
  kCreateCollection = 4,
  kDropCollection = 5,
};

bool IsKnownRecordType(uint8_t t);

using Metadata = std::vector<std::pair<std::string, std::string>>;

struct CollectionSpec {
  uint32_t dimension = 0;
  uint8_t metric = 0;  // index::Metric value
  uint32_t m = 16;
  uint32_t ef_construction = 200;
  uint32_t ef_search = 50;
  bool operator==(const CollectionSpec&) const = default;
};

// One decoded record. Fields that a type does not use stay empty.
struct WalRecord {
  RecordType type = RecordType::kUpsert;
  Lsn lsn = 0;
  std::string tenant;
  std::string collection;
  uint64_t doc_id = 0;
  std::string external_id;  // the string id a client gave, if any ("doc_123")
  std::vector<float> embedding;
  Metadata metadata;
  bool merge_metadata = false;  // kUpdateMetadata: merge (true) or replace (false)
  CollectionSpec spec;          // kCreateCollection

  bool operator==(const WalRecord&) const = default;
};

// Payload bytes of `r` (everything but the record header). See docs/formats/wal.md.
std::string EncodePayload(const WalRecord& r);
// Decodes a payload of type `type`; Corruption when it is malformed.
Status DecodePayload(RecordType type, std::string_view payload, WalRecord* out);

}  // namespace kyrodb::storage

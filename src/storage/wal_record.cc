#include "storage/wal_record.h"

#include <cstring>

#include "base/coding.h"

namespace kyrodb::storage {

using coding::GetFixed32;
using coding::GetFixed64;
using coding::GetLengthPrefixed;
using coding::GetVarint64;
using coding::PutFixed32;
using coding::PutFixed64;
using coding::PutLengthPrefixed;
using coding::PutVarint64;

bool IsKnownRecordType(uint8_t t) { return t >= 1 && t <= 5; }

namespace {

void PutMetadata(std::string* out, const Metadata& md) {
  PutVarint64(out, md.size());
  for (const auto& [k, v] : md) {
    PutLengthPrefixed(out, k);
    PutLengthPrefixed(out, v);
  }
}

bool GetString(std::string_view* in, std::string* s) {
  std::string_view v;
  if (!GetLengthPrefixed(in, &v)) return false;
  s->assign(v.data(), v.size());
  return true;
}

bool GetMetadata(std::string_view* in, Metadata* md) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size()) return false;
  md->clear();
  md->reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string k, v;
    if (!GetString(in, &k) || !GetString(in, &v)) return false;
    md->emplace_back(std::move(k), std::move(v));
  }
  return true;
}

}  // namespace

std::string EncodePayload(const WalRecord& r) {
  std::string out;
  PutLengthPrefixed(&out, r.tenant);
  PutLengthPrefixed(&out, r.collection);
  switch (r.type) {
    case RecordType::kUpsert:
      out.reserve(out.size() + 32 + r.embedding.size() * 4);
      PutFixed64(&out, r.doc_id);
      PutLengthPrefixed(&out, r.external_id);
      PutVarint64(&out, r.embedding.size());
      out.append(reinterpret_cast<const char*>(r.embedding.data()), r.embedding.size() * 4);
      PutMetadata(&out, r.metadata);
      break;
    case RecordType::kDelete:
      PutFixed64(&out, r.doc_id);
      break;
    case RecordType::kUpdateMetadata:
      PutFixed64(&out, r.doc_id);
      out.push_back(r.merge_metadata ? 1 : 0);
      PutMetadata(&out, r.metadata);
      break;
    case RecordType::kCreateCollection:
      PutFixed32(&out, r.spec.dimension);
      out.push_back(static_cast<char>(r.spec.metric));
      PutFixed32(&out, r.spec.m);
      PutFixed32(&out, r.spec.ef_construction);
      PutFixed32(&out, r.spec.ef_search);
      break;
    case RecordType::kDropCollection:
      break;
  }
  return out;
}

Status DecodePayload(RecordType type, std::string_view in, WalRecord* out) {
  auto bad = [&](const char* what) {
    return Status::Corruption(std::string("wal record payload: ") + what);
  };
  WalRecord r;
  r.type = type;
  if (!GetString(&in, &r.tenant) || !GetString(&in, &r.collection)) return bad("bad names");
  switch (type) {
    case RecordType::kUpsert: {
      uint64_t dim;
      if (!GetFixed64(&in, &r.doc_id) || !GetString(&in, &r.external_id) ||
          !GetVarint64(&in, &dim) || dim > in.size() / 4) {
        return bad("bad upsert header");
      }
      r.embedding.resize(dim);
      if (dim > 0) std::memcpy(r.embedding.data(), in.data(), dim * 4);
      in.remove_prefix(dim * 4);
      if (!GetMetadata(&in, &r.metadata)) return bad("bad metadata");
      break;
    }
    case RecordType::kDelete:
      if (!GetFixed64(&in, &r.doc_id)) return bad("bad delete");
      break;
    case RecordType::kUpdateMetadata:
      if (!GetFixed64(&in, &r.doc_id) || in.empty()) return bad("bad metadata update");
      r.merge_metadata = in[0] != 0;
      in.remove_prefix(1);
      if (!GetMetadata(&in, &r.metadata)) return bad("bad metadata");
      break;
    case RecordType::kCreateCollection:
      if (!GetFixed32(&in, &r.spec.dimension) || in.empty()) return bad("bad collection spec");
      r.spec.metric = static_cast<uint8_t>(in[0]);
      in.remove_prefix(1);
      if (!GetFixed32(&in, &r.spec.m) || !GetFixed32(&in, &r.spec.ef_construction) ||
          !GetFixed32(&in, &r.spec.ef_search)) {
        return bad("bad collection spec");
      }
      break;
    case RecordType::kDropCollection:
      break;
    default:
      return bad("unknown record type");
  }
  if (!in.empty()) return bad("trailing bytes");
  r.lsn = out->lsn;
  *out = std::move(r);
  return Status::Ok();
}

}  // namespace kyrodb::storage

#include "server/common/metadata_filter.h"

#include <algorithm>

namespace kyrodb::server {

namespace {

const std::string* Find(const Metadata& metadata, const std::string& key) {
  for (const auto& [k, v] : metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

}  // namespace

bool Matches(const MetadataFilter& f, const Metadata& metadata) {
  using Kind = MetadataFilter::Kind;
  switch (f.kind) {
    case Kind::kExact: {
      const std::string* v = Find(metadata, f.key);
      return v != nullptr && *v == f.value;
    }
    case Kind::kRange: {
      const std::string* v = Find(metadata, f.key);
      if (v == nullptr) return false;
      const int c = v->compare(f.value);
      switch (f.op) {
        case MetadataFilter::RangeOp::kGte: return c >= 0;
        case MetadataFilter::RangeOp::kLte: return c <= 0;
        case MetadataFilter::RangeOp::kGt: return c > 0;
        case MetadataFilter::RangeOp::kLt: return c < 0;
      }
      return false;
    }
    case Kind::kIn: {
      const std::string* v = Find(metadata, f.key);
      return v != nullptr && std::find(f.values.begin(), f.values.end(), *v) != f.values.end();
    }
    case Kind::kAnd:
      return std::all_of(f.children.begin(), f.children.end(),
                         [&](const MetadataFilter& c) { return Matches(c, metadata); });
    case Kind::kOr:
      return std::any_of(f.children.begin(), f.children.end(),
                         [&](const MetadataFilter& c) { return Matches(c, metadata); });
    case Kind::kNot:
      return f.children.size() == 1 && !Matches(f.children[0], metadata);
  }
  return false;
}

}  // namespace kyrodb::server

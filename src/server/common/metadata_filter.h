// A metadata predicate for search and batch delete, the shape of the v1 protocol's
// MetadataFilter: exact, range (string comparison), in, and/or/not. Transports decode their own
// representation into this; Service evaluates it. Thread-safety: plain values.
#pragma once

#include <string>
#include <vector>

#include "kyrodb/types.h"

namespace kyrodb::server {

struct MetadataFilter {
  enum class Kind { kExact, kRange, kIn, kAnd, kOr, kNot };
  enum class RangeOp { kGte, kLte, kGt, kLt };
  Kind kind = Kind::kExact;
  std::string key;                       // kExact, kRange, kIn
  std::string value;                     // kExact; the bound for kRange
  RangeOp op = RangeOp::kGte;            // kRange
  std::vector<std::string> values;       // kIn
  std::vector<MetadataFilter> children;  // kAnd, kOr (any number); kNot (exactly one)
};

// True when `metadata` satisfies the filter. A key that is absent satisfies no exact, range or
// in clause. An empty kAnd is true, an empty kOr false.
bool Matches(const MetadataFilter& filter, const Metadata& metadata);

}  // namespace kyrodb::server

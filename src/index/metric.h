// Distance metrics of the vector index.
#pragma once

#include <optional>
#include <string_view>

#include "kyrodb/types.h"

namespace kyrodb::index {

// The public metric (include/kyrodb/types.h). kCosine normalizes vectors at insert (and
// queries at search) and rejects zero vectors; the index then ranks by inner product.
// Distances reported: l2 -> squared L2; inner_product -> 1 - dot; cosine -> 1 - cos.
using Metric = ::kyrodb::Metric;

std::string_view MetricName(Metric m);                         // "l2", "inner_product", "cosine"
std::optional<Metric> ParseMetric(std::string_view name);      // also accepts "ip", "dot"

}  // namespace kyrodb::index

#include "index/metric.h"

namespace kyrodb::index {

std::string_view MetricName(Metric m) {
  switch (m) {
    case Metric::kL2: return "l2";
    case Metric::kInnerProduct: return "inner_product";
    case Metric::kCosine: return "cosine";
  }
  return "unknown";
}

std::optional<Metric> ParseMetric(std::string_view name) {
  if (name == "l2" || name == "euclidean") return Metric::kL2;
  if (name == "inner_product" || name == "ip" || name == "dot") return Metric::kInnerProduct;
  if (name == "cosine") return Metric::kCosine;
  return std::nullopt;
}

}  // namespace kyrodb::index

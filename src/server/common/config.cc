#include "server/common/config.h"

namespace kyrodb::server {
// Stub: the real loader lands in the next commit.
Result<LaunchOptions> LoadLaunchOptions(int, const char* const*) { return LaunchOptions{}; }
Result<ServerConfig> LoadConfig(const std::string&, const std::vector<std::string>&) { return ServerConfig{}; }
std::string GenerateConfigYaml() { return {}; }
Result<Metric> ParseMetric(const std::string& name) {
  if (name == "cosine") return Metric::kCosine;
  if (name == "l2" || name == "euclidean") return Metric::kL2;
  if (name == "inner_product" || name == "ip" || name == "innerproduct") return Metric::kInnerProduct;
  return Status::InvalidArgument("unknown metric '" + name + "' (cosine, l2, inner_product)");
}
const char* MetricName(Metric m) {
  switch (m) {
    case Metric::kCosine: return "cosine";
    case Metric::kL2: return "l2";
    case Metric::kInnerProduct: return "inner_product";
  }
  return "cosine";
}
DatabaseOptions ServerConfig::ToDatabaseOptions() const { return {}; }
CollectionOptions ServerConfig::DefaultCollectionOptions() const { return {}; }
}  // namespace kyrodb::server

// CachedDoc: what the L1 cache holds for a document id — the embedding and metadata the engine
// returns for a get-by-id. Immutable once cached (shared as shared_ptr<const CachedDoc>), so a
// reader keeps a consistent copy even if the entry is invalidated while it uses it.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace kyrodb::cache {

struct CachedDoc {
  std::vector<float> embedding;
  std::vector<std::pair<std::string, std::string>> metadata;

  // Bytes this document costs the cache (heap included; charged against cache.max_size_mb).
  size_t ByteSize() const {
    size_t n = sizeof(CachedDoc) + 32 /* shared_ptr control block */ +
               embedding.capacity() * sizeof(float) +
               metadata.capacity() * sizeof(std::pair<std::string, std::string>);
    for (const auto& [k, v] : metadata) n += k.capacity() + v.capacity();
    return n;
  }
};

}  // namespace kyrodb::cache

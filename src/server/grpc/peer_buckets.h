// PeerBuckets: the per-connection token buckets of the gRPC server
// (rate_limit.max_qps_per_connection).
//
// gRPC's callback API has no connection object, so a connection is named by its peer address
// (ServerContext::peer(), "ipv4:127.0.0.1:53120"): one TCP connection per client address and
// port. The map is bounded. A peer idle for as long as its bucket takes to fill up again is
// dropped without loss (a fresh bucket is the same bucket); when a shard is full of active peers,
// its least recently used one goes. Behind a proxy every client shares the proxy's connections,
// so the per-tenant and global buckets are what hold there.
//
// Thread-safety: Get may be called concurrently. A returned bucket stays valid while it is held,
// also after the map dropped it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "server/common/rate_limiter.h"

namespace kyrodb::server {

class PeerBuckets {
 public:
  // rate <= 0: no per-connection limit (Get returns null). burst as TokenBucket's. `capacity`:
  // peers kept at most (at least one per shard).
  PeerBuckets(double rate_per_sec, double burst, size_t capacity);

  // The bucket of `peer`, made on first use. Null when connections are unlimited.
  std::shared_ptr<TokenBucket> Get(const std::string& peer, int64_t now_ns);
  bool limited() const { return rate_ > 0; }
  size_t size() const;

 private:
  static constexpr size_t kShards = 16;
  struct Entry {
    std::shared_ptr<TokenBucket> bucket;
    int64_t last_used_ns = 0;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry> peers;  // GUARDED_BY(mu)
  };
  // Makes room in a full shard: drops every refilled peer, else the least recently used one.
  void EvictLocked(Shard& shard, int64_t now_ns);

  const double rate_;
  const double burst_;
  const size_t per_shard_;
  int64_t refill_ns_ = 0;  // an idle bucket is full again after this long
  std::array<Shard, kShards> shards_;
};

}  // namespace kyrodb::server

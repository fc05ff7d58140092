#include "server/grpc/peer_buckets.h"

#include <algorithm>
#include <functional>

namespace kyrodb::server {

PeerBuckets::PeerBuckets(double rate_per_sec, double burst, size_t capacity)
    : rate_(rate_per_sec), burst_(burst), per_shard_(std::max<size_t>(1, capacity / kShards)) {
  if (rate_ > 0) {
    // TokenBucket's own default: burst <= 0 is one second's worth.
    const double b = burst_ > 0 ? std::max(1.0, burst_) : std::max(1.0, rate_);
    refill_ns_ = static_cast<int64_t>(b / rate_ * 1e9) + 1;
  }
}

std::shared_ptr<TokenBucket> PeerBuckets::Get(const std::string& peer, int64_t now_ns) {
  if (rate_ <= 0) return nullptr;
  Shard& shard = shards_[std::hash<std::string>()(peer) % kShards];
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.peers.find(peer);
  if (it == shard.peers.end()) {
    if (shard.peers.size() >= per_shard_) EvictLocked(shard, now_ns);
    it = shard.peers.emplace(peer, Entry{std::make_shared<TokenBucket>(rate_, burst_), 0}).first;
  }
  it->second.last_used_ns = now_ns;
  return it->second.bucket;
}

void PeerBuckets::EvictLocked(Shard& shard, int64_t now_ns) {
  const size_t before = shard.peers.size();
  std::erase_if(shard.peers,
                [&](const auto& kv) { return now_ns - kv.second.last_used_ns >= refill_ns_; });
  if (shard.peers.size() < before) return;
  auto oldest = std::min_element(
      shard.peers.begin(), shard.peers.end(),
      [](const auto& a, const auto& b) { return a.second.last_used_ns < b.second.last_used_ns; });
  if (oldest != shard.peers.end()) shard.peers.erase(oldest);
}

size_t PeerBuckets::size() const {
  size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> lock(s.mu);
    n += s.peers.size();
  }
  return n;
}

}  // namespace kyrodb::server

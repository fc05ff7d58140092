// CallGate: what every KyroDB RPC but Health passes before it does any work, in this order:
//   1. the API key (x-api-key / authorization: Bearer metadata, Service::Authenticate):
//      UNAUTHENTICATED;
//   2. the rate limits (Service::Admit) with the connection's own bucket (PeerBuckets, keyed by
//      the peer address), the tenant's and the global one: RESOURCE_EXHAUSTED;
//   3. a bound on the calls in progress over all connections (limits.max_connections; a stream
//      counts until it ends): RESOURCE_EXHAUSTED.
// An admitted call holds a Pass; destroying the Pass frees its call slot.
//
// Thread-safety: Enter and Admit may be called concurrently from any thread.
#pragma once

#include <grpcpp/server_context.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "server/common/service.h"
#include "server/grpc/peer_buckets.h"

namespace kyrodb::server {

class CallGate {
 public:
  // An admitted call: who is calling, the connection's bucket (null: connections unlimited) and
  // one call slot, held until the Pass is destroyed. Move-only.
  class Pass {
   public:
    Pass(Pass&& other) noexcept;
    Pass& operator=(Pass&& other) = delete;
    Pass(const Pass&) = delete;
    ~Pass();
    const RequestContext& caller() const { return caller_; }

   private:
    friend class CallGate;
    Pass(RequestContext caller, std::shared_ptr<TokenBucket> connection,
         std::atomic<uint32_t>* slots)
        : caller_(std::move(caller)), connection_(std::move(connection)), slots_(slots) {}
    RequestContext caller_;
    std::shared_ptr<TokenBucket> connection_;
    std::atomic<uint32_t>* slots_;  // released by the destructor; null once moved from
  };

  explicit CallGate(Service& service);

  // Authenticates the call, takes one request from the rate limits (unless !charge: a stream
  // whose every message is charged with Admit) and a call slot.
  ApiResult<Pass> Enter(const ::grpc::CallbackServerContext& ctx, bool charge = true);
  // Charges one more request of an admitted call (a search of a BulkSearch stream).
  ApiStatus Admit(const Pass& pass);

  uint32_t calls_in_progress() const { return in_progress_.load(std::memory_order_relaxed); }

 private:
  Service& service_;
  PeerBuckets peers_;
  const uint32_t max_calls_;
  std::atomic<uint32_t> in_progress_{0};
};

}  // namespace kyrodb::server

#include "server/grpc/call_gate.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <utility>

namespace kyrodb::server {

namespace {

// Peers whose buckets are kept: well above the calls in progress, so that active connections
// are not forgotten (forgetting one resets its bucket).
size_t PeerCapacity(const ServerConfig& c) {
  return std::max<size_t>(1024, 4 * static_cast<size_t>(c.limits.max_connections));
}

}  // namespace

CallGate::Pass::Pass(Pass&& other) noexcept
    : caller_(std::move(other.caller_)),
      connection_(std::move(other.connection_)),
      slots_(std::exchange(other.slots_, nullptr)) {}

CallGate::Pass::~Pass() {
  if (slots_ != nullptr) slots_->fetch_sub(1, std::memory_order_relaxed);
}

CallGate::CallGate(Service& service)
    : service_(service),
      peers_(service.config().rate_limit.enabled
                 ? service.config().rate_limit.max_qps_per_connection
                 : 0,
             service.config().rate_limit.burst, PeerCapacity(service.config())),
      max_calls_(service.config().limits.max_connections) {}

ApiResult<CallGate::Pass> CallGate::Enter(const ::grpc::CallbackServerContext& ctx, bool charge) {
  const AccessCheckTimer check_timer(service_.metrics(), Transport::kGrpc);
  const auto& md = ctx.client_metadata();
  auto value = [&md](const char* key) {
    auto it = md.find(key);
    return it == md.end() ? std::string_view()
                          : std::string_view(it->second.data(), it->second.size());
  };
  auto rc = service_.Authenticate(value("x-api-key"), value("authorization"));
  std::shared_ptr<TokenBucket> connection;
  if (peers_.limited()) connection = peers_.Get(ctx.peer(), RateLimiter::NowNs());
  if (!rc.ok()) {
    // Refused calls count against the connection's and the global rate limits too.
    if (ApiStatus e = service_.AdmitUnauthenticated(connection.get(), nullptr)) return *e;
    return rc.error();
  }
  Pass pass(std::move(*rc), std::move(connection), nullptr);
  if (charge) {
    if (ApiStatus e = Admit(pass)) return *e;
  }
  if (in_progress_.fetch_add(1, std::memory_order_relaxed) >= max_calls_) {
    in_progress_.fetch_sub(1, std::memory_order_relaxed);
    return ApiError{ErrorCode::kResourceExhausted,
                    "server busy: " + std::to_string(max_calls_) +
                        " calls in progress (limits.max_connections); retry later"};
  }
  pass.slots_ = &in_progress_;
  return pass;
}

ApiStatus CallGate::Admit(const Pass& pass) {
  return service_.Admit(pass.caller_, pass.connection_.get(), nullptr);
}

}  // namespace kyrodb::server

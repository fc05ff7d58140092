// The streaming RPCs: BulkInsert and BulkLoadHnsw (client streams, batched into
// Service::BulkInsert) and BulkSearch (bidi, one response per request, in order). Each reactor
// keeps at most one read or write outstanding, so a fast client is held back by HTTP/2 flow
// control instead of filling server memory.
//
// Errors: a refused document (INVALID_ARGUMENT: bad id, dimension, values) is counted in
// total_failed and the stream goes on; a BulkSearch request that is invalid gets a response with
// `error` set, in its place. Any other error (unknown namespace, WAL unavailable, not ready, a
// search over the rate limit) ends the call with its status.
#include <sys/resource.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "server/grpc/grpc_convert.h"
#include "server/grpc/grpc_service.h"

namespace kyrodb::server {

namespace pb = ::kyrodb::v1;
using grpc_convert::ToGrpcStatus;

namespace {

// Documents per Service::BulkInsert call from a stream.
constexpr size_t kStreamBatch = 256;

bool IsPerItemError(const ApiError& e) {
  return GrpcCode(e.code) == static_cast<int>(::grpc::StatusCode::INVALID_ARGUMENT);
}

// Reads InsertRequests, inserts them in batches of one namespace, and reports the counts.
// Subclasses say how to answer at the end.
class InsertStreamReactor : public ::grpc::ServerReadReactor<pb::InsertRequest> {
 public:
  InsertStreamReactor(Service& service, ApiResult<CallGate::Pass> pass, Endpoint endpoint)
      : service_(service),
        pass_(pass.ok() ? std::make_optional(std::move(*pass)) : std::nullopt),
        ctx_(pass_ ? pass_->caller() : RequestContext{}),
        timer_(service, endpoint) {
    if (!pass.ok()) refused_ = pass.error();
  }

  void Begin() {
    if (!refused_) refused_ = Precondition();
    if (refused_) {
      Complete(ToGrpcStatus(*refused_));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // end of the client's stream (or cancelled: Finish is then ignored)
      if (!FlushBatch()) return;
      FinishStream();
      return;
    }
    if (batch_.empty() || request_.namespace_() != namespace_) {
      if (!FlushBatch()) return;
      if (!SwitchNamespace()) return;
    }
    batch_.push_back(grpc_convert::ToDocument(request_));
    if (batch_.size() >= kStreamBatch && !FlushBatch()) return;
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 protected:
  // Called once the client has sent everything and every batch is in.
  virtual void FinishStream() = 0;
  // Checked before the first read: an error refuses the call.
  virtual ApiStatus Precondition() const { return std::nullopt; }

  void Complete(::grpc::Status status) {
    timer_.Record(!status.ok());
    pass_.reset();  // the call's slot is free before the client sees the end
    Finish(std::move(status));
  }

  Service& service_;
  std::optional<CallGate::Pass> pass_;  // empty when refused or finished
  const RequestContext ctx_;
  uint64_t inserted_ = 0;
  uint64_t failed_ = 0;
  std::string first_error_;
  std::set<std::string> namespaces_;  // every namespace written to

 private:
  // Resolves request_.namespace_() (unknown -> NOT_FOUND ends the call).
  bool SwitchNamespace() {
    namespace_ = request_.namespace_();
    if (namespaces_.count(namespace_) != 0) return true;
    auto collection = service_.ResolveCollection(ctx_, namespace_);
    if (!collection.ok()) {
      Complete(ToGrpcStatus(collection.error()));
      return false;
    }
    namespaces_.insert(namespace_);
    return true;
  }

  // Inserts the pending batch. False when the call was finished with an error.
  bool FlushBatch() {
    if (batch_.empty()) return true;
    const size_t n = batch_.size();
    BulkInsertReply reply = service_.BulkInsert(ctx_, namespace_, std::move(batch_));
    batch_.clear();
    batch_.reserve(kStreamBatch);
    for (const auto& [index, error] : reply.errors) {
      if (!IsPerItemError(error)) {
        Complete(ToGrpcStatus(error));
        return false;
      }
      if (first_error_.empty()) {
        first_error_ = "documents[" + std::to_string(base_ + index) + "]: " + error.message;
      }
    }
    if (reply.inserted + reply.errors.size() != n) {
      Complete({::grpc::StatusCode::INTERNAL, "bulk insert failed at document " +
                                                  std::to_string(base_)});
      return false;
    }
    inserted_ += reply.inserted;
    failed_ += reply.errors.size();
    base_ += n;
    return true;
  }

  CallTimer timer_;
  ApiStatus refused_;  // by the gate or Precondition()
  pb::InsertRequest request_;
  std::string namespace_;  // of the pending batch
  std::vector<Document> batch_;
  uint64_t base_ = 0;  // stream index of batch_[0]
};

class BulkInsertReactor final : public InsertStreamReactor {
 public:
  BulkInsertReactor(Service& service, ApiResult<CallGate::Pass> pass, pb::InsertResponse* response)
      : InsertStreamReactor(service, std::move(pass), Endpoint::kBulkInsert), response_(response) {}

 private:
  void FinishStream() override {
    response_->set_success(failed_ == 0);
    response_->set_error(first_error_);
    response_->set_inserted_at(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count()));
    response_->set_tier(pb::InsertResponse::HOT_TIER);
    response_->set_total_inserted(inserted_);
    response_->set_total_failed(failed_);
    Complete(::grpc::Status::OK);
  }

  pb::InsertResponse* response_;
};

// BulkInsert, then a flush of every namespace written to so the documents are in HNSW when the
// call returns. Flushing is admin-only (Service::Flush), so is this RPC: a non-admin key is
// refused before anything is written (tenants load with BulkInsert).
class BulkLoadReactor final : public InsertStreamReactor {
 public:
  BulkLoadReactor(Service& service, ApiResult<CallGate::Pass> pass, pb::BulkLoadResponse* response)
      : InsertStreamReactor(service, std::move(pass), Endpoint::kBulkInsert),
        response_(response),
        start_(std::chrono::steady_clock::now()) {}

 private:
  ApiStatus Precondition() const override {
    if (ctx_.is_admin) return std::nullopt;
    return ApiError{ErrorCode::kPermissionDenied,
                    "BulkLoadHnsw flushes into HNSW and needs an admin key; use BulkInsert"};
  }

  void FinishStream() override {
    for (const std::string& ns : namespaces_) {
      auto r = service_.Flush(ctx_, ns.empty() ? std::string(kDefaultCollection) : ns);
      if (!r.ok()) {
        Complete(ToGrpcStatus(r.error()));
        return;
      }
    }
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - start_)
                          .count();
    response_->set_success(failed_ == 0);
    response_->set_error(first_error_);
    response_->set_total_loaded(inserted_);
    response_->set_total_failed(failed_);
    response_->set_load_duration_ms(static_cast<float>(ms));
    response_->set_avg_insert_rate(
        ms > 0 ? static_cast<float>(static_cast<double>(inserted_) * 1e3 / ms) : 0.0f);
    rusage ru{};
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
      response_->set_peak_memory_bytes(static_cast<uint64_t>(ru.ru_maxrss) * 1024);  // process peak
    }
    Complete(::grpc::Status::OK);
  }

  pb::BulkLoadResponse* response_;
  std::chrono::steady_clock::time_point start_;
};

// Read one request, search, write its response, then read the next: responses come in request
// order and at most one is buffered.
class BulkSearchReactor final : public ::grpc::ServerBidiReactor<pb::SearchRequest, pb::SearchResponse> {
 public:
  BulkSearchReactor(Service& service, CallGate& gate, ApiResult<CallGate::Pass> pass)
      : service_(service),
        gate_(gate),
        pass_(pass.ok() ? std::make_optional(std::move(*pass)) : std::nullopt) {
    if (!pass_) {
      Finish(ToGrpcStatus(pass.error()));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      End(::grpc::Status::OK);
      return;
    }
    const CallTimer item(service_, Endpoint::kBulkSearch);  // one record per search
    response_.Clear();
    MetadataFilter filter;
    bool has_filter = false;
    ApiStatus error = gate_.Admit(*pass_);  // every search counts
    if (!error) error = grpc_convert::ToFilter(request_, &filter, &has_filter);
    if (!error) {
      auto r = service_.Search(pass_->caller(), request_.namespace_(),
                               grpc_convert::ToSearchRequest(request_), has_filter ? &filter : nullptr);
      if (r.ok()) {
        grpc_convert::FillSearchResponse(std::move(*r), &response_);
      } else {
        error = r.error();
      }
    }
    item.Record(error.has_value());
    if (error) {
      if (!IsPerItemError(*error)) {
        End(ToGrpcStatus(*error));
        return;
      }
      response_.set_error(error->message);
    }
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      End({::grpc::StatusCode::CANCELLED, "client went away"});
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  void End(::grpc::Status status) {
    pass_.reset();  // the call's slot is free before the client sees the end
    Finish(std::move(status));
  }

  Service& service_;
  CallGate& gate_;
  std::optional<CallGate::Pass> pass_;  // empty when refused or ended
  pb::SearchRequest request_;
  pb::SearchResponse response_;
};

}  // namespace

GrpcService::InsertReader* NewBulkInsertReactor(Service& service, ApiResult<CallGate::Pass> pass,
                                                pb::InsertResponse* resp) {
  auto* r = new BulkInsertReactor(service, std::move(pass), resp);
  r->Begin();
  return r;
}

GrpcService::InsertReader* NewBulkLoadReactor(Service& service, ApiResult<CallGate::Pass> pass,
                                              pb::BulkLoadResponse* resp) {
  auto* r = new BulkLoadReactor(service, std::move(pass), resp);
  r->Begin();
  return r;
}

::grpc::ServerBidiReactor<pb::SearchRequest, pb::SearchResponse>* NewBulkSearchReactor(
    Service& service, CallGate& gate, ApiResult<CallGate::Pass> pass) {
  return new BulkSearchReactor(service, gate, std::move(pass));
}

}  // namespace kyrodb::server

// GrpcService: the kyrodb.v1.KyroDBService RPCs (callback API) over Service. Each handler
// decodes its request (grpc_convert.h), calls Service, encodes the reply, records the call in
// service.metrics() (Transport::kGrpc) and finishes with grpc::Status(GrpcCode(error)).
//
// Every RPC but Health (liveness) first passes the CallGate (API key, rate limits, calls in
// progress); an admitted call holds its CallGate::Pass until it finishes.
//
// Unary RPCs run on gRPC's callback threads; single Inserts are coalesced by an InsertBatcher
// into Service::BulkInsert calls, committed on the batcher's thread (a callback thread never
// waits for an fsync). Streams (grpc_streams.cc) handle one message at a time: a
// stream never has more than one read or write outstanding (back-pressure through HTTP/2 flow
// control). Thread-safety: gRPC calls the handlers concurrently; the class holds no mutable state
// besides the gate and the batcher.
#pragma once

#include <google/protobuf/arena.h>
#include <grpcpp/support/message_allocator.h>

#include "kyrodb/v1/kyrodb.grpc.pb.h"
#include "server/common/insert_batcher.h"
#include "server/common/service.h"
#include "server/grpc/call_gate.h"

namespace kyrodb::server {

// Request and response of one unary call on a protobuf Arena whose first block lives in the
// holder itself: a search's 768-float request and its hits (each with a metadata map) cost one
// allocation (the holder) instead of dozens, all freed at once when gRPC releases the call.
template <typename Req, typename Resp>
class ArenaMessageAllocator final : public ::grpc::MessageAllocator<Req, Resp> {
 public:
  ::grpc::MessageHolder<Req, Resp>* AllocateMessages() override { return new Holder; }

 private:
  static constexpr size_t kInlineBytes = 16 << 10;  // a 768-float request and 10 hits fit
  class Holder final : public ::grpc::MessageHolder<Req, Resp> {
   public:
    Holder() : arena_(Options(block_)) {
      this->set_request(google::protobuf::Arena::CreateMessage<Req>(&arena_));
      this->set_response(google::protobuf::Arena::CreateMessage<Resp>(&arena_));
    }
    void Release() override { delete this; }

   private:
    static google::protobuf::ArenaOptions Options(char* block) {
      google::protobuf::ArenaOptions o;
      o.initial_block = block;
      o.initial_block_size = kInlineBytes;
      return o;
    }
    alignas(16) char block_[kInlineBytes];  // before arena_: constructed first, destroyed last
    google::protobuf::Arena arena_;
  };
};

class GrpcService final : public ::kyrodb::v1::KyroDBService::CallbackService {
 public:
  // (Inside this class `Service` is the generated base; ours is server::Service.)
  explicit GrpcService(server::Service& service);

  using Ctx = ::grpc::CallbackServerContext;
  using Unary = ::grpc::ServerUnaryReactor;
  using InsertReader = ::grpc::ServerReadReactor<::kyrodb::v1::InsertRequest>;

  Unary* Insert(Ctx* ctx, const v1::InsertRequest* req, v1::InsertResponse* resp) override;
  InsertReader* BulkInsert(Ctx* ctx, v1::InsertResponse* resp) override;
  InsertReader* BulkLoadHnsw(Ctx* ctx, v1::BulkLoadResponse* resp) override;
  Unary* Delete(Ctx* ctx, const v1::DeleteRequest* req, v1::DeleteResponse* resp) override;
  Unary* UpdateMetadata(Ctx* ctx, const v1::UpdateMetadataRequest* req,
                        v1::UpdateMetadataResponse* resp) override;
  Unary* Query(Ctx* ctx, const v1::QueryRequest* req, v1::QueryResponse* resp) override;
  Unary* Search(Ctx* ctx, const v1::SearchRequest* req, v1::SearchResponse* resp) override;
  ::grpc::ServerBidiReactor<v1::SearchRequest, v1::SearchResponse>* BulkSearch(Ctx* ctx) override;
  Unary* BulkQuery(Ctx* ctx, const v1::BulkQueryRequest* req, v1::BulkQueryResponse* resp) override;
  Unary* BatchDelete(Ctx* ctx, const v1::BatchDeleteRequest* req,
                     v1::BatchDeleteResponse* resp) override;
  Unary* Health(Ctx* ctx, const v1::HealthRequest* req, v1::HealthResponse* resp) override;
  Unary* Metrics(Ctx* ctx, const v1::MetricsRequest* req, v1::MetricsResponse* resp) override;
  Unary* FlushHotTier(Ctx* ctx, const v1::FlushRequest* req, v1::FlushResponse* resp) override;
  Unary* CreateSnapshot(Ctx* ctx, const v1::SnapshotRequest* req,
                        v1::SnapshotResponse* resp) override;
  Unary* GetConfig(Ctx* ctx, const v1::ConfigRequest* req, v1::ConfigResponse* resp) override;

 private:
  server::Service& service_;
  CallGate gate_;
  InsertBatcher batcher_;
  ArenaMessageAllocator<v1::SearchRequest, v1::SearchResponse> search_messages_;
  ArenaMessageAllocator<v1::QueryRequest, v1::QueryResponse> query_messages_;
  ArenaMessageAllocator<v1::InsertRequest, v1::InsertResponse> insert_messages_;
};

// Times one call and records it in service.metrics() under Transport::kGrpc.
class CallTimer {
 public:
  CallTimer(Service& service, Endpoint endpoint);
  void Record(bool error) const;

 private:
  Service* service_;
  Endpoint endpoint_;
  int64_t start_ns_;
};

// The stream reactors (grpc_streams.cc). Each holds its Pass and deletes itself when the call
// is done. A refused `pass` finishes the call at once with its error.
GrpcService::InsertReader* NewBulkInsertReactor(Service& service, ApiResult<CallGate::Pass> pass,
                                                v1::InsertResponse* resp);
GrpcService::InsertReader* NewBulkLoadReactor(Service& service, ApiResult<CallGate::Pass> pass,
                                              v1::BulkLoadResponse* resp);
// Every search of the stream is charged to the rate limits (gate.Admit).
::grpc::ServerBidiReactor<v1::SearchRequest, v1::SearchResponse>* NewBulkSearchReactor(
    Service& service, CallGate& gate, ApiResult<CallGate::Pass> pass);

}  // namespace kyrodb::server

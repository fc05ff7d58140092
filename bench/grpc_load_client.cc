// RunGrpcLibraryLoad (`--grpc-client grpcpp`): `concurrency` clients, each with its own channel (a local subchannel pool, so its
// own TCP connection) and one unary call in flight through the asynchronous (completion queue)
// stub; `client_threads` queues, each polled by one thread, clients assigned round-robin. The
// next call is started from the thread that saw the previous one finish. Search requests are
// pre-built. (The callback stub was measured first and cost the same client CPU per call,
// ~40-45 us on the 2-core machine; with queues the number of client threads is ours to set.)
#include <fmt/format.h>
#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

#include <thread>
#include <memory>
#include <optional>

#include "kyrodb/v1/kyrodb.grpc.pb.h"
#include "load_client.h"
#include "load_run.h"

namespace kyrodb::bench {
namespace {

namespace pb = kyrodb::v1;

constexpr std::chrono::seconds kRequestTimeout{30};
constexpr std::chrono::seconds kConnectTimeout{10};

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target, size_t index) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt("kyrodb.bench.client", static_cast<int>(index));  // distinct channels
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

std::string StatusText(const grpc::Status& s) {
  return fmt::format("gRPC {}: {}", static_cast<int>(s.error_code()), s.error_message());
}

// One client: a channel and one call in flight, completed on its completion queue. Only that
// queue's thread touches it once started.
class Client {
 public:
  Client(std::shared_ptr<grpc::Channel> channel, grpc::CompletionQueue* cq, LoadRun& run,
         const std::vector<pb::SearchRequest>& searches, uint64_t seed)
      : channel_(std::move(channel)),
        stub_(pb::KyroDBService::NewStub(channel_)),
        cq_(cq),
        run_(run),
        searches_(searches),
        rng_(seed) {
    const LoadSpec& spec = run.spec();
    (*insert_.mutable_metadata())["source"] = "kyrodb_bench";
    insert_.set_namespace_(spec.collection);
    query_.set_namespace_(spec.collection);
    query_.set_include_embedding(spec.include_embedding);
  }

  Status Connect() {
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() + kConnectTimeout)) {
      return Status::IoError("gRPC: cannot connect to " + run_.spec().target);
    }
    return Status::Ok();
  }

  // Starts the next call; false once the run is over (nothing started).
  bool Issue() {
    if (run_.stopped()) return false;
    kind_ = run_.NextKind(rng_);
    context_.emplace();
    context_->set_deadline(std::chrono::system_clock::now() + kRequestTimeout);
    if (!run_.spec().api_key.empty()) context_->AddMetadata("x-api-key", run_.spec().api_key);
    t0_ = LoadClock::now();
    switch (kind_) {
      case RequestKind::kSearch:
        search_reply_.Clear();
        search_call_ = stub_->PrepareAsyncSearch(&*context_, searches_[run_.NextVectorRow()], cq_);
        search_call_->StartCall();
        search_call_->Finish(&search_reply_, &status_, this);
        break;
      case RequestKind::kInsert: {
        const FloatMatrix& v = *run_.spec().vectors;
        const float* row = v.Row(run_.NextVectorRow());
        insert_.set_doc_id(run_.NextInsertId());
        insert_.mutable_embedding()->Clear();
        insert_.mutable_embedding()->Add(row, row + v.dim);
        insert_reply_.Clear();
        insert_call_ = stub_->PrepareAsyncInsert(&*context_, insert_, cq_);
        insert_call_->StartCall();
        insert_call_->Finish(&insert_reply_, &status_, this);
        break;
      }
      case RequestKind::kQuery:
        query_.set_doc_id(run_.RandomId(rng_));
        query_reply_.Clear();
        query_call_ = stub_->PrepareAsyncQuery(&*context_, query_, cq_);
        query_call_->StartCall();
        query_call_->Finish(&query_reply_, &status_, this);
        break;
    }
    return true;
  }

  // The call in flight finished: records it and starts the next; false once the run is over.
  bool Done() {
    std::string app_error;
    bool not_found = false;
    switch (kind_) {
      case RequestKind::kSearch:
        app_error = search_reply_.error();
        break;
      case RequestKind::kInsert:
        if (!insert_reply_.success()) app_error = "Insert: " + insert_reply_.error();
        break;
      case RequestKind::kQuery:
        app_error = query_reply_.error();
        not_found = !query_reply_.found();
        break;
    }
    // An absent document is found=false with status OK; NOT_FOUND is an unknown collection.
    if (!status_.ok()) {
      run_.Record(tally_, kind_, t0_, Outcome::kError, StatusText(status_));
    } else if (!app_error.empty()) {
      run_.Record(tally_, kind_, t0_, Outcome::kError, app_error);
    } else {
      run_.Record(tally_, kind_, t0_, not_found ? Outcome::kNotFound : Outcome::kOk);
    }
    return Issue();
  }

  ClientTally& tally() { return tally_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::KyroDBService::Stub> stub_;
  grpc::CompletionQueue* cq_;
  LoadRun& run_;
  const std::vector<pb::SearchRequest>& searches_;
  std::mt19937_64 rng_;
  // The call in flight (a context serves one call).
  std::optional<grpc::ClientContext> context_;
  RequestKind kind_ = RequestKind::kSearch;
  LoadClock::time_point t0_;
  grpc::Status status_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::SearchResponse>> search_call_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::InsertResponse>> insert_call_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::QueryResponse>> query_call_;
  pb::InsertRequest insert_;
  pb::QueryRequest query_;
  pb::SearchResponse search_reply_;
  pb::InsertResponse insert_reply_;
  pb::QueryResponse query_reply_;
  ClientTally tally_;
};

// Drives the clients of one completion queue until all of them have stopped, then drains it.
void Poll(grpc::CompletionQueue* cq, size_t clients) {
  size_t active = clients;
  void* tag = nullptr;
  bool ok = false;
  while (cq->Next(&tag, &ok)) {
    if (!static_cast<Client*>(tag)->Done() && --active == 0) cq->Shutdown();
  }
}

}  // namespace

Result<LoadResult> RunGrpcLibraryLoad(const LoadSpec& spec) {
  if (spec.vectors == nullptr || spec.vectors->rows == 0) return Status::InvalidArgument("load: no vectors");
  std::vector<pb::SearchRequest> searches;
  if (spec.op == LoadOp::kSearch || spec.op == LoadOp::kMixed) {
    const FloatMatrix& v = *spec.vectors;
    searches.resize(v.rows);
    for (size_t r = 0; r < v.rows; ++r) {
      searches[r].mutable_query_embedding()->Add(v.Row(r), v.Row(r) + v.dim);
      searches[r].set_k(spec.k);
      searches[r].set_ef_search(spec.ef);
      searches[r].set_namespace_(spec.collection);
    }
  }

  const size_t threads = std::max<size_t>(1, spec.client_threads);
  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs;
  for (size_t t = 0; t < threads; ++t) cqs.push_back(std::make_unique<grpc::CompletionQueue>());
  LoadRun run(spec);
  std::vector<std::unique_ptr<Client>> clients;
  for (size_t c = 0; c < spec.concurrency; ++c) {
    clients.push_back(std::make_unique<Client>(MakeChannel(spec.target, c), cqs[c % threads].get(), run, searches,
                                               spec.seed * 1000003 + c));
    if (Status s = clients.back()->Connect(); !s.ok()) return s;
  }

  run.Start();
  for (auto& c : clients) c->Issue();
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    const size_t mine = spec.concurrency / threads + (t < spec.concurrency % threads ? 1 : 0);
    pool.emplace_back([cq = cqs[t].get(), mine, &run] {
      run.EnterClientThread();
      Poll(cq, mine);
    });
  }
  LoadResult result;
  run.Drive(&result);
  for (auto& t : pool) t.join();  // every client has seen the stop after its call in flight

  std::vector<ClientTally> tallies;
  for (auto& c : clients) tallies.push_back(std::move(c->tally()));
  run.Merge(tallies, &result);
  return result;
}

std::optional<GrpcClient> ParseGrpcClient(const std::string& name) {
  if (name == "h2") return GrpcClient::kH2;
  if (name == "grpcpp") return GrpcClient::kGrpcpp;
  return std::nullopt;
}

const char* GrpcClientName(GrpcClient client) { return client == GrpcClient::kH2 ? "h2" : "grpcpp"; }

Result<LoadResult> RunGrpcLoad(const LoadSpec& spec) {
  return spec.grpc_client == GrpcClient::kH2 ? RunGrpcH2Load(spec) : RunGrpcLibraryLoad(spec);
}

}  // namespace kyrodb::bench

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

#include "grpc_messages.h"
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
        rng_(seed),
        m_(run.spec()) {}

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
        m_.search_reply.Clear();
        search_call_ = stub_->PrepareAsyncSearch(&*context_, searches_[run_.NextVectorRow()], cq_);
        search_call_->StartCall();
        search_call_->Finish(&m_.search_reply, &status_, this);
        break;
      case RequestKind::kInsert:
        m_.insert_reply.Clear();
        insert_call_ = stub_->PrepareAsyncInsert(&*context_, m_.NextInsert(run_), cq_);
        insert_call_->StartCall();
        insert_call_->Finish(&m_.insert_reply, &status_, this);
        break;
      case RequestKind::kQuery:
        m_.query_reply.Clear();
        query_call_ = stub_->PrepareAsyncQuery(&*context_, m_.NextQuery(run_, rng_), cq_);
        query_call_->StartCall();
        query_call_->Finish(&m_.query_reply, &status_, this);
        break;
    }
    return true;
  }

  // The call in flight finished: records it and starts the next; false once the run is over.
  bool Done() {
    bool not_found = false;
    const std::string app_error = status_.ok() ? m_.ReplyError(kind_, &not_found) : "";
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
  GrpcMessages m_;
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
  const std::vector<pb::SearchRequest> searches = SearchRequests(spec);

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
  return run.RunClientThreads(
      threads,
      [&](size_t t) { Poll(cqs[t].get(), spec.concurrency / threads + (t < spec.concurrency % threads ? 1 : 0)); },
      clients);
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

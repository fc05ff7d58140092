// GET /v1/collections, PUT/GET/DELETE /v1/collections/{name}.
#include "server/common/config.h"
#include "server/http/handlers.h"
#include "server/http/json_writer.h"

namespace kyrodb::server::http {

namespace {

void WriteInfo(JsonWriter& w, const CollectionInfo& info) {
  w.BeginObject();
  w.Field("name", info.name);
  w.Field("dimension", info.options.dimension);
  w.Field("metric", MetricName(info.options.metric));
  w.Field("m", info.options.m);
  w.Field("ef_construction", info.options.ef_construction);
  w.Field("ef_search", info.options.ef_search);
  w.Field("documents", info.documents);
  w.EndObject();
}

}  // namespace

void HandleListCollections(HandlerContext& hc, HttpResponse& resp) {
  const std::vector<CollectionInfo> infos = hc.service.ListCollections(hc.request_context);
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Key("collections");
  w.BeginArray();
  for (const CollectionInfo& info : infos) WriteInfo(w, info);
  w.EndArray();
  w.EndObject();
}

void HandleCreateCollection(HandlerContext& hc, std::string_view name, HttpRequest& req,
                            HttpResponse& resp) {
  if (auto st = hc.json.Parse(&req.body)) return WriteError(*st, resp);
  CollectionOptions options;
  options.metric = Metric::kCosine;
  if (auto st = DecodeCreateCollection(hc.json, &options)) return WriteError(*st, resp);
  auto info = hc.service.CreateCollection(hc.request_context, name, options);
  if (!info.ok()) return WriteError(info.error(), resp);
  resp.status = 201;
  JsonWriter w(&resp.body);
  WriteInfo(w, *info);
}

void HandleDescribeCollection(HandlerContext& hc, std::string_view name, HttpResponse& resp) {
  auto info = hc.service.DescribeCollection(hc.request_context, name);
  if (!info.ok()) return WriteError(info.error(), resp);
  JsonWriter w(&resp.body);
  WriteInfo(w, *info);
}

void HandleDropCollection(HandlerContext& hc, std::string_view name, std::string_view query,
                          HttpResponse& resp) {
  std::string tenant;  // an admin may drop another tenant's collection: ?tenant=
  auto st = ForEachQueryParam(query, [&](std::string_view param, std::string_view value) -> ApiStatus {
    if (param == "tenant") {
      tenant.assign(value);
      return std::nullopt;
    }
    return ApiError{ErrorCode::kUnknownField,
                    "unknown query parameter '" + std::string(param) + "' (tenant)"};
  });
  if (st) return WriteError(*st, resp);
  if (auto e = hc.service.DropCollection(hc.request_context, name, tenant)) {
    return WriteError(*e, resp);
  }
  resp.body.append("{\"status\":\"ok\"}");
}

}  // namespace kyrodb::server::http

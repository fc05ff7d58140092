// flush, snapshot, and the operations endpoints: /health, /ready, /metrics, /slo.
#include "server/http/handlers.h"
#include "server/http/json_writer.h"

namespace kyrodb::server::http {

namespace {

const char* HealthName(HealthReport::State s) {
  switch (s) {
    case HealthReport::State::kHealthy: return "healthy";
    case HealthReport::State::kDegraded: return "degraded";
    case HealthReport::State::kUnhealthy: return "unhealthy";
  }
  return "unhealthy";
}

}  // namespace

void HandleFlush(HandlerContext& hc, HttpRequest& req, HttpResponse& resp) {
  if (auto st = hc.json.Parse(&req.body, /*empty_is_object=*/true)) return WriteError(*st, resp);
  FlushRequest r;
  if (auto st = DecodeFlush(hc.json, &r)) return WriteError(*st, resp);
  auto result = hc.service.Flush(hc.request_context, r.collection);
  if (!result.ok()) return WriteError(result.error(), resp);
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("status", "ok");
  w.Field("docs_flushed", result->docs_flushed);
  w.Field("duration_ms", result->duration_ms);
  w.EndObject();
}

void HandleSnapshot(HandlerContext& hc, HttpRequest& req, HttpResponse& resp) {
  if (auto st = hc.json.Parse(&req.body, /*empty_is_object=*/true)) return WriteError(*st, resp);
  if (auto st = DecodeSnapshot(hc.json)) return WriteError(*st, resp);
  auto result = hc.service.Snapshot(hc.request_context);
  if (!result.ok()) return WriteError(result.error(), resp);
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("status", "ok");
  w.Field("path", result->path);
  w.Field("documents", result->documents);
  w.Field("bytes", result->bytes);
  w.Field("duration_ms", result->duration_ms);
  w.EndObject();
}

void HandleHealth(HandlerContext& hc, HttpResponse& resp) {
  const HealthReport report = hc.service.Health();
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Field("status", HealthName(report.state));
  w.Key("components");
  w.BeginObject();
  for (const auto& [name, state] : report.components) w.Field(name, state);
  w.EndObject();
  w.Field("uptime_seconds", report.uptime_seconds);
  w.EndObject();
}

void HandleReady(HandlerContext& hc, HttpResponse& resp) {
  if (!hc.service.ready()) {
    return WriteError({ErrorCode::kNotReady, "the server is still recovering its data"}, resp);
  }
  resp.body.append("{\"ready\":true}");
}

void HandleMetrics(HandlerContext& hc, HttpResponse& resp) {
  resp.content_type = "text/plain; version=0.0.4";
  resp.body = hc.service.PrometheusText();
}

void HandleSlo(HandlerContext& hc, HttpResponse& resp) { resp.body = hc.service.SloJson(); }

void HandleUsage(HandlerContext& hc, std::string_view query, HttpResponse& resp) {
  bool all = false;  // ?all=true: every tenant (admin)
  auto st = ForEachQueryParam(query, [&](std::string_view name, std::string_view value) -> ApiStatus {
    if (name != "all") {
      return ApiError{ErrorCode::kUnknownField, "unknown query parameter '" + std::string(name) + "' (all)"};
    }
    if (value == "true" || value == "1") {
      all = true;
    } else if (value != "false" && value != "0") {
      return ApiError{ErrorCode::kInvalidArgument, "query parameter 'all' must be true or false"};
    }
    return std::nullopt;
  });
  if (st) return WriteError(*st, resp);
  auto usage = hc.service.Usage(hc.request_context, all);
  if (!usage.ok()) return WriteError(usage.error(), resp);
  JsonWriter w(&resp.body);
  w.BeginObject();
  w.Key("tenants");
  w.BeginArray();
  for (const TenantUsage& u : *usage) {
    w.BeginObject();
    w.Field("tenant", u.tenant);
    w.Field("collections", u.collections);
    w.Field("documents", u.documents);
    w.Field("max_vectors", u.max_vectors);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
}

}  // namespace kyrodb::server::http

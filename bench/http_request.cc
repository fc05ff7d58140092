#include "http_request.h"

// Boost 1.74 + g++ 12: <utility> before Boost (see BUILD-NOTES).
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>

namespace kyrodb::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

Result<HttpEndpoint> ParseHttpEndpoint(std::string_view url) {
  const std::string_view original = url;
  if (url.starts_with("http://")) url.remove_prefix(7);
  if (const size_t slash = url.find('/'); slash != std::string_view::npos) {
    if (url.substr(slash) != "/") {
      return Status::InvalidArgument("HTTP URL '" + std::string(original) + "': a path is not supported");
    }
    url = url.substr(0, slash);
  }
  const size_t colon = url.rfind(':');
  uint32_t port = 0;
  if (colon == std::string_view::npos || colon == 0) {
    return Status::InvalidArgument("HTTP URL '" + std::string(original) + "' must be http://host:port");
  }
  const char* first = url.data() + colon + 1;
  const char* last = url.data() + url.size();
  auto [end, ec] = std::from_chars(first, last, port);
  if (ec != std::errc() || end != last || port == 0 || port > 65535) {
    return Status::InvalidArgument("HTTP URL '" + std::string(original) + "': bad port");
  }
  return HttpEndpoint{std::string(url.substr(0, colon)), static_cast<uint16_t>(port)};
}

Result<HttpReply> HttpCall(const HttpEndpoint& endpoint, std::string_view method, std::string_view target,
                           std::string_view body, std::chrono::seconds timeout, std::string_view api_key) {
  const std::string what = std::string(method) + " " + std::string(target) + ": ";
  asio::io_context io;
  beast::error_code ec;
  asio::ip::tcp::resolver resolver(io);
  auto addresses = resolver.resolve(endpoint.host, std::to_string(endpoint.port), ec);
  if (ec) return Status::IoError(what + "resolve " + endpoint.host + ": " + ec.message());

  http::request<http::string_body> req(http::string_to_verb(beast::string_view(method.data(), method.size())),
                                       beast::string_view(target.data(), target.size()), 11);
  req.set(http::field::host, endpoint.HostHeader());
  if (!api_key.empty()) req.set("x-api-key", beast::string_view(api_key.data(), api_key.size()));
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.prepare_payload();

  // Asynchronous operations, because only those honour the stream's deadline (one for the
  // whole exchange).
  beast::tcp_stream stream(io);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 30);
  std::string failure;
  stream.expires_after(timeout);
  stream.async_connect(addresses, [&](beast::error_code e, const asio::ip::tcp::endpoint&) {
    if (e) {
      failure = "connect " + endpoint.HostHeader() + ": " + e.message();
      return;
    }
    http::async_write(stream, req, [&](beast::error_code e2, size_t) {
      if (e2) {
        failure = "write: " + e2.message();
        return;
      }
      http::async_read(stream, buffer, parser, [&](beast::error_code e3, size_t) {
        if (e3) failure = "read: " + e3.message();
      });
    });
  });
  io.run();
  if (!failure.empty()) return Status::IoError(what + failure);
  stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  return HttpReply{parser.get().result_int(), std::move(parser.get().body())};
}

}  // namespace kyrodb::bench

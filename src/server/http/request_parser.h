// RequestParser: the Beast parser that reads one HTTP/1.x request into an HttpRequest. It keeps
// only what the handlers use (method, version, target, Content-Type, Expect, Authorization,
// x-api-key and the body) in strings reused from request to request: no allocation per header
// field. The connection (http_server.cc) sets header_limit() and body_limit() before reading;
// the fuzz target (fuzz/http_request_fuzz.cc) drives it with the same limits.
// Thread-safety: one parser per connection, used by one thread at a time.
#pragma once

#include <utility>  // before Boost: Boost 1.74 asio needs std::exchange (BUILD-NOTES)

#include <simdjson.h>

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/optional.hpp>
#include <cstddef>
#include <cstdint>

#include "server/http/handlers.h"

namespace kyrodb::server::http {

class RequestParser : public boost::beast::http::basic_parser<true> {
 public:
  explicit RequestParser(HttpRequest* req) : req_(req) {}
  bool expect_continue() const { return expect_continue_; }

 private:
  using string_view = boost::beast::string_view;
  using error_code = boost::beast::error_code;
  using field = boost::beast::http::field;

  void on_request_impl(boost::beast::http::verb method, string_view, string_view target,
                       int version, error_code&) override {
    req_->method = method;
    req_->version = version;
    req_->target.assign(target.data(), target.size());
    req_->content_type.clear();
    req_->api_key.clear();
    req_->authorization.clear();
    req_->body.clear();
  }
  void on_response_impl(int, string_view, int, error_code&) override {}
  void on_field_impl(field name, string_view name_string, string_view value,
                     error_code&) override {
    if (name == field::content_type) {
      req_->content_type.assign(value.data(), value.size());
    } else if (name == field::expect) {
      expect_continue_ = boost::beast::iequals(value, "100-continue");
    } else if (name == field::authorization) {
      req_->authorization.assign(value.data(), value.size());
    } else if (name == field::unknown && boost::beast::iequals(name_string, "x-api-key")) {
      req_->api_key.assign(value.data(), value.size());
    }
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length, error_code&) override {
    // The limit was checked against Content-Length already; room for simdjson's padding too.
    if (length) req_->body.reserve(static_cast<size_t>(*length) + simdjson::SIMDJSON_PADDING);
  }
  size_t on_body_impl(string_view body, error_code&) override {
    req_->body.append(body.data(), body.size());
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
    req_->body.append(body.data(), body.size());
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  HttpRequest* req_;
  bool expect_continue_ = false;
};

}  // namespace kyrodb::server::http

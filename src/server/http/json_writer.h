// JsonWriter: appends JSON text to a caller-owned std::string, without building a DOM. The HTTP
// handlers reuse one output string per connection, so writing a response allocates nothing once
// the string has grown to the usual response size.
//
// Commas are placed automatically: a value or key written after another value gets one. Floats
// are written in their shortest round-trip form (std::to_chars); NaN and infinities, which JSON
// cannot express, are written as null. Strings are escaped per RFC 8259 (", \, control
// characters); other bytes, including UTF-8 sequences, pass through unchanged.
// Thread-safety: one writer per thread; it only touches its output string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kyrodb::server::http {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  void BeginObject() { Separate(); out_->push_back('{'); }
  void EndObject() { out_->push_back('}'); }
  void BeginArray() { Separate(); out_->push_back('['); }
  void EndArray() { out_->push_back(']'); }
  // The next value belongs to this key.
  void Key(std::string_view key);

  void String(std::string_view s);
  void Uint(uint64_t v);
  void Int(int64_t v);
  void Float(float v);
  void Double(double v);
  void Bool(bool v);
  void Null();
  // Appends `json`, which must be one complete JSON value, as the next value.
  void Raw(std::string_view json);

  // Shorthands for "key": value.
  void Field(std::string_view key, std::string_view v) { Key(key); String(v); }
  void Field(std::string_view key, const char* v) { Key(key); String(v); }
  void Field(std::string_view key, uint64_t v) { Key(key); Uint(v); }
  void Field(std::string_view key, uint32_t v) { Key(key); Uint(v); }
  void Field(std::string_view key, double v) { Key(key); Double(v); }
  void Field(std::string_view key, bool v) { Key(key); Bool(v); }

  // Appends `s` with JSON string escaping, without quotes.
  static void AppendEscaped(std::string* out, std::string_view s);

 private:
  // A comma unless this is the first element of an object/array or the value after a key.
  void Separate() {
    if (!out_->empty()) {
      const char last = out_->back();
      if (last != '{' && last != '[' && last != ':') out_->push_back(',');
    }
  }

  std::string* out_;
};

}  // namespace kyrodb::server::http

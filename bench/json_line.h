// JsonLine: builds one flat JSON object for the benchmarks' JSON-lines output.
// Keys are emitted in insertion order; non-finite numbers and empty optionals become null.
// Thread-safety: a value type; not shared.
#pragma once

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kyrodb::bench {

class JsonLine {
 public:
  JsonLine& Add(std::string_view key, std::string_view value) {
    Key(key);
    Quote(value);
    return *this;
  }
  JsonLine& Add(std::string_view key, const char* value) {
    return Add(key, std::string_view(value));
  }
  JsonLine& Add(std::string_view key, bool value) {
    Key(key);
    out_ += value ? "true" : "false";
    return *this;
  }
  JsonLine& Add(std::string_view key, uint64_t value) {
    Key(key);
    out_ += std::to_string(value);
    return *this;
  }
  JsonLine& Add(std::string_view key, int value) {
    Key(key);
    out_ += std::to_string(value);
    return *this;
  }
  // Six significant digits: enough for timings and recall, short lines.
  JsonLine& Add(std::string_view key, double value) {
    Key(key);
    out_ += std::isfinite(value) ? fmt::format("{:.6g}", value) : "null";
    return *this;
  }
  JsonLine& Add(std::string_view key, std::optional<double> value) {
    return value ? Add(key, *value) : AddNull(key);
  }
  JsonLine& AddNull(std::string_view key) {
    Key(key);
    out_ += "null";
    return *this;
  }

  // The object, without a trailing newline.
  std::string str() const { return out_ + "}"; }

 private:
  void Key(std::string_view key) {
    out_ += out_.size() == 1 ? "" : ",";
    Quote(key);
    out_ += ':';
  }
  void Quote(std::string_view s) {
    out_ += '"';
    for (char c : s) {
      switch (c) {
        case '"':
          out_ += "\\\"";
          break;
        case '\\':
          out_ += "\\\\";
          break;
        case '\n':
          out_ += "\\n";
          break;
        case '\t':
          out_ += "\\t";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            out_ += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
          } else {
            out_ += c;
          }
      }
    }
    out_ += '"';
  }

  std::string out_ = "{";
};

}  // namespace kyrodb::bench

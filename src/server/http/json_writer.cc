#include "server/http/json_writer.h"

#include <array>
#include <charconv>
#include <cmath>

namespace kyrodb::server::http {

namespace {

// 0: copy as is; otherwise the character after the backslash ('u' = \u00XX).
constexpr std::array<char, 256> MakeEscapeTable() {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['"'] = '"';
  t['\\'] = '\\';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  return t;
}
constexpr std::array<char, 256> kEscape = MakeEscapeTable();

template <typename T>
void AppendChars(std::string* out, T v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

}  // namespace

void JsonWriter::AppendEscaped(std::string* out, std::string_view s) {
  const char* p = s.data();
  const char* const end = p + s.size();
  const char* run = p;  // start of the bytes not yet copied
  for (; p != end; ++p) {
    const char e = kEscape[static_cast<unsigned char>(*p)];
    if (e == 0) continue;
    out->append(run, p);
    if (e == 'u') {
      static constexpr char kHex[] = "0123456789abcdef";
      const auto c = static_cast<unsigned char>(*p);
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out->append(u, 6);
    } else {
      const char two[2] = {'\\', e};
      out->append(two, 2);
    }
    run = p + 1;
  }
  out->append(run, end);
}

void JsonWriter::Key(std::string_view key) {
  Separate();
  out_->push_back('"');
  AppendEscaped(out_, key);
  out_->append("\":", 2);
}

void JsonWriter::String(std::string_view s) {
  Separate();
  out_->push_back('"');
  AppendEscaped(out_, s);
  out_->push_back('"');
}

void JsonWriter::Uint(uint64_t v) {
  Separate();
  AppendChars(out_, v);
}

void JsonWriter::Int(int64_t v) {
  Separate();
  AppendChars(out_, v);
}

void JsonWriter::Float(float v) {
  Separate();
  if (!std::isfinite(v)) {
    out_->append("null", 4);
    return;
  }
  AppendChars(out_, v);
}

void JsonWriter::Double(double v) {
  Separate();
  if (!std::isfinite(v)) {
    out_->append("null", 4);
    return;
  }
  AppendChars(out_, v);
}

void JsonWriter::Bool(bool v) {
  Separate();
  if (v) {
    out_->append("true", 4);
  } else {
    out_->append("false", 5);
  }
}

void JsonWriter::Null() {
  Separate();
  out_->append("null", 4);
}

void JsonWriter::Raw(std::string_view json) {
  Separate();
  out_->append(json);
}

}  // namespace kyrodb::server::http

#include "server/http/request_decoder.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include <fast_float/fast_float.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "base/cpu.h"
#include "server/common/config.h"

namespace kyrodb::server::http {

namespace {

using simdjson::error_code;

std::string Quoted(std::string_view s) {
  std::string r;
  r.reserve(s.size() + 2);
  r.push_back('\'');
  r.append(s);
  r.push_back('\'');
  return r;
}

ApiError Err(ErrorCode code, std::string message) { return {code, std::move(message)}; }

// Errors of simdjson that mean "the value is there but has another type or range".
bool IsTypeError(error_code e) {
  return e == simdjson::INCORRECT_TYPE || e == simdjson::NUMBER_OUT_OF_RANGE;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsJsonSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// One JSON number at p, scanned by the grammar -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?:
// its end, or nullptr if no number starts there (or one starts with a leading zero), and its
// value as mantissa * 10^exponent with at most the first 19 significant digits (`truncated`
// when some were dropped). The exponent saturates far outside any float's range.
struct JsonNumber {
  bool negative = false;
  bool truncated = false;
  uint64_t mantissa = 0;
  int64_t exponent = 0;
};

// The value of eight ASCII digits (little-endian load: the first digit is the lowest byte).
// Neighbours combine pairwise: 2 digits per 16 bits, then 4 per 32, then all 8.
inline uint64_t Digits8Value(uint64_t v) {
  v -= 0x3030303030303030ULL;
  v = (v * 10) + (v >> 8);  // each 16-bit lane: 10 * first digit + second (low byte)
  v = (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
       (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >> 32;
  return v;
}

// One flag (the byte's high bit) for each byte of `v` that is not an ASCII digit, exact up to
// and including the first non-digit: digits neither carry nor borrow, so nothing below the
// first non-digit disturbs its flag (bytes after it may be flagged wrongly; only the lowest
// flag is used). A digit d gives d + 0x46 <= 0x7f and d - 0x30 <= 9, no high bit; any other
// byte sets the high bit of one of the two.
inline uint64_t NonDigitBytes(uint64_t v) {
  return ((v + 0x4646464646464646ULL) | (v - 0x3030303030303030ULL)) & 0x8080808080808080ULL;
}

constexpr uint64_t kPow10U64[] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000};

// Reads a run of digits into n (each one either fits in the 19-digit mantissa or, past it, is
// counted as `truncated`); `fraction` digits lower the exponent, dropped integer digits raise it.
// A mantissa below 10^18 has at most 18 significant digits, so one more fits; below 10^11,
// eight more do. The fast path reads eight bytes at a time: eight digits at once, or the k < 8
// digits before the first non-digit, shifted up and padded with '0's into an eight-digit
// number, without a branch per digit (the run lengths of real numbers vary, and a mispredicted
// branch per number cost more than the arithmetic).
[[gnu::always_inline]] inline const char* ScanDigits(const char* p, const char* end, bool fraction,
                                                   JsonNumber* n) {
  constexpr uint64_t kEightMoreFit = 100'000'000'000ULL;           // 10^11
  constexpr uint64_t kOneMoreFits = 1'000'000'000'000'000'000ULL;  // 10^18
  while (end - p >= 8 && n->mantissa < kEightMoreFit) {
    uint64_t chunk;
    std::memcpy(&chunk, p, 8);
    const uint64_t non_digits = NonDigitBytes(chunk);
    if (non_digits == 0) {
      n->mantissa = n->mantissa * 100'000'000 + Digits8Value(chunk);
      if (fraction) n->exponent -= 8;
      p += 8;
      continue;
    }
    const int k = std::countr_zero(non_digits) >> 3;  // digits before the first non-digit
    if (k > 0) {
      const uint64_t digits = (chunk << (8 * (8 - k))) | (0x3030303030303030ULL >> (8 * k));
      n->mantissa = n->mantissa * kPow10U64[k] + Digits8Value(digits);
      if (fraction) n->exponent -= k;
      p += k;
    }
    return p;
  }
  for (; p < end && IsDigit(*p); ++p) {
    if (n->mantissa < kOneMoreFits) {
      n->mantissa = n->mantissa * 10 + static_cast<uint64_t>(*p - '0');
      if (fraction) --n->exponent;
    } else {
      n->truncated = true;
      if (!fraction) ++n->exponent;
    }
  }
  return p;
}

[[gnu::always_inline]] inline const char* ScanJsonNumber(const char* p, const char* end, JsonNumber* n) {
  n->negative = p < end && *p == '-';
  if (n->negative) ++p;
  if (p == end || !IsDigit(*p)) return nullptr;
  if (*p == '0') {
    ++p;
    if (p < end && IsDigit(*p)) return nullptr;  // no leading zeros
  } else {
    p = ScanDigits(p, end, /*fraction=*/false, n);
  }
  if (p < end && *p == '.') {
    ++p;
    if (p == end || !IsDigit(*p)) return nullptr;
    p = ScanDigits(p, end, /*fraction=*/true, n);
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    bool negative_exponent = false;
    if (p < end && (*p == '+' || *p == '-')) negative_exponent = *p++ == '-';
    if (p == end || !IsDigit(*p)) return nullptr;
    int64_t e = 0;
    for (; p < end && IsDigit(*p); ++p) {
      if (e < 1'000'000) e = e * 10 + (*p - '0');
    }
    n->exponent += negative_exponent ? -e : e;
  }
  return p;
}

// Any well-formed JSON number, also one outside the float or double range.
bool IsJsonNumber(std::string_view s) {
  JsonNumber n;
  return ScanJsonNumber(s.data(), s.data() + s.size(), &n) == s.data() + s.size();
}

ApiError SyntaxError(error_code e, std::string_view field) {
  return Err(ErrorCode::kInvalidJson, "request body is not valid JSON in field " + Quoted(field) +
                                          ": " + simdjson::error_message(e));
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' ||
                        s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

error_code WalkObject(sj::object& obj);

// Reads `v` to its end, checking every token (On-Demand checks only what is read). Numbers are
// checked against the JSON grammar only: their magnitude is the decoders' business.
error_code WalkValue(sj::value v) {
  sj::json_type t;
  if (auto e = v.type().get(t)) return e;
  switch (t) {
    case sj::json_type::array: {
      sj::array arr;
      if (auto e = v.get_array().get(arr)) return e;
      for (auto er : arr) {
        sj::value el;
        if (auto e = std::move(er).get(el)) return e;
        if (auto e = WalkValue(el)) return e;
      }
      return simdjson::SUCCESS;
    }
    case sj::json_type::object: {
      sj::object obj;
      if (auto e = v.get_object().get(obj)) return e;
      return WalkObject(obj);
    }
    case sj::json_type::number:
      return IsJsonNumber(Trim(v.raw_json_token())) ? simdjson::SUCCESS : simdjson::NUMBER_ERROR;
    case sj::json_type::string: {
      std::string_view s;
      return v.get_string().get(s);
    }
    case sj::json_type::boolean: {
      bool b;
      return v.get_bool().get(b);
    }
    case sj::json_type::null: {
      bool is_null = false;
      if (auto e = v.is_null().get(is_null)) return e;
      return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
    }
  }
  return simdjson::INCORRECT_TYPE;
}

error_code WalkObject(sj::object& obj) {
  for (auto fr : obj) {
    sj::field f;
    if (auto e = std::move(fr).get(f)) return e;
    std::string_view key;
    if (auto e = f.unescaped_key().get(key)) return e;
    if (auto e = WalkValue(f.value())) return e;
  }
  return simdjson::SUCCESS;
}

const char* TypeName(sj::value& v) {
  sj::json_type t;
  if (v.type().get(t) != simdjson::SUCCESS) return "invalid JSON";
  switch (t) {
    case sj::json_type::array: return "an array";
    case sj::json_type::object: return "an object";
    case sj::json_type::number: return "a number";
    case sj::json_type::string: return "a string";
    case sj::json_type::boolean: return "a boolean";
    case sj::json_type::null: return "null";
  }
  return "a value";
}

// A failed typed read of `v`: INVALID_JSON when the token itself is malformed (an atom like
// `tru`, a number like `.5` or `--1`, a token that is no JSON value), else INVALID_ARGUMENT
// saying what the field must be.
ApiError TypeError(sj::value& v, error_code e, std::string_view field, std::string_view want) {
  if (!IsTypeError(e)) return SyntaxError(e, field);
  const std::string_view tok = Trim(v.raw_json_token());
  if (!tok.empty() && (tok[0] == 't' || tok[0] == 'f' || tok[0] == 'n') && tok != "true" &&
      tok != "false" && tok != "null") {
    return Err(ErrorCode::kInvalidJson,
               "request body is not valid JSON in field " + Quoted(field) + ": bad literal");
  }
  sj::json_type type;
  if (v.type().get(type) != simdjson::SUCCESS || (type == sj::json_type::number && !IsJsonNumber(tok))) {
    return Err(ErrorCode::kInvalidJson, "request body is not valid JSON in field " + Quoted(field) +
                                            ": malformed value " + Quoted(tok));
  }
  std::string m = "field " + Quoted(field) + " must be " + std::string(want) + ", not ";
  m += TypeName(v);
  return Err(ErrorCode::kInvalidArgument, std::move(m));
}

ApiError UnknownField(std::string_view key, std::string_view where) {
  return Err(ErrorCode::kUnknownField,
             "unknown field " + Quoted(key) + " in " + std::string(where));
}

ApiError MissingField(std::string_view key, std::string_view where) {
  return Err(ErrorCode::kMissingField,
             std::string(where) + " needs field " + Quoted(key));
}

ApiStatus ReadKey(sj::field& f, std::string_view* key) {
  if (auto e = f.unescaped_key().get(*key)) return SyntaxError(e, "<key>");
  return std::nullopt;
}

ApiStatus ReadStringView(sj::value v, std::string_view field, std::string_view* out) {
  if (auto e = v.get_string().get(*out)) return TypeError(v, e, field, "a string");
  return std::nullopt;
}

ApiStatus ReadString(sj::value v, std::string_view field, std::string* out) {
  std::string_view s;
  if (auto st = ReadStringView(v, field, &s)) return st;
  out->assign(s);
  return std::nullopt;
}

// Whether `v` is null, the literal checked: type() looks at the first byte only, and On-Demand
// does not validate what it skips, so `nul` or `nxyz` would otherwise pass as null.
ApiStatus ReadNull(sj::value v, std::string_view field, bool* out) {
  *out = false;
  sj::json_type t;
  if (v.type().get(t) != simdjson::SUCCESS || t != sj::json_type::null) return std::nullopt;
  if (auto e = v.is_null().get(*out)) return SyntaxError(e, field);
  if (!*out) return SyntaxError(simdjson::N_ATOM_ERROR, field);
  return std::nullopt;
}

ApiStatus ReadBool(sj::value v, std::string_view field, bool* out) {
  if (auto e = v.get_bool().get(*out)) return TypeError(v, e, field, "true or false");
  return std::nullopt;
}

// An integer in [lo, hi]; a whole number out of range is `range_code`.
ApiStatus ReadInteger(sj::value v, std::string_view field, uint64_t lo, uint64_t hi,
                      ErrorCode range_code, uint64_t* out) {
  sj::json_type t;
  if (auto e = v.type().get(t)) return SyntaxError(e, field);
  if (t != sj::json_type::number) return TypeError(v, simdjson::INCORRECT_TYPE, field, "an integer");
  const std::string_view tok = Trim(v.raw_json_token());
  uint64_t n = 0;
  error_code e;
  if (!tok.empty() && tok[0] == '-') {
    int64_t i = 0;
    e = v.get_int64().get(i);
    if (e == simdjson::SUCCESS) e = simdjson::NUMBER_OUT_OF_RANGE;  // negative
  } else {
    e = v.get_uint64().get(n);
    if (e == simdjson::SUCCESS && (n < lo || n > hi)) e = simdjson::NUMBER_OUT_OF_RANGE;
  }
  if (e == simdjson::SUCCESS) {
    *out = n;
    return std::nullopt;
  }
  if (e == simdjson::NUMBER_OUT_OF_RANGE) {
    return Err(range_code, "field " + Quoted(field) + " must be in " + std::to_string(lo) + ".." +
                               std::to_string(hi) + ", not " + std::string(tok));
  }
  return TypeError(v, e, field, "an integer");
}

ApiStatus ReadUint32(sj::value v, std::string_view field, uint32_t lo, uint32_t hi,
                     ErrorCode range_code, uint32_t* out) {
  uint64_t n = 0;
  if (auto st = ReadInteger(v, field, lo, hi, range_code, &n)) return st;
  *out = static_cast<uint32_t>(n);
  return std::nullopt;
}

// simdjson (3.0.1, Debian bookworm) misreads some numbers of more than 19 significant digits:
// "0.0000000000685245655226206572380497" comes back as 4.45e-16. It still says whether the value
// is a well-formed number; the value itself is read from the token by fast_float.
double CorrectDouble(sj::value& v, double simdjson_value) {
  const std::string_view tok = Trim(v.raw_json_token());
  double d = simdjson_value;
  fast_float::from_chars(tok.data(), tok.data() + tok.size(), d);
  return d;
}

ApiStatus ReadFloat(sj::value v, std::string_view field, float* out) {
  double d = 0;
  if (auto e = v.get_double().get(d)) return TypeError(v, e, field, "a number");
  d = CorrectDouble(v, d);
  if (!(std::fabs(d) <= std::numeric_limits<float>::max())) {
    return Err(ErrorCode::kNonFiniteValue, "field " + Quoted(field) + " is outside the float range");
  }
  *out = static_cast<float>(d);
  return std::nullopt;
}

ApiStatus ReadCollection(sj::value v, std::string_view* out) {
  return ReadStringView(v, "collection", out);
}

std::string Indexed(std::string_view field, size_t i) {
  std::string s(field);
  s.push_back('[');
  s += std::to_string(i);
  s.push_back(']');
  return s;
}

// One document of insert or bulk_insert. `where` names it in messages.
ApiStatus ReadDocument(sj::object& obj, std::string_view where, size_t dim_hint, Document* doc,
                       bool* has_key, std::string_view* collection) {
  bool has_embedding = false;
  *has_key = false;
  for (auto fr : obj) {
    sj::field f;
    if (auto e = std::move(fr).get(f)) return SyntaxError(e, where);
    std::string_view key;
    if (auto st = ReadKey(f, &key)) return st;
    if (key == "doc_id") {
      if (auto st = ReadDocKey(f.value(), "doc_id", &doc->key)) return st;
      *has_key = true;
    } else if (key == "embedding") {
      if (auto st = ReadEmbedding(f.value(), "embedding", dim_hint, &doc->embedding)) return st;
      has_embedding = true;
    } else if (key == "metadata") {
      if (auto st = ReadMetadata(f.value(), "metadata", &doc->metadata)) return st;
    } else if (key == "collection" && collection != nullptr) {
      if (auto st = ReadCollection(f.value(), collection)) return st;
    } else {
      return UnknownField(key, where);
    }
  }
  if (!*has_key) return MissingField("doc_id", where);
  if (!has_embedding) return MissingField("embedding", where);
  return std::nullopt;
}

// Iterates the top-level object, calling on_field(key, value) -> ApiStatus for each field.
template <typename F>
ApiStatus ForEachField(JsonBody& body, F&& on_field) {
  for (auto fr : body.object()) {
    sj::field f;
    if (auto e = std::move(fr).get(f)) return SyntaxError(e, "<request>");
    std::string_view key;
    if (auto st = ReadKey(f, &key)) return st;
    if (auto st = on_field(key, f.value())) return st;
  }
  return body.Finish();
}

}  // namespace

ApiStatus JsonBody::Parse(std::string* body, bool empty_is_object) {
  std::string* text = body;
  if (empty_is_object && body->find_first_not_of(" \t\r\n") == std::string::npos) {
    if (empty_object_.empty()) {
      empty_object_ = "{}";
      empty_object_.reserve(2 + simdjson::SIMDJSON_PADDING);
    }
    text = &empty_object_;
  }
  if (text->capacity() < text->size() + simdjson::SIMDJSON_PADDING) {
    text->reserve(text->size() + simdjson::SIMDJSON_PADDING);
  }
  begin_ = text->data();
  size_ = text->size();
  capacity_ = text->capacity();
  const simdjson::padded_string_view view(text->data(), text->size(), text->capacity());
  if (auto e = parser_.iterate(view).get(doc_)) {
    return Err(ErrorCode::kInvalidJson,
               std::string("request body is not valid JSON: ") + simdjson::error_message(e));
  }
  if (auto e = doc_.get_object().get(object_)) {
    // A well-formed JSON value of another type is the wrong argument; anything else bad JSON.
    std::string_view tok;
    if (e == simdjson::INCORRECT_TYPE && doc_.raw_json_token().get(tok) == simdjson::SUCCESS) {
      tok = Trim(tok);
      if (!tok.empty() && (tok[0] == '[' || tok[0] == '"' || tok == "true" || tok == "false" ||
                           tok == "null" || IsJsonNumber(tok))) {
        return Err(ErrorCode::kInvalidArgument, "request body must be a JSON object");
      }
    }
    return Err(ErrorCode::kInvalidJson,
               std::string("request body is not valid JSON: ") + simdjson::error_message(e));
  }
  return std::nullopt;
}

ApiStatus JsonBody::Finish() {
  // current_location() is OUT_OF_BOUNDS exactly when the whole input was consumed.
  const char* at = nullptr;
  const error_code e = doc_.current_location().get(at);
  if (e == simdjson::OUT_OF_BOUNDS) return std::nullopt;
  std::string m = "request body is not valid JSON: unexpected content after the object";
  if (e == simdjson::SUCCESS) m += " at byte " + std::to_string(at - begin_);
  return Err(ErrorCode::kInvalidJson, std::move(m));
}

ApiStatus JsonBody::Validate() {
  // A second parser: parser_'s string buffer holds the strings already decoded.
  const simdjson::padded_string_view view(begin_, size_, capacity_);
  sj::document doc;
  sj::object obj;
  error_code e = validator_.iterate(view).get(doc);
  if (e == simdjson::SUCCESS) e = doc.get_object().get(obj);
  if (e == simdjson::SUCCESS) e = WalkObject(obj);
  if (e == simdjson::SUCCESS) return std::nullopt;
  return Err(ErrorCode::kInvalidJson,
             std::string("request body is not valid JSON: ") + simdjson::error_message(e));
}

ApiStatus ReadDocKey(sj::value v, std::string_view field, DocKey* out) {
  sj::json_type t;
  if (auto e = v.type().get(t)) return SyntaxError(e, field);
  if (t == sj::json_type::string) {
    std::string_view s;
    if (auto e = v.get_string().get(s)) return SyntaxError(e, field);
    out->id = 0;
    out->external.assign(s);
    if (s.empty()) {
      return Err(ErrorCode::kInvalidDocId, "field " + Quoted(field) + " must not be empty");
    }
    return std::nullopt;
  }
  if (t == sj::json_type::number) {
    uint64_t id = 0;
    if (auto e = v.get_uint64().get(id)) {
      if (e != simdjson::INCORRECT_TYPE && e != simdjson::NUMBER_OUT_OF_RANGE) {
        return SyntaxError(e, field);
      }
      return Err(ErrorCode::kInvalidDocId,
                 "field " + Quoted(field) + " must be a positive integer or a string, not " +
                     std::string(Trim(v.raw_json_token())));
    }
    out->id = id;
    out->external.clear();
    return std::nullopt;
  }
  return Err(ErrorCode::kInvalidDocId, "field " + Quoted(field) +
                                           " must be a positive integer or a string, not " +
                                           TypeName(v));
}

namespace {

constexpr double kExactPowersOf10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
// One JSON number at p (ScanJsonNumber), as the float nearest to it. Returns
// the end of the number, or nullptr if none starts at p or it is outside the float range.
// Clinger's fast path: a decimal of at most 19 significant digits with mantissa <= 2^53 and
// |exponent| <= 22 is one correctly rounded double operation. The double is then rounded to
// float, which equals rounding the decimal to float unless the double fell exactly on a
// midpoint between two floats (every such midpoint is a double, so a decimal on one side of it
// never rounds to the other side); that case, subnormals and the rest go to fast_float.
const char* ParseJsonFloat(const char* p, const char* end, float* out) {
  const char* const start = p;
  JsonNumber n;
  p = ScanJsonNumber(p, end, &n);
  if (p == nullptr) return nullptr;
  const uint64_t mantissa = n.mantissa;
  const int64_t exponent = n.exponent;
  if (!n.truncated && mantissa <= (uint64_t{1} << 53) && exponent >= -22 && exponent <= 22) {
    double d = static_cast<double>(mantissa);
    d = exponent < 0 ? d / kExactPowersOf10[-exponent] : d * kExactPowersOf10[exponent];
    uint64_t bits;
    std::memcpy(&bits, &d, sizeof(bits));
    const bool on_float_midpoint = (bits & ((uint64_t{1} << 29) - 1)) == (uint64_t{1} << 28);
    if (!on_float_midpoint && (d == 0 || d >= static_cast<double>(std::numeric_limits<float>::min()))) {
      const float f = static_cast<float>(d);
      if (std::isfinite(f)) {
        *out = n.negative ? -f : f;
        return p;
      }
    }
  }
  float x;
  const auto r = fast_float::from_chars(start, p, x);
  if (r.ec != std::errc() || r.ptr != p || !std::isfinite(x)) return nullptr;
  *out = x;
  return p;
}

const char* SkipJsonSpace(const char* p, const char* end) {
  while (p < end && IsJsonSpace(*p)) ++p;
  return p;
}

#if defined(__x86_64__)
#define KYRODB_HAVE_FLOAT_BLOCKS 1

// Bytes ParseFloatBlocks reads from a block's start: the 64-byte block, then up to 32 bytes of
// an element that starts in it (ParseDecimal).
constexpr ptrdiff_t kFloatBlockReach = 64 + 32;

// One bit per byte of the 64 at p: the bytes equal to c.
__attribute__((target("sse4.2"))) inline uint64_t BytesEqual64(const char* p, char c) {
  const __m128i needle = _mm_set1_epi8(c);
  uint64_t mask = 0;
  for (int i = 0; i < 4; ++i) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
    mask |= uint64_t{static_cast<uint16_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)))} << (16 * i);
  }
  return mask;
}

// Digit values (byte - '0') of the 32 text bytes t0:t1, lane i taking byte index[i] (0..31),
// or 0 where index[i] is negative.
__attribute__((target("sse4.2"))) inline __m128i GatherDigits(__m128i t0, __m128i t1, __m128i index) {
  const __m128i from_t0 = _mm_or_si128(index, _mm_cmpgt_epi8(index, _mm_set1_epi8(15)));
  return _mm_or_si128(_mm_shuffle_epi8(t0, from_t0), _mm_shuffle_epi8(t1, _mm_sub_epi8(index, _mm_set1_epi8(16))));
}

// Whether every lane holds a digit value 0..9.
__attribute__((target("sse4.2"))) inline bool AllDigits(__m128i d) {
  const __m128i nine = _mm_set1_epi8(9);
  return _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(d, nine), nine)) == 0xFFFF;
}

// The value of the 16 digit lanes of d (the first lane the most significant), summed pairwise
// by multiply-adds: 2, 4, then 8 digits per lane.
__attribute__((target("sse4.2"))) inline uint64_t Digits16Value(__m128i d) {
  const __m128i pairs = _mm_maddubs_epi16(d, _mm_set1_epi16(0x010A));       // 10 * first + second
  const __m128i quads = _mm_madd_epi16(pairs, _mm_set1_epi32(0x00010064));  // 100 * first + second
  const __m128i octs = _mm_madd_epi16(_mm_packs_epi32(quads, quads), _mm_set1_epi32(0x00012710));
  const uint64_t both = static_cast<uint64_t>(_mm_cvtsi128_si64(octs));
  return (both & 0xFFFFFFFF) * 100'000'000 + (both >> 32);
}

// The element of n bytes at q, with its '.' at `dot` (or no '.' if dot >= n), when it is a
// number -?D+(.D+)? (the sign is before q) of at most 32 bytes whose digits make a mantissa
// below 2^64 and which has at most 22 fraction digits: its float in *out. False for anything
// else, also for well-formed numbers of other shapes. Reads up to 32 bytes from q. The digits are
// gathered by shuffles (the '.' skipped, right-aligned, zeros in front), checked together and
// summed by multiply-adds; a branch on the length (up to 16 bytes: one register of digits)
// follows the client's number format, not the digits.
//
// Rounding: the mantissa m and the divisor 10^f (exact for f <= 22) give a double within two
// units in its last place of the decimal's value (one rounding of m when above 2^53, one of the
// division; none of m at or below 2^53: Clinger's exact case). The decimal is at least 1e-22
// unless zero and below 2^64, so its float is normal and finite, and it rounds to the same float
// as that double unless the double lies within a few units of a midpoint between two floats
// (their doubles end in exactly 2^28 in the low 29 bits); those, about one number in 2^25, are
// left to the caller's general path (ParseJsonFloat).
__attribute__((target("sse4.2"))) inline bool ParseDecimal(const char* q, int n, int dot, bool negative,
                                                          float* out) {
  const bool has_dot = dot < n;
  const int digits = n - (has_dot ? 1 : 0);
  const int integer_digits = has_dot ? dot : n;
  const int fraction_digits = digits - integer_digits;
  if (integer_digits == 0 || n > 32 || fraction_digits > 22 || (has_dot && fraction_digits == 0) ||
      (integer_digits > 1 && *q == '0')) {
    return false;
  }
  const __m128i zero = _mm_set1_epi8('0');
  const __m128i t0 = _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), zero);
  const __m128i lane = _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // The last 16 digit lanes: lane i holds digit i - (16 - digits), one byte further from the
  // '.' on (digits before the number get a negative index: zero).
  const __m128i after_dot = _mm_set1_epi8(static_cast<char>(has_dot ? dot - 1 : 127));
  __m128i index = _mm_sub_epi8(lane, _mm_set1_epi8(static_cast<char>(16 - digits)));
  index = _mm_sub_epi8(index, _mm_cmpgt_epi8(index, after_dot));
  uint64_t mantissa;
  if (n <= 16) [[likely]] {
    const __m128i d = _mm_shuffle_epi8(t0, index);
    if (!AllDigits(d)) return false;
    mantissa = Digits16Value(d);
  } else {
    const __m128i t1 = _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)), zero);
    const __m128i low = GatherDigits(t0, t1, index);
    __m128i high_index = _mm_sub_epi8(lane, _mm_set1_epi8(static_cast<char>(32 - digits)));
    high_index = _mm_sub_epi8(high_index, _mm_cmpgt_epi8(high_index, after_dot));
    const __m128i high = GatherDigits(t0, t1, high_index);
    if (!AllDigits(_mm_max_epu8(low, high))) return false;
    const uint64_t top = Digits16Value(high);
    if (top > 1843) return false;  // the mantissa would not fit in 64 bits
    mantissa = top * 10'000'000'000'000'000 + Digits16Value(low);
  }
  const double value = static_cast<double>(mantissa) / kExactPowersOf10[fraction_digits];
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  if ((bits & ((uint64_t{1} << 29) - 1)) - ((uint64_t{1} << 28) - 4) <= 8) return false;  // near a midpoint
  const float x = static_cast<float>(value);
  *out = negative ? -x : x;
  return true;
}

// The block loop of ParseFloatArrayAt: elements from p, 64 bytes at a time while
// kFloatBlockReach bytes are left.
// The commas, ']'s and '.'s of a block are found first, so each element's end is known before
// it is read: the next element does not wait for this one's digits to be scanned (a chain of
// dependent loads and bit scans per number that otherwise bounds the speed), and the processor
// works on several numbers at once. Each element must end exactly at its separator (JSON space
// around the number allowed). Returns the end of the array when it ended here; else nullptr,
// with *next the first element not read (the element-wise loop goes on from there, and refuses
// whatever is malformed).
__attribute__((target("sse4.2"))) const char* ParseFloatBlocks(const char* p, const char* end,
                                                               std::vector<float>* out, const char** next) {
  while (end - p >= kFloatBlockReach) {
    const uint64_t close = BytesEqual64(p, ']');
    const uint64_t dots = BytesEqual64(p, '.');
    uint64_t stops = BytesEqual64(p, ',') | close;
    int start = 0;  // of the current element, from p
    for (; stops != 0; stops &= stops - 1) {
      const int stop = std::countr_zero(stops);
      const char* e = p + start;
      if (IsJsonSpace(*e)) e = SkipJsonSpace(e, p + stop);
      const bool negative = *e == '-';
      const char* q = e + (negative ? 1 : 0);
      const int from = static_cast<int>(q - p);  // <= stop < 64
      const int n = stop - from;
      const int dot = std::countr_zero(dots >> from);  // 64 when no '.' follows
      float x;
      if (n <= 0 || !ParseDecimal(q, n, dot, negative, &x)) {
        const char* number_end = ParseJsonFloat(e, end, &x);
        if (number_end == nullptr || SkipJsonSpace(number_end, end) != p + stop) {
          *next = p + start;
          return nullptr;
        }
      }
      out->push_back(x);
      if ((close >> stop) & 1) return p + stop + 1;
      start = stop + 1;
    }
    if (start == 0) break;  // an element (or its spacing) longer than the block
    p += start;
  }
  *next = p;
  return nullptr;
}
#endif

// An array of numbers at p, each parsed straight to float (ParseJsonFloat: correctly rounded),
// appended to `out`. Returns the end of the array (after the ']'), or nullptr, with `out` in any
// state, for anything else: a non-number element, a number outside the float range, malformed
// text. Where the processor has SSE4.2, most of a long array goes through ParseFloatBlocks.
const char* ParseFloatArrayAt(const char* p, const char* end, std::vector<float>* out) {
  if (p == end || *p != '[') return nullptr;
  p = SkipJsonSpace(p + 1, end);
  if (p < end && *p == ']') return p + 1;
#if defined(KYRODB_HAVE_FLOAT_BLOCKS)
  static const bool blocks = GetCpuFeatures().sse42;
  if (blocks) {
    if (const char* array_end = ParseFloatBlocks(p, end, out, &p)) return array_end;
    p = SkipJsonSpace(p, end);  // the next element may start with spacing
  }
#endif
  for (;;) {
    float x;
    const char* number_end = ParseJsonFloat(p, end, &x);
    if (number_end == nullptr) return nullptr;
    out->push_back(x);
    p = SkipJsonSpace(number_end, end);
    if (p == end) return nullptr;
    if (*p == ']') return p + 1;
    if (*p != ',') return nullptr;
    p = SkipJsonSpace(p + 1, end);
  }
}

// The fast path of ReadEmbedding: `raw`, an array's JSON text (as array::raw_json() gives it,
// whitespace after the ']' included). False for anything ParseFloatArrayAt refuses; the caller
// then takes the element-wise path, which names the problem.
bool ParseFloatArray(std::string_view raw, std::vector<float>* out) {
  const char* const end = raw.data() + raw.size();
  const char* p = ParseFloatArrayAt(raw.data(), end, out);
  return p != nullptr && SkipJsonSpace(p, end) == end;
}

// A JSON string at p made only of printable ASCII without escapes (so valid UTF-8, and its
// text is its value); its contents, and p moved past it. False for anything else.
bool ScanPlainString(const char*& p, const char* end, std::string_view* out) {
  if (p == end || *p != '"') return false;
  const char* const begin = ++p;
  while (p < end && *p != '"') {
    if (*p < 0x20 || *p > 0x7e || *p == '\\') return false;
    ++p;
  }
  if (p == end) return false;
  *out = std::string_view(begin, static_cast<size_t>(p - begin));
  ++p;
  return true;
}

// A JSON integer at p (digits only, no sign, fraction or exponent) in [lo, hi].
bool ScanPlainInteger(const char*& p, const char* end, uint64_t lo, uint64_t hi, uint64_t* out) {
  JsonNumber n;
  const char* number_end = ScanJsonNumber(p, end, &n);
  if (number_end == nullptr || n.truncated) return false;
  for (const char* q = p; q < number_end; ++q) {
    if (!IsDigit(*q)) return false;  // "-1", "1e0", "1.0": the full decoder says what it wants
  }
  if (n.mantissa < lo || n.mantissa > hi) return false;
  *out = n.mantissa;
  p = number_end;
  return true;
}

bool ScanLiteral(const char*& p, const char* end, std::string_view literal) {
  if (static_cast<size_t>(end - p) < literal.size() || std::memcmp(p, literal.data(), literal.size()) != 0) {
    return false;
  }
  p += literal.size();
  return true;
}

bool ScanBool(const char*& p, const char* end, bool* out) {
  if (ScanLiteral(p, end, "true")) {
    *out = true;
    return true;
  }
  if (ScanLiteral(p, end, "false")) {
    *out = false;
    return true;
  }
  return false;
}

// The element-wise path: each element read by simdjson, errors naming the element.
template <typename Array>
ApiStatus ReadEmbeddingElements(Array& arr, std::string_view field, std::vector<float>* out) {
  out->clear();
  for (auto er : arr) {
    sj::value el;
    if (auto e = std::move(er).get(el)) return SyntaxError(e, field);
    double d;
    if (auto e = el.get_double().get(d)) {
      const std::string_view tok = Trim(el.raw_json_token());
      if (tok == "NaN" || tok == "Infinity" || tok == "-Infinity" ||
          (e == simdjson::NUMBER_ERROR && IsJsonNumber(tok))) {  // well-formed: overflow
        return Err(ErrorCode::kNonFiniteValue, Indexed(field, out->size()) + " = " +
                                                   std::string(tok) + " is not a finite number");
      }
      return TypeError(el, e, Indexed(field, out->size()), "a number");
    }
    d = CorrectDouble(el, d);
    if (!(std::fabs(d) <= std::numeric_limits<float>::max())) {
      return Err(ErrorCode::kNonFiniteValue,
                 Indexed(field, out->size()) + " is outside the float range (non-finite as float)");
    }
    out->push_back(static_cast<float>(d));
  }
  return std::nullopt;
}

}  // namespace

ApiStatus ReadEmbedding(sj::value v, std::string_view field, size_t dim_hint,
                        std::vector<float>* out) {
  sj::array arr;
  if (auto e = v.get_array().get(arr)) return TypeError(v, e, field, "an array of numbers");
  out->clear();
  out->reserve(dim_hint);
  std::string_view raw;
  if (auto e = arr.raw_json().get(raw)) return SyntaxError(e, field);
  if (ParseFloatArray(raw, out)) return std::nullopt;
  // Not a plain array of finite floats: read it again element by element, as a document of its
  // own, to say what is wrong. `raw` lies inside the request body, which is padded for simdjson
  // (JsonBody::Parse) and continues past the array, so the padding simdjson reads is there.
  thread_local sj::parser parser;
  sj::document doc;
  if (auto e = parser.iterate(simdjson::padded_string_view(raw.data(), raw.size(), raw.size() + simdjson::SIMDJSON_PADDING)).get(doc)) {
    return SyntaxError(e, field);
  }
  sj::array elements;
  if (auto e = doc.get_array().get(elements)) return SyntaxError(e, field);
  return ReadEmbeddingElements(elements, field, out);
}

ApiStatus ReadMetadata(sj::value v, std::string_view field, Metadata* out) {
  sj::object obj;
  if (auto e = v.get_object().get(obj)) return TypeError(v, e, field, "an object of strings");
  out->clear();
  for (auto fr : obj) {
    sj::field f;
    if (auto e = std::move(fr).get(f)) return SyntaxError(e, field);
    std::string_view key;
    if (auto st = ReadKey(f, &key)) return st;
    std::string_view value;
    sj::value fv = f.value();
    if (auto e = fv.get_string().get(value)) {
      return TypeError(fv, e, std::string(field) + "." + std::string(key), "a string");
    }
    out->emplace_back(std::string(key), std::string(value));
  }
  return std::nullopt;
}

ApiStatus ReadFilter(sj::value v, std::string_view field, int depth, MetadataFilter* out) {
  using Kind = MetadataFilter::Kind;
  if (depth > kMaxFilterDepth) {
    return Err(ErrorCode::kInvalidArgument,
               "field " + Quoted(field) + " nests deeper than " + std::to_string(kMaxFilterDepth));
  }
  sj::object obj;
  if (auto e = v.get_object().get(obj)) return TypeError(v, e, field, "a filter object");
  bool seen = false;
  for (auto fr : obj) {
    sj::field f;
    if (auto e = std::move(fr).get(f)) return SyntaxError(e, field);
    std::string_view op;
    if (auto st = ReadKey(f, &op)) return st;
    if (seen) {
      return Err(ErrorCode::kInvalidArgument,
                 "field " + Quoted(field) + " must have exactly one operator, found a second: " +
                     Quoted(op));
    }
    seen = true;
    const std::string where = std::string(field) + "." + std::string(op);
    sj::value body = f.value();
    if (op == "and" || op == "or") {
      out->kind = op == "and" ? Kind::kAnd : Kind::kOr;
      sj::array arr;
      if (auto e = body.get_array().get(arr)) return TypeError(body, e, where, "an array of filters");
      for (auto er : arr) {
        sj::value child;
        if (auto e = std::move(er).get(child)) return SyntaxError(e, where);
        out->children.emplace_back();
        if (auto st = ReadFilter(child, Indexed(where, out->children.size() - 1), depth + 1,
                                 &out->children.back())) {
          return st;
        }
      }
    } else if (op == "not") {
      out->kind = Kind::kNot;
      out->children.emplace_back();
      if (auto st = ReadFilter(body, where, depth + 1, &out->children.back())) return st;
    } else if (op == "exact" || op == "in" || op == "range") {
      out->kind = op == "exact" ? Kind::kExact : op == "in" ? Kind::kIn : Kind::kRange;
      sj::object args;
      if (auto e = body.get_object().get(args)) return TypeError(body, e, where, "an object");
      bool has_key = false, has_value = false;
      std::vector<MetadataFilter> bounds;  // range: one per bound, combined with AND if several
      for (auto ar : args) {
        sj::field a;
        if (auto e = std::move(ar).get(a)) return SyntaxError(e, where);
        std::string_view name;
        if (auto st = ReadKey(a, &name)) return st;
        const std::string arg_field = where + "." + std::string(name);
        if (name == "key") {
          if (auto st = ReadString(a.value(), arg_field, &out->key)) return st;
          has_key = true;
        } else if (op == "exact" && name == "value") {
          if (auto st = ReadString(a.value(), arg_field, &out->value)) return st;
          has_value = true;
        } else if (op == "in" && name == "values") {
          sj::array arr;
          sj::value av = a.value();
          if (auto e = av.get_array().get(arr)) return TypeError(av, e, arg_field, "an array of strings");
          for (auto er : arr) {
            sj::value s;
            if (auto e = std::move(er).get(s)) return SyntaxError(e, arg_field);
            std::string_view sv;
            if (auto st = ReadStringView(s, Indexed(arg_field, out->values.size()), &sv)) return st;
            out->values.emplace_back(sv);
          }
          has_value = true;
        } else if (op == "range" && (name == "gte" || name == "lte" || name == "gt" || name == "lt")) {
          MetadataFilter b;
          b.kind = Kind::kRange;
          b.op = name == "gte"   ? MetadataFilter::RangeOp::kGte
                 : name == "lte" ? MetadataFilter::RangeOp::kLte
                 : name == "gt"  ? MetadataFilter::RangeOp::kGt
                                 : MetadataFilter::RangeOp::kLt;
          if (auto st = ReadString(a.value(), arg_field, &b.value)) return st;
          bounds.push_back(std::move(b));
          has_value = true;
        } else {
          return UnknownField(name, "filter " + Quoted(where));
        }
      }
      if (!has_key) return MissingField("key", "filter " + Quoted(where));
      if (!has_value) {
        return MissingField(op == "exact" ? "value" : op == "in" ? "values" : "gte|lte|gt|lt",
                            "filter " + Quoted(where));
      }
      if (op == "range") {
        for (MetadataFilter& b : bounds) b.key = out->key;
        if (bounds.size() == 1) {
          out->op = bounds[0].op;
          out->value = std::move(bounds[0].value);
        } else {
          out->kind = Kind::kAnd;
          out->key.clear();
          out->children = std::move(bounds);
        }
      }
    } else {
      return Err(ErrorCode::kUnknownField,
                 "unknown filter operator " + Quoted(op) + " in field " + Quoted(field) +
                     " (exact, range, in, and, or, not)");
    }
  }
  if (!seen) {
    return Err(ErrorCode::kInvalidArgument,
               "field " + Quoted(field) + " must have one operator (exact, range, in, and, or, not)");
  }
  return std::nullopt;
}

ApiStatus DecodeInsert(JsonBody& body, size_t dim_hint, InsertRequest* out) {
  bool has_key = false;
  if (auto st = ReadDocument(body.object(), "insert request", dim_hint, &out->doc, &has_key,
                             &out->collection)) {
    return st;
  }
  return body.Finish();
}

ApiStatus DecodeBulkInsert(JsonBody& body, size_t dim_hint, BulkInsertRequest* out) {
  bool has_documents = false;
  auto st = ForEachField(body, [&](std::string_view key, sj::value v) -> ApiStatus {
    if (key == "collection") return ReadCollection(v, &out->collection);
    if (key != "documents") return UnknownField(key, "bulk_insert request");
    has_documents = true;
    sj::array arr;
    if (auto e = v.get_array().get(arr)) return TypeError(v, e, "documents", "an array of documents");
    for (auto er : arr) {
      const size_t i = out->total++;
      sj::value dv;
      if (auto e = std::move(er).get(dv)) return SyntaxError(e, "documents");
      const std::string where = Indexed("documents", i);
      sj::object obj;
      Document doc;
      bool has_key = false;
      ApiStatus err;
      if (auto e = dv.get_object().get(obj)) {
        err = TypeError(dv, e, where, "an object");
      } else {
        err = ReadDocument(obj, where, dim_hint, &doc, &has_key, nullptr);
      }
      if (err) {
        // Malformed JSON fails the whole request; a bad document only itself.
        if (err->code == ErrorCode::kInvalidJson) return err;
        out->errors.emplace_back(i, std::move(*err));
        out->error_keys.push_back(has_key ? std::move(doc.key) : DocKey{});
        continue;
      }
      if (dim_hint == 0) dim_hint = doc.embedding.size();
      out->docs.push_back(std::move(doc));
      out->index.push_back(i);
    }
    return std::nullopt;
  });
  if (st) return st;
  if (!has_documents) return MissingField("documents", "bulk_insert request");
  // The rest of a bad document was skipped, not validated.
  if (!out->errors.empty()) return body.Validate();
  return std::nullopt;
}

ApiStatus DecodeQuery(JsonBody& body, QueryRequest* out) {
  bool has_key = false;
  auto st = ForEachField(body, [&](std::string_view key, sj::value v) -> ApiStatus {
    if (key == "doc_id") {
      has_key = true;
      return ReadDocKey(v, "doc_id", &out->key);
    }
    if (key == "include_embedding") return ReadBool(v, key, &out->include_embedding);
    if (key == "collection") return ReadCollection(v, &out->collection);
    return UnknownField(key, "query request");
  });
  if (st) return st;
  if (!has_key) return MissingField("doc_id", "query request");
  return std::nullopt;
}

ApiStatus DecodeSearch(JsonBody& body, size_t dim_hint, SearchHttpRequest* out, EmbeddingReadAhead* ahead) {
  bool has_query = false;
  SearchRequest& r = out->request;
  auto st = ForEachField(body, [&](std::string_view key, sj::value v) -> ApiStatus {
    if (key == "query_embedding") {
      has_query = true;
      if (ahead != nullptr && ahead->offset != std::string::npos &&
          body.OffsetOf(v.raw_json_token().data()) == ahead->offset) {
        // Read (and checked element by element) already; the iteration skips the array.
        r.query = std::move(ahead->values);
        ahead->offset = std::string::npos;
        return std::nullopt;
      }
      return ReadEmbedding(v, key, dim_hint, &r.query);
    }
    if (key == "k") {
      return ReadUint32(v, key, 1, std::numeric_limits<uint32_t>::max(), ErrorCode::kInvalidK, &r.k);
    }
    if (key == "ef_search") {
      return ReadUint32(v, key, 0, std::numeric_limits<uint32_t>::max(),
                        ErrorCode::kInvalidEfSearch, &r.ef);
    }
    if (key == "min_score") {
      bool null = false;
      if (auto st = ReadNull(v, key, &null)) return st;
      if (null) return std::nullopt;
      r.has_min_score = true;
      return ReadFloat(v, key, &r.min_score);
    }
    if (key == "include_embeddings") return ReadBool(v, key, &r.include_embeddings);
    if (key == "include_metadata") return ReadBool(v, key, &r.include_metadata);
    if (key == "filter") {
      bool null = false;
      if (auto st = ReadNull(v, key, &null)) return st;
      if (null) return std::nullopt;
      out->has_filter = true;
      return ReadFilter(v, key, 1, &out->filter);
    }
    if (key == "collection") return ReadCollection(v, &out->collection);
    return UnknownField(key, "search request");
  });
  if (st) return st;
  if (!has_query) return MissingField("query_embedding", "search request");
  return std::nullopt;
}

bool TryDecodeSearchFast(std::string_view body, size_t dim_hint, SearchHttpRequest* out, size_t* query_offset) {
  // The body as DecodeSearch reads it, in one pass and without simdjson, for the shapes clients
  // send: an object of the search keys, plain strings, literal numbers and booleans. Anything
  // else (a filter, escapes, non-ASCII, an unknown key, a value DecodeSearch would refuse,
  // malformed JSON) returns false and DecodeSearch decides, so the outcome and every error
  // message are DecodeSearch's. Keys repeat as DecodeSearch lets them: the last one wins.
  const char* p = body.data();
  const char* const end = p + body.size();
  SearchRequest& r = out->request;
  bool has_query = false;
  size_t unused_offset;
  size_t& read_query_at = query_offset != nullptr ? *query_offset : unused_offset;
  read_query_at = std::string::npos;
  p = SkipJsonSpace(p, end);
  if (p == end || *p != '{') return false;
  p = SkipJsonSpace(p + 1, end);
  if (p < end && *p == '}') return false;  // no query_embedding: DecodeSearch's error
  for (;;) {
    std::string_view key;
    if (!ScanPlainString(p, end, &key)) return false;
    p = SkipJsonSpace(p, end);
    if (p == end || *p != ':') return false;
    p = SkipJsonSpace(p + 1, end);
    if (key == "query_embedding") {
      r.query.clear();
      r.query.reserve(dim_hint);
      read_query_at = std::string::npos;
      const char* const array = p;
      p = ParseFloatArrayAt(p, end, &r.query);
      if (p == nullptr) return false;
      read_query_at = static_cast<size_t>(array - body.data());
      has_query = true;
    } else if (key == "k") {
      uint64_t k;
      if (!ScanPlainInteger(p, end, 1, std::numeric_limits<uint32_t>::max(), &k)) return false;
      r.k = static_cast<uint32_t>(k);
    } else if (key == "ef_search") {
      uint64_t ef;
      if (!ScanPlainInteger(p, end, 0, std::numeric_limits<uint32_t>::max(), &ef)) return false;
      r.ef = static_cast<uint32_t>(ef);
    } else if (key == "min_score") {
      if (!ScanLiteral(p, end, "null")) {
        // As ReadFloat: the nearest double, then to float.
        JsonNumber n;
        const char* number_end = ScanJsonNumber(p, end, &n);
        if (number_end == nullptr) return false;
        double d;
        const auto parsed = fast_float::from_chars(p, number_end, d);
        if (parsed.ec != std::errc() || parsed.ptr != number_end ||
            !(std::fabs(d) <= std::numeric_limits<float>::max())) {
          return false;
        }
        r.has_min_score = true;
        r.min_score = static_cast<float>(d);
        p = number_end;
      }
    } else if (key == "include_embeddings") {
      if (!ScanBool(p, end, &r.include_embeddings)) return false;
    } else if (key == "include_metadata") {
      if (!ScanBool(p, end, &r.include_metadata)) return false;
    } else if (key == "collection") {
      if (!ScanPlainString(p, end, &out->collection)) return false;
    } else if (key == "filter") {
      if (!ScanLiteral(p, end, "null")) return false;  // a filter: DecodeSearch reads it
    } else {
      return false;
    }
    p = SkipJsonSpace(p, end);
    if (p == end) return false;
    if (*p == '}') break;
    if (*p != ',') return false;
    p = SkipJsonSpace(p + 1, end);
  }
  return has_query && SkipJsonSpace(p + 1, end) == end;
}

ApiStatus DecodeSearchBody(JsonBody& json, std::string* body, size_t dim_hint, SearchHttpRequest* out) {
  size_t query_offset;
  if (TryDecodeSearchFast(*body, dim_hint, out, &query_offset)) return std::nullopt;
  EmbeddingReadAhead ahead{query_offset, std::move(out->request.query)};
  *out = SearchHttpRequest{};
  if (auto st = json.Parse(body)) return st;
  return DecodeSearch(json, dim_hint, out, &ahead);
}

ApiStatus DecodeDelete(JsonBody& body, DeleteRequest* out) {
  bool has_key = false;
  auto st = ForEachField(body, [&](std::string_view key, sj::value v) -> ApiStatus {
    if (key == "doc_id") {
      has_key = true;
      return ReadDocKey(v, "doc_id", &out->key);
    }
    if (key == "collection") return ReadCollection(v, &out->collection);
    return UnknownField(key, "delete request");
  });
  if (st) return st;
  if (!has_key) return MissingField("doc_id", "delete request");
  return std::nullopt;
}

ApiStatus DecodeUpdateMetadata(JsonBody& body, UpdateMetadataRequest* out) {
  bool has_key = false, has_metadata = false;
  auto st = ForEachField(body, [&](std::string_view key, sj::value v) -> ApiStatus {
    if (key == "doc_id") {
      has_key = true;
      return ReadDocKey(v, "doc_id", &out->key);
    }
    if (key == "metadata") {
      has_metadata = true;
      return ReadMetadata(v, key, &out->metadata);
    }
    if (key == "merge") return ReadBool(v, key, &out->merge);
    if (key == "collection") return ReadCollection(v, &out->collection);
    return UnknownField(key, "update_metadata request");
  });
  if (st) return st;
  if (!has_key) return MissingField("doc_id", "update_metadata request");
  if (!has_metadata) return MissingField("metadata", "update_metadata request");
  return std::nullopt;
}

ApiStatus DecodeFlush(JsonBody& body, FlushRequest* out) {
  return ForEachField(body, [&](std::string_view key, sj::value v) -> ApiStatus {
    if (key == "collection") return ReadCollection(v, &out->collection);
    return UnknownField(key, "flush request");
  });
}

ApiStatus DecodeSnapshot(JsonBody& body) {
  return ForEachField(body, [&](std::string_view key, sj::value) -> ApiStatus {
    return UnknownField(key, "snapshot request");
  });
}

ApiStatus DecodeCreateCollection(JsonBody& body, CollectionOptions* out) {
  bool has_dimension = false;
  auto st = ForEachField(body, [&](std::string_view key, sj::value v) -> ApiStatus {
    constexpr uint32_t kMax = std::numeric_limits<uint32_t>::max();
    if (key == "dimension") {
      has_dimension = true;
      return ReadUint32(v, key, 1, kMax, ErrorCode::kInvalidCollection, &out->dimension);
    }
    if (key == "metric") {
      std::string name;
      if (auto s = ReadString(v, key, &name)) return s;
      auto m = ParseMetric(name);
      if (!m.ok()) return Err(ErrorCode::kInvalidCollection, m.status().message());
      out->metric = *m;
      return std::nullopt;
    }
    if (key == "m") return ReadUint32(v, key, 2, kMax, ErrorCode::kInvalidCollection, &out->m);
    if (key == "ef_construction") {
      return ReadUint32(v, key, 1, kMax, ErrorCode::kInvalidCollection, &out->ef_construction);
    }
    if (key == "ef_search") {
      return ReadUint32(v, key, 1, kMax, ErrorCode::kInvalidCollection, &out->ef_search);
    }
    return UnknownField(key, "collection options");
  });
  if (st) return st;
  if (!has_dimension) return MissingField("dimension", "collection options");
  return std::nullopt;
}

}  // namespace kyrodb::server::http

// CRC32C (Castagnoli), the checksum of every KyroDB on-disk format.
// Uses the SSE4.2 crc32 instruction when the CPU has it, a table otherwise. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kyrodb::crc32c {

// Extends `crc` (the CRC32C of some prefix) with `n` more bytes. Value(p, n) == Extend(0, p, n).
uint32_t Extend(uint32_t crc, const void* data, size_t n);
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// Masked form stored on disk (as LevelDB does), so that a CRC of data that embeds CRCs stays
// well distributed.
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

}  // namespace kyrodb::crc32c

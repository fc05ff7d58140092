// On-disk constants of the HNSW index file. The format is specified in docs/formats/hnsw.md;
// change both together, bump kVersion, and keep a golden file of the old version loading.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kyrodb::index::hnsw_format {

inline constexpr char kMagic[8] = {'K', 'Y', 'R', 'O', 'H', 'N', 'S', 'W'};
inline constexpr uint32_t kVersion = 1;

inline constexpr uint32_t kFlagQuantize = 1;  // options.quantize
inline constexpr uint32_t kFlagTrained = 2;   // quantizer section present, codes valid

inline constexpr uint32_t kSectionQuantizer = 1;
inline constexpr uint32_t kSectionNodes = 2;
inline constexpr uint32_t kSectionLevel0 = 3;
inline constexpr uint32_t kSectionVectors = 4;
inline constexpr uint32_t kSectionUpper = 5;
inline constexpr uint32_t kSectionEnd = 0xE0F;

// Little-endian, 96 bytes, written as is.
struct Header {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint32_t dim;
  uint32_t metric;  // 0 l2, 1 inner_product, 2 cosine
  uint32_t m;
  uint32_t ef_construction;
  uint32_t ef_search;
  uint32_t max_elements;
  uint32_t num_slots;
  uint32_t entry_node;  // 0xFFFFFFFF: empty index
  int32_t max_level;    // -1: empty index
  uint32_t flags;
  uint64_t seed;
  uint64_t level_counter;
  uint32_t code_bytes;
  uint32_t level0_stride;
  uint32_t vector_stride;  // floats per stored vector (dim rounded up to 16)
  uint32_t reserved0;
  uint32_t reserved1;
  uint32_t header_crc;  // masked CRC32C of the bytes before it
};
static_assert(sizeof(Header) == 96, "header layout");
static_assert(offsetof(Header, header_crc) == 92, "header layout");

}  // namespace kyrodb::index::hnsw_format

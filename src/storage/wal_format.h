// On-disk constants of WAL segments. Specified in docs/formats/wal.md; change both together.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kyrodb::storage::wal_format {

inline constexpr char kMagic[8] = {'K', 'Y', 'R', 'O', 'W', 'A', 'L', '1'};
inline constexpr uint32_t kVersion = 1;

// Segment header: magic[8] | u32 version | u64 segment_seq | u64 first_lsn | u32 masked crc of
// the 28 bytes before it.
inline constexpr size_t kSegmentHeaderBytes = 32;

// Record: u32 payload_length | u32 masked crc32c(lsn, type, payload) | u64 lsn | u8 type |
//         u32 masked crc32c(the 17 header bytes before it) | payload
// The header checksum lets recovery trust the length field, so a damaged length is never
// mistaken for a torn final record.
inline constexpr size_t kRecordHeaderBytes = 21;
inline constexpr uint32_t kMaxPayloadBytes = 256u << 20;

}  // namespace kyrodb::storage::wal_format

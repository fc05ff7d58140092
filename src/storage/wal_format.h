// On-disk constants of WAL segments. Specified in docs/formats/wal.md; change both together.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kyrodb::storage::wal_format {

inline constexpr char kMagic[8] = {'K', 'Y', 'R', 'O', 'W', 'A', 'L', '1'};
// Version written. Readers also read kVersion1 segments.
inline constexpr uint32_t kVersion = 2;
inline constexpr uint32_t kVersion1 = 1;

// Segment header: magic[8] | u32 version | u64 segment_seq | u64 first_lsn | u32 masked crc of
// the 28 bytes before it.
inline constexpr size_t kSegmentHeaderBytes = 32;

// Record, version 2:
//   u32 payload_length | u32 masked crc32c(lsn, type, payload) | u64 lsn | u8 type |
//   u64 synced_lsn | u32 masked crc32c(the 25 header bytes before it) | payload
// synced_lsn: every record up to this LSN had been fsynced when this record was written. It
// lets recovery tell a torn unsynced tail (nothing later claims the damaged records were
// synced) from damage to acknowledged records (a later record claims they were).
// The header checksum lets recovery trust the length field.
inline constexpr size_t kRecordHeaderBytes = 29;
// Version 1 had no synced_lsn: u32 len | u32 crc | u64 lsn | u8 type | u32 header crc.
inline constexpr size_t kRecordHeaderBytesV1 = 21;
inline constexpr uint32_t kMaxPayloadBytes = 256u << 20;
// Version 2: a record of this type with no payload is a sync marker, written by a clean close
// after its last fsync. It carries no data and takes no LSN of its own (its lsn field is that
// of the record before it); its synced_lsn says the whole segment was synced.
inline constexpr uint8_t kSyncMarkerType = 0xff;

}  // namespace kyrodb::storage::wal_format

// CRC32C (Castagnoli), the checksum of dataset shards and checkpoint files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace im::data {

// Continues a running CRC: crc32c(b, crc32c(a)) == crc32c(a + b). Start with 0.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// CRC32C of a whole file; throws im::Error naming the file if it cannot be read.
uint32_t crc32c_file(const std::string& path);

}  // namespace im::data

#include "data/crc32c.h"

#include <array>
#include <fstream>
#include <vector>

#include "core/error.h"

namespace im::data {

namespace {
// Byte-at-a-time table for the reflected Castagnoli polynomial 0x82F63B78.
const std::array<uint32_t, 256>& table() {
  static const std::array<uint32_t, 256> t = [] {
    std::array<uint32_t, 256> out{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      out[i] = c;
    }
    return out;
  }();
  return t;
}
}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto& t = table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = t[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

uint32_t crc32c_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  IM_CHECK(in.good(), "cannot open '", path, "' to checksum it");
  std::vector<char> buf(1 << 20);
  uint32_t crc = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    crc = crc32c(buf.data(), static_cast<size_t>(in.gcount()), crc);
  }
  IM_CHECK(in.eof(), "read error while checksumming '", path, "'");
  return crc;
}

}  // namespace im::data

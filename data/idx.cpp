#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace im::data {

namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

std::vector<uint8_t> read_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  IM_CHECK(f != nullptr, "IDX file '", path, "': cannot open: ", std::strerror(errno));
  gzbuffer(f, 1 << 20);
  std::vector<uint8_t> out;
  size_t used = 0;
  for (;;) {
    if (out.size() - used < (1 << 20)) out.resize(std::max<size_t>(out.size() * 2, 4 << 20));
    const int n = gzread(f, out.data() + used, static_cast<unsigned>(out.size() - used));
    if (n <= 0) break;
    used += static_cast<size_t>(n);
  }
  // A stream cut short reports Z_BUF_ERROR; a damaged one Z_DATA_ERROR (CRC, bad codes).
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  const std::string zmsg = msg != nullptr ? msg : "";
  gzclose(f);
  IM_CHECK(err == Z_OK || err == Z_STREAM_END, "IDX file '", path,
           "': gzip data is corrupt or truncated (zlib: ", zmsg, ")");
  out.resize(used);
  return out;
}

}  // namespace

std::vector<uint8_t> read_maybe_gzipped(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  IM_CHECK(in.good(), "IDX file '", path, "': cannot open: ", std::strerror(errno));
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  if (in.gcount() == 2 && magic[0] == 0x1f && magic[1] == 0x8b) return read_gzip(path);
  in.clear();
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  in.seekg(0);
  std::vector<uint8_t> out(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(out.data()), size);
  IM_CHECK(in.gcount() == size, "IDX file '", path, "': read error");
  return out;
}

IdxArray read_idx(const std::string& path, int rank) {
  std::vector<uint8_t> bytes = read_maybe_gzipped(path);
  const char* what = rank == 1 ? "labels" : rank == 3 ? "images" : "array";
  const uint32_t expected_magic = 0x0800u | static_cast<uint32_t>(rank);
  IM_CHECK(bytes.size() >= 4, "IDX file '", path, "': truncated (", bytes.size(),
           " bytes, not even a magic number)");
  const uint32_t magic = be32(bytes.data());
  IM_CHECK(magic == expected_magic, "IDX file '", path, "': bad magic ", hex32(magic),
           ", expected ", hex32(expected_magic), " (IDX ", what, " of unsigned bytes)");
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  IM_CHECK(bytes.size() >= header, "IDX file '", path, "': truncated header (", bytes.size(),
           " bytes, the header needs ", header, ")");
  IdxArray out;
  uint64_t payload = 1;
  for (int d = 0; d < rank; ++d) {
    const uint32_t n = be32(bytes.data() + 4 + 4 * d);
    out.dims.push_back(n);
    payload *= n;
  }
  const uint64_t have = bytes.size() - header;
  IM_CHECK(have >= payload, "IDX file '", path, "': truncated (the header promises ", payload,
           " data bytes, the file has ", have, ")");
  IM_CHECK(have == payload, "IDX file '", path, "': ", have - payload,
           " unexpected bytes after the ", payload, " data bytes the header promises");
  bytes.erase(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(header));
  out.data = std::move(bytes);
  return out;
}

IdxSplit read_idx_split(const std::string& images_path, const std::string& labels_path) {
  IdxArray images = read_idx(images_path, 3);
  IdxArray labels = read_idx(labels_path, 1);
  IM_CHECK(images.dims[0] == labels.dims[0], "IDX files '", images_path, "' and '", labels_path,
           "' disagree: ", images.dims[0], " images but ", labels.dims[0], " labels");
  IdxSplit out;
  out.count = images.dims[0];
  out.rows = images.dims[1];
  out.cols = images.dims[2];
  out.images = std::move(images.data);
  out.labels = std::move(labels.data);
  return out;
}

}  // namespace im::data

// Reader for IDX files, the format of MNIST and Fashion-MNIST: a big-endian magic
// 0x0000 08 NN (unsigned bytes, NN dimensions), NN big-endian uint32 sizes, then the
// bytes. Files may be gzipped (detected by the gzip magic bytes, not the name).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace im::data {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {60000, 28, 28}
  std::vector<uint8_t> data;  // row-major, product(dims) bytes
};

// Reads an IDX file of unsigned bytes with `rank` dimensions (1: labels, magic 0x0801;
// 3: images, magic 0x0803). Throws im::Error naming the file and the problem: cannot
// open, corrupt or truncated gzip data, bad magic, truncated data, trailing bytes.
IdxArray read_idx(const std::string& path, int rank);

// One split of an image classification set: images [count, rows, cols], labels [count].
struct IdxSplit {
  int64_t count = 0;
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<uint8_t> images;
  std::vector<uint8_t> labels;
};

// Reads an images file and its labels file; their sample counts must agree.
IdxSplit read_idx_split(const std::string& images_path, const std::string& labels_path);

// The whole file's bytes, decompressed when it starts with the gzip magic 1f 8b.
std::vector<uint8_t> read_maybe_gzipped(const std::string& path);

}  // namespace im::data

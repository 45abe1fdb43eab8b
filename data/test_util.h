// Helpers for the data/ tests: a fresh temporary directory, tiny IDX files written
// with zlib, a synthetic Fashion-MNIST-shaped source set, and file tampering.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "core/error.h"

namespace im::data::testing {

// mkdtemp'd directory, removed with everything in it when the object goes.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "im_data_XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const {
    return (std::filesystem::path(path_) / name).string();
  }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void write_gzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("gzopen failed for " + path);
  if (!bytes.empty() && gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())) <= 0)
    throw std::runtime_error("gzwrite failed for " + path);
  gzclose(f);
}

// An IDX file's bytes: magic 0x0000 08 <rank>, big-endian dims, then `data`.
inline std::vector<uint8_t> idx_bytes(const std::vector<uint32_t>& dims,
                                      const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out{0, 0, 0x08, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(d >> shift));
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

// Pixel (y, x) of synthetic image i of a split, and its label: easy to predict,
// different for every sample.
inline uint8_t synthetic_pixel(int64_t i, int64_t y, int64_t x, uint32_t split_salt) {
  return static_cast<uint8_t>((i * 37 + y * 11 + x * 3 + split_salt * 101) % 256);
}
inline uint8_t synthetic_label(int64_t i, uint32_t split_salt) {
  return static_cast<uint8_t>((i * 3 + split_salt) % 10);
}

inline std::vector<uint8_t> synthetic_images(uint32_t n, uint32_t rows, uint32_t cols,
                                             uint32_t salt) {
  std::vector<uint8_t> px;
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t y = 0; y < rows; ++y)
      for (uint32_t x = 0; x < cols; ++x) px.push_back(synthetic_pixel(i, y, x, salt));
  return px;
}

inline std::vector<uint8_t> synthetic_labels(uint32_t n, uint32_t salt) {
  std::vector<uint8_t> l;
  for (uint32_t i = 0; i < n; ++i) l.push_back(synthetic_label(i, salt));
  return l;
}

// Writes the four Fashion-MNIST/MNIST IDX files of a synthetic set to `dir`
// (train uses salt 0, test salt 1), gzipped or plain.
inline void write_synthetic_idx_set(const std::string& dir, uint32_t n_train, uint32_t n_test,
                                    uint32_t rows, uint32_t cols, bool gz) {
  auto put = [&](const std::string& base, const std::vector<uint8_t>& bytes) {
    const std::string path = (std::filesystem::path(dir) / base).string();
    if (gz) {
      write_gzip(path + ".gz", bytes);
    } else {
      write_bytes(path, bytes);
    }
  };
  put("train-images-idx3-ubyte",
      idx_bytes({n_train, rows, cols}, synthetic_images(n_train, rows, cols, 0)));
  put("train-labels-idx1-ubyte", idx_bytes({n_train}, synthetic_labels(n_train, 0)));
  put("t10k-images-idx3-ubyte",
      idx_bytes({n_test, rows, cols}, synthetic_images(n_test, rows, cols, 1)));
  put("t10k-labels-idx1-ubyte", idx_bytes({n_test}, synthetic_labels(n_test, 1)));
}

// Runs `fn` and returns the im::Error message it throws ("" if it throws none).
template <typename F>
std::string error_of(F&& fn) {
  try {
    fn();
  } catch (const im::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace im::data::testing

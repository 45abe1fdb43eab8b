#include "data/shard_reader.h"

#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "data/crc32c.h"
#include "data/hdf5_util.h"
#include "data/manifest.h"

namespace im::data {

namespace {

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0x%08x", v);
  return buf;
}

// The integer type a dataset must have: class integer, `bytes` wide, signed or not.
struct IntType {
  const char* name;
  size_t bytes;
  bool is_signed;
  hid_t native;
};

// Checks one shard file; `where` ("shard <path>") prefixes every message.
class ShardCheck {
 public:
  ShardCheck(std::string where, hid_t file) : where_(std::move(where)), file_(file) {}

  int64_t int_attr(const char* name) {
    std::string problem;
    auto v = h5::read_int_attr(file_, name, problem);
    IM_CHECK(v.has_value(), where_, ": attribute '", name, "' ", problem);
    return *v;
  }
  std::string string_attr(const char* name) {
    std::string problem;
    auto v = h5::read_string_attr(file_, name, problem);
    IM_CHECK(v.has_value(), where_, ": attribute '", name, "' ", problem);
    return *v;
  }
  Shape int_array_attr(const char* name) {
    std::string problem;
    auto v = h5::read_int_array_attr(file_, name, problem);
    IM_CHECK(v.has_value(), where_, ": attribute '", name, "' ", problem);
    return *v;
  }

  // Opens dataset `name`, checks its type and that its shape is [n, sample_shape...]
  // with n == `samples`, and reads it into `out`.
  void read_dataset(const char* name, const IntType& want, const Shape& sample_shape,
                    int64_t samples, void* out) {
    const htri_t exists = H5Lexists(file_, name, H5P_DEFAULT);
    IM_CHECK(exists > 0, where_, ": has no dataset '", name, "'");
    h5::Handle ds = h5::dataset_handle(H5Dopen2(file_, name, H5P_DEFAULT));
    IM_CHECK(ds.valid(), where_, ": '", name, "' is not a readable dataset");
    h5::Handle type = h5::type_handle(H5Dget_type(ds.get()));
    IM_CHECK(type.valid(), where_, ": dataset '", name, "' has an unreadable type");
    const bool type_ok = H5Tget_class(type.get()) == H5T_INTEGER &&
                         H5Tget_size(type.get()) == want.bytes &&
                         (H5Tget_sign(type.get()) == H5T_SGN_2) == want.is_signed;
    IM_CHECK(type_ok, where_, ": dataset '", name, "' has type ", h5::type_name(type.get()),
             ", expected ", want.name);

    h5::Handle space = h5::space_handle(H5Dget_space(ds.get()));
    const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
    IM_CHECK(rank >= 1, where_, ": dataset '", name, "' has no usable dataspace");
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    Shape got(dims.begin(), dims.end());
    IM_CHECK(got[0] == samples, where_, ": dataset '", name, "' holds ", got[0],
             " samples, manifest says ", samples);
    Shape want_shape{samples};
    want_shape.insert(want_shape.end(), sample_shape.begin(), sample_shape.end());
    IM_CHECK(got == want_shape, where_, ": dataset '", name, "' has shape ", shape_str(got),
             ", expected ", shape_str(want_shape));
    IM_CHECK(H5Dread(ds.get(), want.native, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0, where_,
             ": reading dataset '", name, "' failed (the file is damaged)");
  }

 private:
  std::string where_;
  hid_t file_;
};

}  // namespace

void read_shard(const std::string& dir, const proto::DatasetManifest& manifest,
                const proto::ShardInfo& info, void* inputs, int32_t* labels) {
  const std::string path = (std::filesystem::path(dir) / info.file()).string();
  const std::string where = "shard " + path;

  // Bytes first: a damaged file is named as such before HDF5 sees it.
  std::error_code ec;
  IM_CHECK(std::filesystem::is_regular_file(path, ec), where,
           ": file is missing (manifest.pb lists it; convert the data again)");
  const uint64_t size = std::filesystem::file_size(path, ec);
  IM_CHECK(!ec, where, ": cannot read its size: ", ec.message());
  IM_CHECK(size == info.size_bytes(), where, ": size ", size, " bytes, manifest says ",
           info.size_bytes(), " — the file is truncated or was replaced");
  const uint32_t crc = crc32c_file(path);
  IM_CHECK(crc == info.crc32c(), where, ": checksum mismatch (manifest ", hex32(info.crc32c()),
           ", file ", hex32(crc), ") — the file is corrupt or truncated");

  h5::quiet_hdf5();
  h5::Handle file = h5::file_handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  IM_CHECK(file.valid(), where, ": HDF5 cannot open it (not an HDF5 file, or damaged)");
  ShardCheck check(where, file.get());

  const int64_t version = check.int_attr("format_version");
  IM_CHECK(version == kFormatVersion, where, ": format_version ", version,
           " is not supported (this build reads version ", kFormatVersion, ")");
  const std::string modality = check.string_attr("modality");
  IM_CHECK(modality == manifest.modality(), where, ": modality '", modality, "', manifest says '",
           manifest.modality(), "'");
  const Shape sample_shape(manifest.sample_shape().begin(), manifest.sample_shape().end());
  const Shape file_shape = check.int_array_attr("sample_shape");
  IM_CHECK(file_shape == sample_shape, where, ": sample_shape ", shape_str(file_shape),
           ", manifest says ", shape_str(sample_shape));
  const int64_t num_classes = check.int_attr("num_classes");
  IM_CHECK(num_classes == manifest.num_classes(), where, ": num_classes ", num_classes,
           ", manifest says ", manifest.num_classes());
  const std::string split = check.string_attr("split");
  IM_CHECK(split == info.split(), where, ": split '", split, "', manifest says '", info.split(),
           "'");

  const int64_t n = static_cast<int64_t>(info.num_samples());
  static const IntType kUInt8{"uint8", 1, false, H5T_NATIVE_UINT8};
  static const IntType kInt32{"int32", 4, true, H5T_NATIVE_INT32};
  check.read_dataset("inputs", modality == "image" ? kUInt8 : kInt32, sample_shape, n, inputs);
  check.read_dataset("labels", kInt32, {}, n, labels);
  const int64_t attr_samples = check.int_attr("num_samples");
  IM_CHECK(attr_samples == n, where, ": attribute num_samples is ", attr_samples,
           " but the datasets hold ", n, " samples");

  for (int64_t i = 0; i < n; ++i) {
    IM_CHECK(labels[i] >= 0 && labels[i] < num_classes, where, ": label ", labels[i], " at sample ",
             i, " is outside [0, ", num_classes, ")");
  }
}

}  // namespace im::data

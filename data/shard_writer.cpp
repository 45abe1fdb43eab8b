#include "data/shard_writer.h"

#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "data/crc32c.h"
#include "data/fs_util.h"
#include "data/hdf5_util.h"
#include "data/manifest.h"

namespace im::data {

namespace {

// Creates dataset `name` of `ftype` with dims `dims` and writes `buf` (as `mtype`).
// Modification times are not recorded, so converting the same data twice gives
// byte-identical shards (and identical checksums).
bool write_dataset(hid_t file, const char* name, hid_t ftype, hid_t mtype,
                   const std::vector<hsize_t>& dims, const void* buf) {
  h5::Handle space =
      h5::space_handle(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  h5::Handle dcpl = h5::plist_handle(H5Pcreate(H5P_DATASET_CREATE));
  if (!space.valid() || !dcpl.valid() || H5Pset_obj_track_times(dcpl.get(), false) < 0)
    return false;
  h5::Handle ds = h5::dataset_handle(
      H5Dcreate2(file, name, ftype, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!ds.valid()) return false;
  if (H5Dwrite(ds.get(), mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) return false;
  return ds.close();
}

proto::ShardInfo write_shard(const std::string& path, const ShardHeader& header,
                             const char* modality, hid_t input_ftype, hid_t input_mtype,
                             const void* inputs, const int32_t* labels, int64_t n) {
  const size_t want_rank = std::string(modality) == "image" ? 3 : 1;
  IM_CHECK(header.sample_shape.size() == want_rank, "shard ", path, ": a ", modality,
           " sample shape needs ", want_rank, " dimensions, got ", header.sample_shape.size());
  for (int64_t d : header.sample_shape)
    IM_CHECK(d > 0, "shard ", path, ": sample shape has a non-positive size ", d);
  IM_CHECK(n > 0, "shard ", path, ": a shard must hold at least one sample");
  IM_CHECK(header.num_classes > 0, "shard ", path, ": num_classes must be positive");
  IM_CHECK(!header.split.empty(), "shard ", path, ": the split name is empty");

  h5::quiet_hdf5();
  bool ok = false;
  {
    h5::Handle file =
        h5::file_handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    IM_CHECK(file.valid(), "shard ", path, ": cannot create the file (HDF5 H5Fcreate failed)");
    std::vector<hsize_t> dims{static_cast<hsize_t>(n)};
    for (int64_t d : header.sample_shape) dims.push_back(static_cast<hsize_t>(d));
    const hsize_t label_dims = static_cast<hsize_t>(n);
    const hid_t f = file.get();
    ok = write_dataset(f, "inputs", input_ftype, input_mtype, dims, inputs) &&
         write_dataset(f, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, {label_dims}, labels) &&
         h5::write_int_attr(f, "format_version", kFormatVersion) &&
         h5::write_string_attr(f, "modality", modality) &&
         h5::write_int_array_attr(f, "sample_shape", header.sample_shape) &&
         h5::write_int_attr(f, "num_classes", header.num_classes) &&
         h5::write_string_attr(f, "split", header.split) &&
         h5::write_int_attr(f, "num_samples", n) && file.close();
  }
  if (!ok) {
    std::error_code ec;
    std::filesystem::remove(path, ec);  // a half-written shard must not linger
    IM_CHECK(false, "shard ", path, ": HDF5 failed while writing it (disk full or unwritable?)");
  }
  fsync_path(path);

  proto::ShardInfo info;
  info.set_file(std::filesystem::path(path).filename().string());
  info.set_split(header.split);
  info.set_num_samples(static_cast<uint64_t>(n));
  info.set_crc32c(crc32c_file(path));
  info.set_size_bytes(std::filesystem::file_size(path));
  return info;
}

}  // namespace

proto::ShardInfo write_image_shard(const std::string& path, const ShardHeader& header,
                                   const uint8_t* images, const int32_t* labels, int64_t n) {
  return write_shard(path, header, "image", H5T_STD_U8LE, H5T_NATIVE_UINT8, images, labels, n);
}

proto::ShardInfo write_text_shard(const std::string& path, const ShardHeader& header,
                                  const int32_t* tokens, const int32_t* labels, int64_t n) {
  return write_shard(path, header, "text", H5T_STD_I32LE, H5T_NATIVE_INT32, tokens, labels, n);
}

}  // namespace im::data

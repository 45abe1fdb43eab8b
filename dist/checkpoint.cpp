#include "dist/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/crc32c.h"
#include "data/fs_util.h"
#include "data/hdf5_util.h"
#include "proto/checkpoint.pb.h"

namespace im::dist {

namespace fs = std::filesystem;
namespace h5 = data::h5;
namespace proto = ::infomamba::proto;

namespace {

constexpr uint32_t kFormatVersion = 1;
const char* const kGroups[] = {"params", "exp_avg", "exp_avg_sq"};

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::string rank_file_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "rank_%05d.h5", rank);
  return buf;
}

hid_t h5_type(DType dtype) {
  return dtype == DType::Float64 ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT;
}

void write_flat(hid_t file, const char* name, const Tensor& flat, const std::string& path) {
  const hsize_t n = static_cast<hsize_t>(flat.numel());
  h5::Handle space = h5::space_handle(H5Screate_simple(1, &n, nullptr));
  h5::Handle ds = h5::dataset_handle(H5Dcreate2(file, name, h5_type(flat.dtype()), space.get(),
                                                H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  IM_CHECK(ds.valid() && H5Dwrite(ds.get(), h5_type(flat.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                  flat.data_ptr()) >= 0,
           "checkpoint: cannot write dataset '", name, "' to ", path);
}

void read_flat(hid_t file, const char* name, const Tensor& dest, const std::string& path) {
  h5::Handle ds = h5::dataset_handle(H5Dopen2(file, name, H5P_DEFAULT));
  IM_CHECK(ds.valid(), "checkpoint ", path, ": dataset '", name, "' is missing");
  h5::Handle space = h5::space_handle(H5Dget_space(ds.get()));
  hsize_t n = 0;
  IM_CHECK(H5Sget_simple_extent_ndims(space.get()) == 1 &&
               H5Sget_simple_extent_dims(space.get(), &n, nullptr) == 1 &&
               static_cast<int64_t>(n) == dest.numel(),
           "checkpoint ", path, ": dataset '", name, "' has the wrong size (expected ",
           dest.numel(), " elements)");
  IM_CHECK(H5Dread(ds.get(), h5_type(dest.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                   dest.data_ptr()) >= 0,
           "checkpoint ", path, ": cannot read dataset '", name, "'");
}

uint32_t tensor_crc(const Tensor& flat, int64_t offset, int64_t numel) {
  const size_t elem = dtype_size(flat.dtype());
  return data::crc32c(static_cast<const char*>(flat.data_ptr()) + offset * elem, numel * elem);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  IM_CHECK(in.good(), "cannot read '", path, "'");
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

void prune(const fs::path& checkpoints, int keep) {
  if (keep <= 0) return;
  std::vector<fs::path> steps;
  for (const auto& e : fs::directory_iterator(checkpoints))
    if (e.is_directory() && e.path().filename().string().rfind("step_", 0) == 0)
      steps.push_back(e.path());
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + keep < steps.size(); ++i) fs::remove_all(steps[i]);
}

}  // namespace

std::string save_checkpoint(const std::string& run_dir, layers::ParameterStore& store,
                            layers::AdamW* optimizer, const TrainingState& state, int keep) {
  h5::quiet_hdf5();
  const fs::path checkpoints = fs::path(run_dir) / "checkpoints";
  fs::create_directories(checkpoints);
  const std::string name = step_dir_name(state.step);
  const fs::path final_dir = checkpoints / name;
  const fs::path tmp_dir = checkpoints / (name + ".tmp-" + std::to_string(getpid()));
  fs::remove_all(tmp_dir);
  fs::create_directories(tmp_dir);

  const Tensor& params = store.flat_params();
  const std::string rank_path = (tmp_dir / rank_file_name(0)).string();
  {
    h5::Handle file = h5::file_handle(H5Fcreate(rank_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT,
                                                H5P_DEFAULT));
    IM_CHECK(file.valid(), "checkpoint: cannot create ", rank_path);
    write_flat(file.get(), kGroups[0], params, rank_path);
    if (optimizer) {
      write_flat(file.get(), kGroups[1], optimizer->exp_avg(), rank_path);
      write_flat(file.get(), kGroups[2], optimizer->exp_avg_sq(), rank_path);
    }
    IM_CHECK(file.close(), "checkpoint: cannot close ", rank_path);
  }
  data::fsync_path(rank_path);

  proto::CheckpointManifest m;
  m.set_format_version(kFormatVersion);
  m.set_step(state.step);
  m.set_epoch(state.epoch);
  m.set_world_size(1);
  m.set_config_toml(state.config_toml);
  m.set_sampler_epoch(state.cursor.epoch);
  m.set_sampler_position(state.cursor.position);
  for (const auto& [stream, rng] : state.rng) {
    proto::RngStream* r = m.add_rng();
    r->set_name(stream);
    r->set_seed(rng.seed);
    r->set_offset(rng.offset);
  }
  for (const layers::ParamSlot& s : store.slots()) {
    proto::TensorEntry* t = m.add_tensors();
    t->set_name(s.name);
    t->set_dtype(dtype_name(params.dtype()));
    for (int64_t d : s.shape) t->add_shape(d);
    t->set_flat_offset(s.offset);
    t->set_numel(s.numel);
    t->set_shard(0);
    t->set_crc32c(tensor_crc(params, s.offset, s.numel));
  }
  proto::ShardFile* shard = m.add_shards();
  shard->set_file(rank_file_name(0));
  shard->set_crc32c(data::crc32c_file(rank_path));
  shard->set_size_bytes(fs::file_size(rank_path));
  shard->set_flat_begin(0);
  shard->set_flat_end(params.numel());
  m.set_flat_numel(params.numel());
  m.set_dtype(dtype_name(params.dtype()));
  m.set_has_optimizer_state(optimizer != nullptr);

  std::string bytes;
  IM_CHECK(m.SerializeToString(&bytes), "checkpoint: cannot serialise the manifest");
  data::write_file_atomic((tmp_dir / "manifest.pb").string(), bytes);
  data::fsync_path(tmp_dir.string());

  // Publish: rename the finished directory, then move `latest` (atomically) to it.
  fs::remove_all(final_dir);
  fs::rename(tmp_dir, final_dir);
  data::fsync_path(checkpoints.string());
  data::write_file_atomic((checkpoints / "latest").string(), name + "\n");
  prune(checkpoints, keep);
  return final_dir.string();
}

std::string resolve_checkpoint(const std::string& path) {
  const fs::path p(path);
  IM_CHECK(fs::exists(p), "checkpoint '", path, "' does not exist");
  if (fs::exists(p / "manifest.pb")) return p.string();
  for (const fs::path& dir : {p, p / "checkpoints"}) {
    if (!fs::exists(dir / "latest")) continue;
    std::string name = read_file((dir / "latest").string());
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    IM_CHECK(!name.empty() && fs::exists(dir / name / "manifest.pb"), "checkpoint: ",
             (dir / "latest").string(), " names '", name, "', which is not a complete checkpoint");
    return (dir / name).string();
  }
  throw Error("'" + path + "' is not a checkpoint: no manifest.pb and no checkpoints/latest");
}

std::string checkpoint_config_toml(const std::string& dir) {
  const std::string manifest_path = (fs::path(dir) / "manifest.pb").string();
  IM_CHECK(fs::exists(manifest_path), "checkpoint ", dir, " has no manifest.pb (incomplete)");
  proto::CheckpointManifest m;
  IM_CHECK(m.ParseFromString(read_file(manifest_path)), "checkpoint ", manifest_path,
           ": the manifest is corrupt (not a valid protobuf)");
  return m.config_toml();
}

TrainingState load_checkpoint(const std::string& dir, layers::ParameterStore& store,
                              layers::AdamW* optimizer) {
  h5::quiet_hdf5();
  const std::string manifest_path = (fs::path(dir) / "manifest.pb").string();
  IM_CHECK(fs::exists(manifest_path), "checkpoint ", dir, " has no manifest.pb (incomplete)");
  proto::CheckpointManifest m;
  IM_CHECK(m.ParseFromString(read_file(manifest_path)), "checkpoint ", manifest_path,
           ": the manifest is corrupt (not a valid protobuf)");
  IM_CHECK(m.format_version() == kFormatVersion, "checkpoint ", manifest_path,
           ": format version ", m.format_version(), " is not supported (expected ",
           kFormatVersion, ")");
  const Tensor& params = store.flat_params();
  IM_CHECK(m.dtype() == dtype_name(params.dtype()) &&
               static_cast<int64_t>(m.flat_numel()) == params.numel(),
           "checkpoint ", dir, " holds ", m.flat_numel(), " ", m.dtype(),
           " parameters but the model has ", params.numel(), " ", dtype_name(params.dtype()),
           " (a different model config?)");
  IM_CHECK(!optimizer || m.has_optimizer_state(), "checkpoint ", dir,
           " has no optimiser state to resume from");
  IM_CHECK(static_cast<size_t>(m.tensors_size()) == store.slots().size(), "checkpoint ", dir,
           " has ", m.tensors_size(), " tensors but the model has ", store.slots().size());
  for (size_t i = 0; i < store.slots().size(); ++i) {
    const layers::ParamSlot& s = store.slots()[i];
    const proto::TensorEntry& t = m.tensors(static_cast<int>(i));
    Shape shape(t.shape().begin(), t.shape().end());
    IM_CHECK(t.name() == s.name && shape == s.shape &&
                 static_cast<int64_t>(t.flat_offset()) == s.offset,
             "checkpoint ", dir, ": tensor ", i, " is '", t.name(), "' ", shape_str(shape),
             " but the model expects '", s.name, "' ", shape_str(s.shape));
  }
  for (const proto::ShardFile& shard : m.shards()) {
    const std::string path = (fs::path(dir) / shard.file()).string();
    IM_CHECK(fs::exists(path), "checkpoint ", dir, ": ", shard.file(), " is missing");
    IM_CHECK(fs::file_size(path) == shard.size_bytes(), "checkpoint file ", path, " is ",
             fs::file_size(path), " bytes, the manifest says ", shard.size_bytes(),
             " (truncated?)");
    const uint32_t crc = data::crc32c_file(path);
    IM_CHECK(crc == shard.crc32c(), "checkpoint file ", path, " fails its checksum (corrupt)");
    IM_CHECK(shard.flat_begin() == 0 && static_cast<int64_t>(shard.flat_end()) == params.numel(),
             "checkpoint ", dir, ": sharded checkpoints need the data-parallel loader");
    h5::Handle file = h5::file_handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    IM_CHECK(file.valid(), "checkpoint file ", path, " is not a readable HDF5 file");
    read_flat(file.get(), kGroups[0], params, path);
    if (optimizer) {
      read_flat(file.get(), kGroups[1], optimizer->exp_avg(), path);
      read_flat(file.get(), kGroups[2], optimizer->exp_avg_sq(), path);
    }
  }
  for (int i = 0; i < m.tensors_size(); ++i) {
    const proto::TensorEntry& t = m.tensors(i);
    IM_CHECK(tensor_crc(params, t.flat_offset(), t.numel()) == t.crc32c(), "checkpoint ", dir,
             ": tensor '", t.name(), "' fails its checksum");
  }
  if (optimizer) optimizer->set_steps_taken(static_cast<int64_t>(m.step()));
  TrainingState state;
  state.step = static_cast<int64_t>(m.step());
  state.epoch = static_cast<int64_t>(m.epoch());
  state.cursor = {m.sampler_epoch(), m.sampler_position()};
  for (const proto::RngStream& r : m.rng()) state.rng.push_back({r.name(), {r.seed(), r.offset()}});
  state.config_toml = m.config_toml();
  return state;
}

}  // namespace im::dist

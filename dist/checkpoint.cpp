#include "dist/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
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

// Writes `count` elements of `flat` from `begin` as the 1-D dataset `name`.
void write_slice(hid_t file, const char* name, const Tensor& flat, int64_t begin, int64_t count,
                 const std::string& path) {
  const hsize_t n = static_cast<hsize_t>(count);
  const char* data = static_cast<const char*>(flat.data_ptr()) + begin * dtype_size(flat.dtype());
  h5::Handle space = h5::space_handle(H5Screate_simple(1, &n, nullptr));
  h5::Handle ds = h5::dataset_handle(H5Dcreate2(file, name, h5_type(flat.dtype()), space.get(),
                                                H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  IM_CHECK(ds.valid() &&
               H5Dwrite(ds.get(), h5_type(flat.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
           "checkpoint: cannot write dataset '", name, "' to ", path);
}

// Reads the 1-D dataset `name` (exactly `count` elements) into `flat` from `begin`.
void read_slice(hid_t file, const char* name, const Tensor& flat, int64_t begin, int64_t count,
                const std::string& path) {
  h5::Handle ds = h5::dataset_handle(H5Dopen2(file, name, H5P_DEFAULT));
  IM_CHECK(ds.valid(), "checkpoint file ", path, ": dataset '", name, "' is missing");
  h5::Handle space = h5::space_handle(H5Dget_space(ds.get()));
  hsize_t n = 0;
  IM_CHECK(H5Sget_simple_extent_ndims(space.get()) == 1 &&
               H5Sget_simple_extent_dims(space.get(), &n, nullptr) == 1 &&
               static_cast<int64_t>(n) == count,
           "checkpoint file ", path, ": dataset '", name, "' has the wrong size (expected ", count,
           " elements)");
  char* data = static_cast<char*>(flat.data_ptr()) + begin * dtype_size(flat.dtype());
  IM_CHECK(H5Dread(ds.get(), h5_type(flat.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0,
           "checkpoint file ", path, ": cannot read dataset '", name, "'");
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

bool is_step_dir(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.rfind("step_", 0) == 0 && name.find('.') == std::string::npos;
}

// Published checkpoints, oldest first.
std::vector<fs::path> step_dirs(const fs::path& checkpoints) {
  std::vector<fs::path> steps;
  if (!fs::is_directory(checkpoints)) return steps;
  for (const auto& e : fs::directory_iterator(checkpoints))
    if (e.is_directory() && is_step_dir(e.path())) steps.push_back(e.path());
  std::sort(steps.begin(), steps.end());
  return steps;
}

// Deletes all but the newest `keep` checkpoints, and temporary directories that a crash
// left behind (no other writer can be active in this run directory now).
void prune(const fs::path& checkpoints, int keep) {
  for (const auto& e : fs::directory_iterator(checkpoints)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.rfind("step_", 0) == 0 && name.size() > 4 &&
        name.compare(name.size() - 4, 4, ".tmp") == 0)
      fs::remove_all(e.path());
  }
  if (keep <= 0) return;
  const std::vector<fs::path> steps = step_dirs(checkpoints);
  for (size_t i = 0; i + keep < steps.size(); ++i) fs::remove_all(steps[i]);
}

// Fault injection for the crash-safety tests (docs/CHECKPOINT.md):
// INFOMAMBA_FAULT_KILL_IN_CHECKPOINT="RANK:STEP" makes that rank SIGKILL itself after
// writing its file of that step's checkpoint, before the checkpoint is published.
void maybe_inject_kill(int rank, int64_t step) {
  const char* spec = std::getenv("INFOMAMBA_FAULT_KILL_IN_CHECKPOINT");
  if (!spec) return;
  long long r = -1, s = -1;
  if (std::sscanf(spec, "%lld:%lld", &r, &s) == 2 && r == rank && s == step) {
    std::fflush(nullptr);
    std::raise(SIGKILL);
  }
}

}  // namespace

std::pair<int64_t, int64_t> shard_range(int64_t numel, int rank, int world) {
  return {numel * rank / world, numel * (rank + 1) / world};
}

std::string save_checkpoint(const std::string& run_dir, layers::ParameterStore& store,
                            layers::AdamW* optimizer, const TrainingState& state, int keep,
                            Communicator* comm) {
  h5::quiet_hdf5();
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  const fs::path checkpoints = fs::path(run_dir) / "checkpoints";
  const std::string name = step_dir_name(state.step);
  const fs::path final_dir = checkpoints / name;
  const fs::path tmp_dir = checkpoints / (name + ".tmp");
  // Files are written from host memory: a GPU run's buffers are copied over once.
  auto on_host = [](const Tensor& t) { return t.device().is_cpu() ? t : t.to(Device::cpu()); };
  // Under mixed precision the float32 masters are the state, not the model's bf16 copy.
  const Tensor params = on_host(store.master_params());
  const Tensor exp_avg = optimizer ? on_host(optimizer->exp_avg()) : Tensor();
  const Tensor exp_avg_sq = optimizer ? on_host(optimizer->exp_avg_sq()) : Tensor();

  // Every stage ends with the ranks agreeing whether everyone succeeded, so a failure on
  // one rank becomes an error on all of them instead of a hang in the next collective.
  auto agree = [&](bool ok, const std::string& error, const std::string& others_error) {
    int64_t failed_rank = ok ? -1 : rank;
    if (comm) {
      Tensor flag = Tensor::scalar(static_cast<double>(failed_rank), DType::Float64);
      comm->all_reduce(flag, ReduceOp::Max);
      failed_rank = static_cast<int64_t>(flag.item());
    }
    if (!ok) throw Error(error);
    if (failed_rank >= 0) throw Error(others_error + " (rank " + std::to_string(failed_rank) + ")");
  };

  // 1. Rank 0 prepares an empty temporary directory.
  std::string error;
  bool ok = true;
  if (rank == 0) {
    try {
      fs::create_directories(checkpoints);
      fs::remove_all(tmp_dir);
      fs::create_directories(tmp_dir);
    } catch (const std::exception& e) {
      ok = false;
      error = std::string("checkpoint: cannot create ") + tmp_dir.string() + ": " + e.what();
    }
  }
  agree(ok, error, "checkpoint: cannot create " + tmp_dir.string());

  // 2. Each rank writes its slice of the parameters and optimiser state.
  const auto [begin, end] = shard_range(params.numel(), rank, world);
  const std::string rank_path = (tmp_dir / rank_file_name(rank)).string();
  int64_t file_crc = 0, file_size = 0;
  try {
    {
      h5::Handle file =
          h5::file_handle(H5Fcreate(rank_path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
      IM_CHECK(file.valid(), "checkpoint: cannot create ", rank_path);
      write_slice(file.get(), kGroups[0], params, begin, end - begin, rank_path);
      if (optimizer) {
        write_slice(file.get(), kGroups[1], exp_avg, begin, end - begin, rank_path);
        write_slice(file.get(), kGroups[2], exp_avg_sq, begin, end - begin, rank_path);
      }
      IM_CHECK(file.close(), "checkpoint: cannot close ", rank_path);
    }
    data::fsync_path(rank_path);
    file_crc = data::crc32c_file(rank_path);
    file_size = static_cast<int64_t>(fs::file_size(rank_path));
  } catch (const std::exception& e) {
    ok = false;
    error = e.what();
  }
  maybe_inject_kill(rank, state.step);
  agree(ok, error, "checkpoint: a rank could not write its file to " + tmp_dir.string());

  // 3. Rank 0 learns every file's checksum and size, writes the manifest and publishes.
  Tensor report = Tensor::from_vector<int64_t>({file_crc, file_size}, {2});
  Tensor reports = comm ? comm->all_gather(report) : report.reshape({1, 2});
  if (rank == 0) {
    try {
      proto::CheckpointManifest m;
      m.set_format_version(kFormatVersion);
      m.set_step(state.step);
      m.set_epoch(state.epoch);
      m.set_world_size(world);
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
        // The rank file holding the tensor's first element.
        int owner = 0;
        while (shard_range(params.numel(), owner, world).second <= s.offset) ++owner;
        t->set_shard(owner);
        t->set_crc32c(tensor_crc(params, s.offset, s.numel));
      }
      const int64_t* rep = reports.data<int64_t>();
      for (int r = 0; r < world; ++r) {
        const auto [b, e] = shard_range(params.numel(), r, world);
        proto::ShardFile* shard = m.add_shards();
        shard->set_file(rank_file_name(r));
        shard->set_crc32c(static_cast<uint32_t>(rep[2 * r]));
        shard->set_size_bytes(static_cast<uint64_t>(rep[2 * r + 1]));
        shard->set_flat_begin(b);
        shard->set_flat_end(e);
      }
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
    } catch (const std::exception& e) {
      ok = false;
      error = std::string("checkpoint ") + final_dir.string() + ": " + e.what();
    }
  }
  agree(ok, error, "checkpoint: rank 0 could not publish " + final_dir.string());
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
    IM_CHECK(!name.empty() && fs::exists(dir / name / "manifest.pb"),
             "checkpoint: ", (dir / "latest").string(), " names '", name,
             "', which is not a complete checkpoint");
    return (dir / name).string();
  }
  throw Error("'" + path + "' is not a checkpoint: no manifest.pb and no checkpoints/latest");
}

namespace {
proto::CheckpointManifest read_manifest(const std::string& dir) {
  const std::string manifest_path = (fs::path(dir) / "manifest.pb").string();
  IM_CHECK(fs::exists(manifest_path), "checkpoint ", dir, " has no manifest.pb (incomplete)");
  proto::CheckpointManifest m;
  IM_CHECK(m.ParseFromString(read_file(manifest_path)), "checkpoint ", manifest_path,
           ": the manifest is corrupt (not a valid protobuf)");
  IM_CHECK(m.format_version() == kFormatVersion, "checkpoint ", manifest_path, ": format version ",
           m.format_version(), " is not supported (expected ", kFormatVersion, ")");
  return m;
}
}  // namespace

std::string checkpoint_config_toml(const std::string& dir) {
  return read_manifest(dir).config_toml();
}

CheckpointContents read_checkpoint(const std::string& dir, bool with_optimizer_state) {
  h5::quiet_hdf5();
  const proto::CheckpointManifest m = read_manifest(dir);
  IM_CHECK(m.dtype() == "float32" || m.dtype() == "float64", "checkpoint ", dir,
           ": unsupported dtype '", m.dtype(), "'");
  const DType dtype = m.dtype() == "float64" ? DType::Float64 : DType::Float32;
  const auto n = static_cast<int64_t>(m.flat_numel());
  IM_CHECK(!with_optimizer_state || m.has_optimizer_state(), "checkpoint ", dir,
           " has no optimiser state to resume from");

  CheckpointContents c;
  c.dir = dir;
  c.has_optimizer_state = m.has_optimizer_state();
  c.params = Tensor::zeros({n}, dtype);
  if (with_optimizer_state) {
    c.exp_avg = Tensor::zeros({n}, dtype);
    c.exp_avg_sq = Tensor::zeros({n}, dtype);
  }
  // The files' slices must tile [0, n) exactly.
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const proto::ShardFile& shard : m.shards()) {
    const std::string path = (fs::path(dir) / shard.file()).string();
    IM_CHECK(fs::exists(path), "checkpoint ", dir, ": ", shard.file(), " is missing");
    IM_CHECK(fs::file_size(path) == shard.size_bytes(), "checkpoint file ", path, " is ",
             fs::file_size(path), " bytes, the manifest says ", shard.size_bytes(),
             " (truncated?)");
    IM_CHECK(data::crc32c_file(path) == shard.crc32c(), "checkpoint file ", path,
             " fails its checksum (corrupt)");
    const auto b = static_cast<int64_t>(shard.flat_begin());
    const auto e = static_cast<int64_t>(shard.flat_end());
    IM_CHECK(0 <= b && b <= e && e <= n, "checkpoint ", dir, ": ", shard.file(), " claims [", b,
             ", ", e, ") of a flat space of ", n);
    ranges.emplace_back(b, e);
    h5::Handle file = h5::file_handle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    IM_CHECK(file.valid(), "checkpoint file ", path, " is not a readable HDF5 file");
    read_slice(file.get(), kGroups[0], c.params, b, e - b, path);
    if (with_optimizer_state) {
      read_slice(file.get(), kGroups[1], c.exp_avg, b, e - b, path);
      read_slice(file.get(), kGroups[2], c.exp_avg_sq, b, e - b, path);
    }
  }
  std::sort(ranges.begin(), ranges.end());
  int64_t covered = 0;
  for (const auto& [b, e] : ranges) {
    IM_CHECK(b == covered, "checkpoint ", dir, ": the rank files leave [", covered, ", ", b,
             ") of the flat space unwritten or overlap");
    covered = e;
  }
  IM_CHECK(covered == n, "checkpoint ", dir, ": the rank files cover ", covered, " of ", n,
           " elements");
  for (const proto::TensorEntry& t : m.tensors()) {
    const auto off = static_cast<int64_t>(t.flat_offset());
    const auto numel = static_cast<int64_t>(t.numel());
    IM_CHECK(off >= 0 && numel >= 0 && off + numel <= n, "checkpoint ", dir, ": tensor '", t.name(),
             "' lies outside the flat space");
    IM_CHECK(tensor_crc(c.params, off, numel) == t.crc32c(), "checkpoint ", dir, ": tensor '",
             t.name(), "' fails its checksum");
    c.tensors.push_back({t.name(), Shape(t.shape().begin(), t.shape().end()), off, numel});
  }
  c.state.step = static_cast<int64_t>(m.step());
  c.state.epoch = static_cast<int64_t>(m.epoch());
  c.state.cursor = {m.sampler_epoch(), m.sampler_position()};
  for (const proto::RngStream& r : m.rng())
    c.state.rng.push_back({r.name(), {r.seed(), r.offset()}});
  c.state.config_toml = m.config_toml();
  c.state.world_size = static_cast<int>(m.world_size());
  return c;
}

TrainingState load_checkpoint(const CheckpointContents& c, layers::ParameterStore& store,
                              layers::AdamW* optimizer) {
  const std::string& dir = c.dir;
  const Tensor& params = store.master_params();
  IM_CHECK(c.params.dtype() == params.dtype() && c.params.numel() == params.numel(), "checkpoint ",
           dir, " holds ", c.params.numel(), " ", dtype_name(c.params.dtype()),
           " parameters but the model has ", params.numel(), " ", dtype_name(params.dtype()),
           " (a different model config?)");
  IM_CHECK(!optimizer || c.has_optimizer_state, "checkpoint ", dir,
           " has no optimiser state to resume from");
  IM_CHECK(!optimizer || c.exp_avg.defined(), "checkpoint ", dir, ": optimiser state was not read");
  IM_CHECK(c.tensors.size() == store.slots().size(), "checkpoint ", dir, " has ", c.tensors.size(),
           " tensors but the model has ", store.slots().size());
  for (size_t i = 0; i < store.slots().size(); ++i) {
    const layers::ParamSlot& s = store.slots()[i];
    const CheckpointContents::Entry& t = c.tensors[i];
    IM_CHECK(t.name == s.name && t.shape == s.shape && t.offset == s.offset, "checkpoint ", dir,
             ": tensor ", i, " is '", t.name, "' ", shape_str(t.shape), " but the model expects '",
             s.name, "' ", shape_str(s.shape));
  }
  params.copy_(c.params);
  store.refresh_model_params();
  if (optimizer) {
    optimizer->exp_avg().copy_(c.exp_avg);
    optimizer->exp_avg_sq().copy_(c.exp_avg_sq);
    optimizer->set_steps_taken(c.state.step);
  }
  return c.state;
}

TrainingState load_checkpoint(const std::string& dir, layers::ParameterStore& store,
                              layers::AdamW* optimizer) {
  return load_checkpoint(read_checkpoint(dir, optimizer != nullptr), store, optimizer);
}

std::optional<CheckpointContents> newest_valid_checkpoint(
    const std::string& run_dir, bool with_optimizer_state,
    const std::function<void(const std::string&)>& warn) {
  std::vector<fs::path> steps = step_dirs(fs::path(run_dir) / "checkpoints");
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    try {
      return read_checkpoint(it->string(), with_optimizer_state);
    } catch (const std::exception& e) {
      warn(std::string(e.what()) + "; skipping it");
    }
  }
  return std::nullopt;
}

}  // namespace im::dist

// `infomamba_dist export --checkpoint PATH --out FILE`: the parameters of a checkpoint as one
// HDF5 file for use outside this program (h5py, NumPy): one float32 dataset per parameter,
// named by its dotted path and shaped as the model holds it, plus the step, the parameter
// count and the resolved config as file attributes (README.md, "Export").
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/fs_util.h"
#include "data/hdf5_util.h"
#include "dist/checkpoint.h"
#include "launch/cli_flags.h"
#include "launch/command_guard.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "layers/infomamba.h"
#include "layers/parameter_store.h"

namespace im::launch {

namespace {

namespace fs = std::filesystem;
namespace h5 = data::h5;

struct ExportArgs {
  std::string checkpoint;
  std::string out;
};

// Throws SetupError naming the bad argument.
ExportArgs parse_export_args(int argc, char** argv) {
  ExportArgs a;
  parse_flags(argc, argv,
              {{"--checkpoint", [&](const std::string& v) { a.checkpoint = v; }},
               {"--out", [&](const std::string& v) { a.out = v; }}});
  if (a.checkpoint.empty()) throw SetupError("--checkpoint PATH is required");
  if (a.out.empty()) throw SetupError("--out FILE is required");
  return a;
}

// A checkpoint's parameters, in the model its own stored config describes. The model is
// declared before the store so that it outlives it: the store points at the model's tensors.
struct LoadedCheckpoint {
  std::string dir;
  std::string config_toml;
  int64_t step = 0;
  std::unique_ptr<layers::InfoMamba> model;
  std::unique_ptr<layers::ParameterStore> store;
};

// Everything here is about what the user pointed us at, so every failure is a SetupError.
LoadedCheckpoint load(const std::string& path) {
  LoadedCheckpoint c;
  try {
    c.dir = dist::resolve_checkpoint(path);
    c.config_toml = dist::checkpoint_config_toml(c.dir);
  } catch (const std::exception& e) {
    throw SetupError(e.what());
  }
  if (c.config_toml.empty())
    throw SetupError("checkpoint " + c.dir + " stores no config, so its model cannot be rebuilt");
  // The resolved config already holds the input shape and class count the trainer took from
  // the dataset, so no dataset is opened here. Its errors name "DIR/manifest.pb:config_toml".
  const std::string origin = (fs::path(c.dir) / "manifest.pb").string() + ":config_toml";
  const RunConfig cfg = load_run_config_text(c.config_toml, origin, {});
  try {
    // The initial values are overwritten by the checkpoint's; the seed does not matter.
    Generator gen(cfg.seed);
    c.model = std::make_unique<layers::InfoMamba>(cfg.model, gen);
    c.store = std::make_unique<layers::ParameterStore>(*c.model, DType::Float32);
    // Verifies every checksum and that names and shapes match the model.
    c.step = dist::load_checkpoint(c.dir, *c.store, nullptr).step;
  } catch (const std::exception& e) {
    throw SetupError(e.what());
  }
  return c;
}

// The temporary file an export is written to, removed unless it was renamed into place,
// so a failed export never leaves a half-written file behind.
class TempOutput {
 public:
  // Creates `out`'s temporary sibling; a directory that is missing or not writable is the
  // user's to fix, hence a SetupError naming `out`.
  explicit TempOutput(const std::string& out) : path_(out + ".tmp-" + std::to_string(::getpid())) {
    if (fs::is_directory(out)) throw SetupError("cannot write '" + out + "': it is a directory");
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw SetupError("cannot write '" + out + "': " + std::strerror(errno));
    ::close(fd);
  }
  ~TempOutput() {
    if (!committed_) std::remove(path_.c_str());
  }
  TempOutput(const TempOutput&) = delete;
  TempOutput& operator=(const TempOutput&) = delete;

  const std::string& path() const { return path_; }
  // fsyncs the finished file, renames it over `out` and fsyncs the directory.
  void commit(const std::string& out) {
    data::fsync_path(path_);
    IM_CHECK(std::rename(path_.c_str(), out.c_str()) == 0, "cannot rename '", path_, "' to '", out,
             "': ", std::strerror(errno));
    committed_ = true;
    const std::string dir = fs::path(out).parent_path().string();
    data::fsync_path(dir.empty() ? "." : dir);
  }

 private:
  std::string path_;
  bool committed_ = false;
};

void write_parameter(hid_t file, const layers::ParamSlot& slot, const Tensor& flat,
                     const std::string& path) {
  const std::vector<hsize_t> dims(slot.shape.begin(), slot.shape.end());
  h5::Handle space = h5::space_handle(
      dims.empty() ? H5Screate(H5S_SCALAR)
                   : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  // A dotted name is one dataset in the root group; only '/' would make groups.
  h5::Handle ds = h5::dataset_handle(H5Dcreate2(
      file, slot.name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  const float* values = static_cast<const float*>(flat.data_ptr()) + slot.offset;
  IM_CHECK(space.valid() && ds.valid() &&
               H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0,
           "export: cannot write dataset '", slot.name, "' to ", path);
}

void write_export(const LoadedCheckpoint& c, const std::string& out) {
  h5::quiet_hdf5();
  TempOutput tmp(out);
  {
    h5::Handle file =
        h5::file_handle(H5Fcreate(tmp.path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    IM_CHECK(file.valid(), "export: cannot create HDF5 file ", tmp.path());
    for (const layers::ParamSlot& slot : c.store->slots())
      write_parameter(file.get(), slot, c.store->master_params(), tmp.path());
    IM_CHECK(h5::write_int_attr(file.get(), "step", c.step) &&
                 h5::write_int_attr(file.get(), "num_parameters", c.model->num_parameters()) &&
                 h5::write_utf8_string_attr(file.get(), "config_toml", c.config_toml) &&
                 h5::write_utf8_string_attr(file.get(), "checkpoint",
                                            fs::absolute(c.dir).lexically_normal().string()),
             "export: cannot write the attributes of ", tmp.path());
    IM_CHECK(file.close(), "export: cannot close ", tmp.path());
  }
  tmp.commit(out);
}

}  // namespace

int run_export(int argc, char** argv) {
  return guarded("export", [&] {
    const ExportArgs args = parse_export_args(argc, argv);
    const LoadedCheckpoint c = load(args.checkpoint);
    write_export(c, args.out);
    std::printf("export %s: %lld parameters in %zu tensors, step %lld -> %s\n", c.dir.c_str(),
                static_cast<long long>(c.model->num_parameters()), c.store->slots().size(),
                static_cast<long long>(c.step), args.out.c_str());
    return 0;
  });
}

}  // namespace im::launch

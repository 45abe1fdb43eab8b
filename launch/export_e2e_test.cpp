// `infomamba_dist export` through the real binary: a tiny run is trained once, exported, and
// the HDF5 file, read back with the HDF5 C API, must hold exactly the checkpoint's parameters
// (names, shapes, bits) and describe itself; bad input is one stderr line and exit code 2.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "data/hdf5_util.h"
#include "data/test_util.h"
#include "dist/checkpoint.h"
#include "launch/cli_test_support.h"
#include "launch/config.h"
#include "layers/infomamba.h"
#include "layers/parameter_store.h"

namespace fs = std::filesystem;
namespace dt = im::data::testing;
namespace h5 = im::data::h5;
using im::launch::testing::expect_one_error_line;
using im::launch::testing::Outcome;
using im::launch::testing::run_cli;

namespace {

// Small enough that training 3 steps and exporting take well under a second.
const char* const kTinyModel =
    " --set model.d_model=8 --set model.depth=1 --set model.d_state=2"
    " --set model.num_concepts=4 --set model.num_buckets=2 --set model.top_r=1"
    " --set model.k_min=1 --set model.k_max=4 --set model.d_proj=8 --set model.patch=7";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

herr_t collect_name(hid_t, const char* name, const H5L_info_t*, void* names) {
  static_cast<std::set<std::string>*>(names)->insert(name);
  return 0;
}

// The names of the links in the root group of `file`.
std::set<std::string> root_names(hid_t file) {
  std::set<std::string> names;
  hsize_t idx = 0;
  EXPECT_GE(H5Literate(file, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &names), 0);
  return names;
}

class Export : public ::testing::Test {
 protected:
  // One training run shared by every test; tests that tamper with it work on a copy.
  static void SetUpTestSuite() {
    tmp_ = new dt::TempDir();
    const std::string root = tmp_->path();
    dt::write_synthetic_idx_set(root, 10, 4, 28, 28, true);
    const Outcome data =
        run_cli("data mnist --src " + root + " --out " + (*tmp_ / "data") + " --shards 2", root);
    if (data.exit_code != 0) return;
    std::ofstream(*tmp_ / "run.toml") << "[run]\nname = \"t\"\ndir = \"" << run_dir() << "\"\n"
                                      << "[data]\ndir = \"" << (*tmp_ / "data") << "\"\n"
                                      << "[train]\nmax_steps = 3\nepochs = 2\nbatch_size = 4\n";
    train_ = new Outcome(run_cli("train --config " + (*tmp_ / "run.toml") + kTinyModel, root));
  }
  static void TearDownTestSuite() {
    delete train_;
    delete tmp_;
  }
  void SetUp() override {
    ASSERT_TRUE(train_ != nullptr && train_->exit_code == 0)
        << "the tiny training run failed: " << (train_ ? train_->err : "(no dataset)");
    out_dir_ = *tmp_ / ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(out_dir_);
  }

  static std::string run_dir() { return *tmp_ / "run"; }
  static std::string step_dir() { return run_dir() + "/checkpoints/step_00000003"; }
  std::string out(const std::string& name) const { return out_dir_ + "/" + name; }
  Outcome export_cli(const std::string& args) const { return run_cli("export " + args, out_dir_); }
  // Every file in out_dir_ but the captured stdout and stderr: what an export left behind.
  std::set<std::string> left_behind() const {
    std::set<std::string> files;
    for (const auto& e : fs::directory_iterator(out_dir_))
      files.insert(e.path().filename().string());
    files.erase("stdout.txt");
    files.erase("stderr.txt");
    return files;
  }

  static dt::TempDir* tmp_;
  static Outcome* train_;
  std::string out_dir_;
};
dt::TempDir* Export::tmp_ = nullptr;
Outcome* Export::train_ = nullptr;

// The checkpoint's parameters, in a model built from the run's own config.toml (not the
// copy in the manifest that export reads), so the test does not reuse export's path.
struct Reference {
  im::launch::RunConfig cfg;
  std::unique_ptr<im::layers::InfoMamba> model;
  std::unique_ptr<im::layers::ParameterStore> store;
  int64_t step = 0;

  Reference(const std::string& run_dir, const std::string& ckpt)
      : cfg(im::launch::load_run_config(run_dir + "/config.toml", {})) {
    im::Generator gen(99);
    model = std::make_unique<im::layers::InfoMamba>(cfg.model, gen);
    store = std::make_unique<im::layers::ParameterStore>(*model, im::DType::Float32);
    step = im::dist::load_checkpoint(ckpt, *store, nullptr).step;
  }
};

}  // namespace

TEST_F(Export, WritesEveryParameterWithItsShapeAndExactValues) {
  const Outcome o = export_cli("--checkpoint " + run_dir() + " --out " + out("model.h5"));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("step_00000003"), std::string::npos) << o.out;
  EXPECT_EQ(left_behind(), std::set<std::string>{"model.h5"}) << "a temporary file is left";

  const Reference ref(run_dir(), step_dir());
  ASSERT_EQ(ref.step, 3);
  h5::quiet_hdf5();
  h5::Handle file = h5::file_handle(H5Fopen(out("model.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  ASSERT_TRUE(file.valid());

  std::set<std::string> expected;
  for (const im::layers::ParamSlot& s : ref.store->slots()) expected.insert(s.name);
  ASSERT_EQ(expected.size(), ref.store->slots().size());
  EXPECT_TRUE(expected.count("blocks.0.mixer.out_proj.weight"));
  EXPECT_EQ(root_names(file.get()), expected);

  const float* flat = static_cast<const float*>(ref.store->flat_params().data_ptr());
  for (const im::layers::ParamSlot& s : ref.store->slots()) {
    SCOPED_TRACE(s.name);
    h5::Handle ds = h5::dataset_handle(H5Dopen2(file.get(), s.name.c_str(), H5P_DEFAULT));
    ASSERT_TRUE(ds.valid()) << "not a dataset of the root group";
    h5::Handle type = h5::type_handle(H5Dget_type(ds.get()));
    EXPECT_EQ(h5::type_name(type.get()), "float32");
    h5::Handle space = h5::space_handle(H5Dget_space(ds.get()));
    const int rank = H5Sget_simple_extent_ndims(space.get());
    std::vector<hsize_t> dims(static_cast<size_t>(std::max(rank, 0)));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    EXPECT_EQ(im::Shape(dims.begin(), dims.end()), s.shape);
    std::vector<float> values(static_cast<size_t>(s.numel));
    ASSERT_GE(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
    EXPECT_EQ(std::memcmp(values.data(), flat + s.offset, values.size() * sizeof(float)), 0)
        << "values differ from the checkpoint's";
  }

  std::string problem;
  EXPECT_EQ(h5::read_int_attr(file.get(), "step", problem), 3) << problem;
  EXPECT_EQ(h5::read_int_attr(file.get(), "num_parameters", problem), ref.model->num_parameters())
      << problem;
  const std::optional<std::string> config =
      h5::read_string_attr(file.get(), "config_toml", problem);
  ASSERT_TRUE(config) << problem;
  EXPECT_EQ(*config, im::dist::checkpoint_config_toml(step_dir()));
  EXPECT_EQ(*config, slurp(run_dir() + "/config.toml"));
  EXPECT_EQ(h5::read_string_attr(file.get(), "checkpoint", problem),
            fs::absolute(step_dir()).lexically_normal().string());
}

TEST_F(Export, AcceptsAStepDirectoryARunDirectoryOrItsCheckpointsDirectory) {
  for (const std::string& path : {step_dir(), run_dir(), run_dir() + "/checkpoints"}) {
    SCOPED_TRACE(path);
    const Outcome o = export_cli("--checkpoint " + path + " --out=" + out("m.h5"));
    EXPECT_EQ(o.exit_code, 0) << o.err;
    EXPECT_NE(o.out.find("step 3"), std::string::npos) << o.out;
  }
}

TEST_F(Export, MissingCheckpoint) {
  const std::string missing = *tmp_ / "no_such_run";
  expect_one_error_line(export_cli("--checkpoint " + missing + " --out " + out("m.h5")),
                        {"infomamba_dist export: error: ", missing});
  EXPECT_TRUE(left_behind().empty());
}

TEST_F(Export, CorruptRankFileLeavesAnEarlierExportUntouched) {
  const std::string copy = *tmp_ / "corrupt_run";
  fs::copy(run_dir(), copy, fs::copy_options::recursive);
  const std::string rank_file = copy + "/checkpoints/step_00000003/rank_00000.h5";
  std::vector<uint8_t> bytes = dt::read_bytes(rank_file);
  bytes[bytes.size() / 2] ^= 0x01;
  dt::write_bytes(rank_file, bytes);
  std::ofstream(out("m.h5")) << "an earlier export";

  expect_one_error_line(export_cli("--checkpoint " + copy + " --out " + out("m.h5")),
                        {"infomamba_dist export: error: ", rank_file, "checksum"});
  EXPECT_EQ(slurp(out("m.h5")), "an earlier export");
  EXPECT_EQ(left_behind(), std::set<std::string>{"m.h5"});
}

TEST_F(Export, MissingOut) {
  expect_one_error_line(export_cli("--checkpoint " + run_dir()), {"--out FILE is required"});
  EXPECT_TRUE(left_behind().empty());
}

TEST_F(Export, MissingCheckpointFlagAndUnknownArgument) {
  expect_one_error_line(export_cli("--out " + out("m.h5")), {"--checkpoint PATH is required"});
  expect_one_error_line(
      export_cli("--checkpoint " + run_dir() + " --out " + out("m.h5") + " --config x.toml"),
      {"unknown argument '--config'"});
  EXPECT_TRUE(left_behind().empty());
}

TEST_F(Export, UnwritableOutputNamesThePath) {
  const std::string in_missing_dir = out("no_such_dir/m.h5");
  expect_one_error_line(export_cli("--checkpoint " + run_dir() + " --out " + in_missing_dir),
                        {"cannot write '" + in_missing_dir + "'"});
  expect_one_error_line(export_cli("--checkpoint " + run_dir() + " --out " + out_dir_),
                        {"cannot write '" + out_dir_ + "'", "directory"});
  EXPECT_TRUE(left_behind().empty());
}

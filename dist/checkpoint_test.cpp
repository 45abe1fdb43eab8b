#include "dist/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/ops.h"
#include "data/test_util.h"
#include "layers/basic.h"

namespace fs = std::filesystem;
using im::DType;
using im::Tensor;
using namespace im::layers;

namespace {

class TwoLayer : public Module {
 public:
  TwoLayer(int64_t width, im::Generator& gen) {
    a = &register_module("a", std::make_unique<Linear>(3, width, true, gen, DType::Float32));
    b = &register_module("b", std::make_unique<Linear>(width, 2, false, gen, DType::Float32));
  }
  Linear* a;
  Linear* b;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const im::Error& e) {
    return e.what();
  }
  return "";
}

class CheckpointTest : public ::testing::Test {
 protected:
  CheckpointTest() : gen_(1), model_(5, gen_), store_(model_, DType::Float32), opt_(store_, {}) {
    // One real optimiser step so the moments are non-trivial.
    store_.flat_grads().copy_(im::randn({store_.numel()}, gen_));
    opt_.step(1e-2);
    state_.step = 7;
    state_.epoch = 2;
    state_.cursor = {2, 96};
    state_.rng = {{"init", {11, 3}}, {"train", {12, 40}}};
    state_.config_toml = "[run]\nname = \"x\"\n";
  }
  std::string run_dir() const { return tmp_ / "run"; }

  im::data::testing::TempDir tmp_;
  im::Generator gen_;
  TwoLayer model_;
  ParameterStore store_;
  AdamW opt_;
  im::dist::TrainingState state_;
};

}  // namespace

TEST_F(CheckpointTest, RoundTripRestoresEverything) {
  const std::string dir = im::dist::save_checkpoint(run_dir(), store_, &opt_, state_);
  EXPECT_EQ(fs::path(dir).filename(), "step_00000007");
  EXPECT_EQ(im::dist::resolve_checkpoint(run_dir()), dir);
  EXPECT_EQ(im::dist::resolve_checkpoint(run_dir() + "/checkpoints"), dir);
  EXPECT_EQ(im::dist::resolve_checkpoint(dir), dir);

  im::Generator other(99);
  TwoLayer fresh(5, other);
  ParameterStore fresh_store(fresh, DType::Float32);
  AdamW fresh_opt(fresh_store, {});
  const auto loaded = im::dist::load_checkpoint(dir, fresh_store, &fresh_opt);
  EXPECT_EQ(fresh_store.flat_params().to_vector<float>(), store_.flat_params().to_vector<float>());
  EXPECT_EQ(fresh_opt.exp_avg().to_vector<float>(), opt_.exp_avg().to_vector<float>());
  EXPECT_EQ(fresh_opt.exp_avg_sq().to_vector<float>(), opt_.exp_avg_sq().to_vector<float>());
  EXPECT_EQ(fresh_opt.steps_taken(), 7);
  EXPECT_EQ(loaded.step, 7);
  EXPECT_EQ(loaded.epoch, 2);
  EXPECT_EQ(loaded.cursor, state_.cursor);
  EXPECT_EQ(loaded.rng, state_.rng);
  EXPECT_EQ(loaded.config_toml, state_.config_toml);
  // Parameters load into the model's own tensors (views of the flat buffer).
  EXPECT_EQ(fresh.a->weight().to_vector<float>(), model_.a->weight().to_vector<float>());
}

TEST_F(CheckpointTest, CorruptAndTruncatedFilesAreRejected) {
  const std::string dir = im::dist::save_checkpoint(run_dir(), store_, &opt_, state_);
  const std::string rank = dir + "/rank_00000.h5";
  auto bytes = im::data::testing::read_bytes(rank);
  auto flipped = bytes;
  flipped[flipped.size() - 20] ^= 0x01;
  im::data::testing::write_bytes(rank, flipped);
  EXPECT_NE(error_of([&] { im::dist::load_checkpoint(dir, store_, &opt_); }).find("checksum"),
            std::string::npos);
  bytes.resize(bytes.size() / 2);
  im::data::testing::write_bytes(rank, bytes);
  const std::string e = error_of([&] { im::dist::load_checkpoint(dir, store_, &opt_); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("rank_00000.h5"), std::string::npos) << e;
  fs::remove(dir + "/manifest.pb");
  EXPECT_NE(error_of([&] { im::dist::load_checkpoint(dir, store_, &opt_); }).find("incomplete"),
            std::string::npos);
}

TEST_F(CheckpointTest, ADifferentModelIsRejected) {
  const std::string dir = im::dist::save_checkpoint(run_dir(), store_, nullptr, state_);
  im::Generator g(3);
  TwoLayer wider(6, g);
  ParameterStore wider_store(wider, DType::Float32);
  EXPECT_NE(error_of([&] {
              im::dist::load_checkpoint(dir, wider_store, nullptr);
            }).find("a different model config"),
            std::string::npos);
  // Saved without optimiser state: loading for a resume says so.
  EXPECT_NE(
      error_of([&] { im::dist::load_checkpoint(dir, store_, &opt_); }).find("no optimiser state"),
      std::string::npos);
}

TEST_F(CheckpointTest, LatestMovesAndOldOnesArePruned) {
  for (int64_t step : {1, 2, 3, 4}) {
    state_.step = step;
    im::dist::save_checkpoint(run_dir(), store_, &opt_, state_, /*keep=*/2);
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(run_dir() + "/checkpoints"))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step_00000003", "step_00000004"}));
  EXPECT_EQ(fs::path(im::dist::resolve_checkpoint(run_dir())).filename(), "step_00000004");
  EXPECT_NE(
      error_of([&] { im::dist::resolve_checkpoint(tmp_ / "nowhere"); }).find("does not exist"),
      std::string::npos);
}

// --resume auto: a corrupt newest checkpoint is reported by name and skipped; a left-over
// temporary directory of a crashed write is never taken for a checkpoint.
TEST_F(CheckpointTest, NewestValidCheckpointSkipsCorruptOnesWithAWarning) {
  for (int64_t step : {10, 20}) {
    state_.step = step;
    im::dist::save_checkpoint(run_dir(), store_, &opt_, state_);
  }
  fs::create_directories(run_dir() + "/checkpoints/step_00000030.tmp");
  const std::string newest = run_dir() + "/checkpoints/step_00000020/rank_00000.h5";
  auto bytes = im::data::testing::read_bytes(newest);
  bytes[bytes.size() / 2] ^= 0x40;
  im::data::testing::write_bytes(newest, bytes);

  std::vector<std::string> warnings;
  auto found = im::dist::newest_valid_checkpoint(
      run_dir(), true, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->state.step, 10);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("step_00000020/rank_00000.h5 fails its checksum"), std::string::npos)
      << warnings[0];
  // The next save clears the crashed write's temporary directory.
  state_.step = 40;
  im::dist::save_checkpoint(run_dir(), store_, &opt_, state_);
  EXPECT_FALSE(fs::exists(run_dir() + "/checkpoints/step_00000030.tmp"));
  // Nothing to resume from in an empty run directory.
  EXPECT_FALSE(im::dist::newest_valid_checkpoint(tmp_ / "empty", true, [](const std::string&) {
               }).has_value());
}

TEST(CheckpointShards, RangesTileTheFlatSpace) {
  for (int world : {1, 2, 3, 7}) {
    int64_t next = 0;
    for (int r = 0; r < world; ++r) {
      const auto [b, e] = im::dist::shard_range(1001, r, world);
      EXPECT_EQ(b, next);
      EXPECT_GE(e - b, 1001 / world);
      next = e;
    }
    EXPECT_EQ(next, 1001);
  }
}

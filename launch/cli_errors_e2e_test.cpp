// The program's failure paths, through the real binary: bad config or bad data is one
// clear line on stderr naming what and where, exit code 2, and nothing trained.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/device.h"
#include "data/manifest.h"
#include "data/shard_writer.h"
#include "data/test_util.h"
#include "launch/cli_test_support.h"

namespace fs = std::filesystem;
namespace dt = im::data::testing;
using im::launch::testing::Outcome;
using im::launch::testing::run_cli;

namespace {

class CliErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    // A tiny synthetic 28x28 dataset (10 train, 4 test samples) in two shards per split.
    dt::write_synthetic_idx_set(tmp_.path(), 10, 4, 28, 28, true);
    const Outcome o = run_cli(
        "data mnist --src " + tmp_.path() + " --out " + data_dir() + " --shards 2", tmp_.path());
    ASSERT_EQ(o.exit_code, 0) << o.err;
    write_config("[data]\ndir = \"" + data_dir() + "\"\n");
  }
  std::string data_dir() const { return tmp_ / "data"; }
  std::string config() const { return tmp_ / "run.toml"; }
  void write_config(const std::string& extra) {
    std::ofstream(config()) << "[run]\nname = \"t\"\ndir = \"" << (tmp_ / "run") << "\"\n"
                            << "[model]\npreset = \"nano\"\n[train]\nmax_steps = 2\n"
                            << "batch_size = 4\n"
                            << extra;
  }
  std::string shard(int i) const {
    return (fs::path(data_dir()) / im::data::shard_file_name("train", i, 2)).string();
  }
  // Expects exit 2, exactly one stderr line containing every piece, and nothing trained.
  void expect_clean_failure(const Outcome& o, const std::vector<std::string>& pieces) {
    im::launch::testing::expect_one_error_line(o, pieces);
    EXPECT_FALSE(fs::exists(tmp_ / "run/checkpoints")) << "a failed start must not train";
  }
  Outcome train() { return run_cli("train --config " + config(), tmp_.path()); }

  dt::TempDir tmp_;
};

}  // namespace

TEST_F(CliErrors, ValidSetupTrains) {
  const Outcome o = train();
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("test accuracy"), std::string::npos) << o.out;
}

TEST_F(CliErrors, MissingConfigFile) {
  const Outcome o = run_cli("train --config " + (tmp_ / "nope.toml"), tmp_.path());
  expect_clean_failure(o, {"config file '", "nope.toml' not found"});
}

TEST_F(CliErrors, UnknownConfigKeyWithSuggestion) {
  write_config("[data]\ndir = \"" + data_dir() + "\"\n[optim]\nlrr = 0.1\n");
  expect_clean_failure(train(),
                       {"run.toml:", "unknown key 'optim.lrr'", "did you mean 'optim.lr'"});
}

TEST_F(CliErrors, WrongType) {
  write_config("[data]\ndir = \"" + data_dir() + "\"\nworkers = \"two\"\n");
  expect_clean_failure(train(), {"run.toml:", "data.workers", "expected an integer"});
}

TEST_F(CliErrors, BadOverride) {
  const Outcome o = run_cli("train --config " + config() + " --set train.epochs=zero", tmp_.path());
  expect_clean_failure(o, {"--set train.epochs=zero", "expected an integer"});
}

TEST_F(CliErrors, CudaWithoutAGpuIsASetupError) {
  if (im::cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  const Outcome o = run_cli("train --config " + config() + " --set train.device=cuda", tmp_.path());
  expect_clean_failure(o, {"train.device = \"cuda\"", "no GPU", "\"auto\""});
}

TEST_F(CliErrors, AutoWithoutAGpuSaysSoOnceAndTrainsOnTheCpu) {
  if (im::cuda_device_count() > 0) GTEST_SKIP() << "this machine has a GPU";
  const Outcome o = run_cli("train --config " + config() + " --set train.device=auto", tmp_.path());
  EXPECT_EQ(o.exit_code, 0) << o.err;
  const std::string all = o.out + o.err;
  const std::string note = "train.device = auto: ";
  ASSERT_NE(all.find(note), std::string::npos) << all;
  EXPECT_EQ(all.find(note), all.rfind(note)) << "said more than once:\n" << all;
  EXPECT_NE(all.find("training on the CPU"), std::string::npos) << all;
  EXPECT_NE(o.out.find("test accuracy"), std::string::npos) << o.out;
}

TEST_F(CliErrors, Bf16OnTheCpuIsASetupError) {
  // bf16 computes on a GPU only: explicitly on the CPU, or `auto` on a GPU-less machine.
  const Outcome cpu =
      run_cli("train --config " + config() + " --set train.device=cpu --set train.precision=bf16",
              tmp_.path());
  expect_clean_failure(cpu, {"train.precision = \"bf16\"", "on the CPU", "\"fp32\""});
  if (im::cuda_device_count() > 0) return;
  const Outcome automatic =
      run_cli("train --config " + config() + " --set train.device=auto --set train.precision=bf16",
              tmp_.path());
  expect_clean_failure(automatic, {"train.precision = \"bf16\"", "on the CPU", "\"fp32\""});
}

TEST_F(CliErrors, MissingShard) {
  fs::remove(shard(1));
  expect_clean_failure(train(), {"shard " + shard(1), "missing"});
}

TEST_F(CliErrors, CorruptShard) {
  std::vector<uint8_t> bytes = dt::read_bytes(shard(0));
  bytes[bytes.size() / 2] ^= 0xFF;
  dt::write_bytes(shard(0), bytes);
  expect_clean_failure(train(), {"shard " + shard(0), "checksum"});
}

TEST_F(CliErrors, TruncatedShard) {
  std::vector<uint8_t> bytes = dt::read_bytes(shard(1));
  bytes.resize(bytes.size() / 3);
  dt::write_bytes(shard(1), bytes);
  expect_clean_failure(train(), {"shard " + shard(1)});
}

TEST_F(CliErrors, LabelOutOfRange) {
  // A well-formed shard, correctly listed in the manifest, holding label 12 of 10 classes.
  std::vector<uint8_t> px = dt::synthetic_images(5, 28, 28, 0);
  std::vector<int32_t> labels{1, 2, 3, 12, 4};
  const auto info = im::data::write_image_shard(
      shard(1), im::data::ShardHeader{"train", {1, 28, 28}, 10}, px.data(), labels.data(), 5);
  auto m = im::data::read_manifest(data_dir());
  for (auto& s : *m.mutable_shards())
    if (s.file() == info.file()) s = info;
  im::data::write_manifest(data_dir(), m);
  expect_clean_failure(train(), {"shard " + shard(1), "label 12", "outside [0, 10)"});
}

// A learning rate that blows the parameters up: the step whose loss is not finite updates
// nothing (decided on the device on a GPU), and the run ends with exit 1 and one line.
TEST_F(CliErrors, DivergenceEndsTheRunWithOneLine) {
  const Outcome o = run_cli(
      "train --config " + config() + " --set optim.lr=1e30 --set train.max_steps=4", tmp_.path());
  EXPECT_EQ(o.exit_code, 1) << o.err;
  ASSERT_FALSE(o.err.empty());
  EXPECT_EQ(o.err.find('\n'), o.err.size() - 1) << "more than one line:\n" << o.err;
  EXPECT_NE(o.err.find("training diverged: the loss is nan at step 2; nothing was updated"),
            std::string::npos)
      << o.err;
}

TEST_F(CliErrors, MissingDatasetSaysHowToConvert) {
  write_config("[data]\ndir = \"" + (tmp_ / "absent") + "\"\n");
  expect_clean_failure(train(), {"absent", "no manifest.pb", "infomamba_dist data"});
}

TEST_F(CliErrors, EvalOfACorruptCheckpoint) {
  ASSERT_EQ(train().exit_code, 0);
  const fs::path ckpt = fs::path(tmp_.path()) / "run/checkpoints/step_00000002";
  ASSERT_TRUE(fs::exists(ckpt / "rank_00000.h5"));
  Outcome ok =
      run_cli("eval --config " + config() + " --checkpoint " + (tmp_ / "run"), tmp_.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("test top-1"), std::string::npos);
  std::vector<uint8_t> bytes = dt::read_bytes((ckpt / "rank_00000.h5").string());
  bytes.resize(bytes.size() - 100);
  dt::write_bytes((ckpt / "rank_00000.h5").string(), bytes);
  const Outcome bad =
      run_cli("eval --config " + config() + " --checkpoint " + ckpt.string(), tmp_.path());
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("rank_00000.h5"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("truncated"), std::string::npos) << bad.err;
}

// --resume PATH names a checkpoint to continue: one that is missing or fails its checksum
// is an error (exit 2, one line naming the file), never silently a fresh start.
TEST_F(CliErrors, ResumeFromAMissingOrCorruptCheckpoint) {
  const Outcome missing =
      run_cli("train --config " + config() + " --resume " + (tmp_ / "nowhere"), tmp_.path());
  expect_clean_failure(missing, {"checkpoint", tmp_ / "nowhere", "does not exist"});
  const Outcome no_value = run_cli("train --config " + config() + " --resume", tmp_.path());
  expect_clean_failure(no_value, {"--resume needs a value"});

  ASSERT_EQ(train().exit_code, 0);
  const fs::path ckpt = fs::path(tmp_.path()) / "run/checkpoints/step_00000002";
  std::vector<uint8_t> bytes = dt::read_bytes((ckpt / "rank_00000.h5").string());
  bytes[bytes.size() / 2] ^= 0x20;
  dt::write_bytes((ckpt / "rank_00000.h5").string(), bytes);
  const Outcome corrupt =
      run_cli("train --config " + config() + " --resume " + ckpt.string(), tmp_.path());
  im::launch::testing::expect_one_error_line(
      corrupt, {(ckpt / "rank_00000.h5").string(), "fails its checksum"});
}

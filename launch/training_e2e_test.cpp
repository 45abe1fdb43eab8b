// End to end on real data: every shipped ablation, and each loss term on and off, trains
// a few steps on a small fixed subset of Fashion-MNIST and its loss falls.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <numeric>

#include "data/convert_fashion_mnist.h"
#include "launch/config.h"
#include "launch/trainer.h"

namespace fs = std::filesystem;
using im::launch::RunConfig;

namespace {

const char* kSource = "/usr/share/datasets/fashion-mnist";

class FashionMnistE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kSource)) return;
    char tmpl[] = "/tmp/im_e2e_XXXXXX";
    root_ = mkdtemp(tmpl);
    im::data::convert_idx_dataset(kSource, root_ + "/fm", 2, "fashion-mnist");
  }
  static void TearDownTestSuite() {
    if (!root_.empty()) fs::remove_all(root_);
  }
  void SetUp() override {
    if (root_.empty()) GTEST_SKIP() << kSource << " not installed (Debian dataset-fashion-mnist)";
  }

  // A config from configs/, shrunk to a fixed 256-sample subset and 4 epochs of batch 32.
  RunConfig small_run(const std::string& config, const std::string& name) {
    RunConfig cfg = im::launch::load_run_config(
        (fs::path(IM_SOURCE_DIR) / "configs" / config).string(),
        {"data.dir=" + root_ + "/fm", "run.dir=" + root_ + "/runs/" + name,
         "data.train_subset=256", "data.test_subset=64", "data.augment_crop_pad=0",
         "data.augment_flip=false", "data.workers=1", "train.batch_size=32", "train.epochs=4",
         "train.warmup_epochs=0.0", "train.log_every=1000", "optim.lr=3e-3"});
    return cfg;
  }

  // Mean loss of the first and last four steps.
  static void expect_loss_falls(const std::vector<double>& losses, const std::string& what) {
    ASSERT_GE(losses.size(), 8u) << what;
    const double first = std::accumulate(losses.begin(), losses.begin() + 4, 0.0) / 4;
    const double last = std::accumulate(losses.end() - 4, losses.end(), 0.0) / 4;
    EXPECT_LT(last, 0.85 * first) << what << ": loss went from " << first << " to " << last;
  }

  static std::string root_;
};
std::string FashionMnistE2E::root_;

}  // namespace

TEST_F(FashionMnistE2E, EveryAblationTrains) {
  std::vector<std::string> configs = {"fmnist_nano_full.toml"};
  for (const auto& e : fs::directory_iterator(fs::path(IM_SOURCE_DIR) / "configs" / "ablations"))
    configs.push_back("ablations/" + e.path().filename().string());
  std::sort(configs.begin(), configs.end());
  EXPECT_GE(configs.size(), 11u);
  for (const std::string& c : configs) {
    SCOPED_TRACE(c);
    RunConfig cfg = small_run(c, fs::path(c).stem().string());
    im::launch::Trainer trainer(cfg);
    const im::launch::EvalResult r = trainer.run();
    expect_loss_falls(trainer.loss_history(), c);
    EXPECT_EQ(r.samples, 64);
    EXPECT_TRUE(fs::exists(fs::path(cfg.run_dir) / "checkpoints" / "latest"));
    EXPECT_TRUE(fs::exists(fs::path(cfg.run_dir) / "metrics.jsonl"));
    EXPECT_TRUE(fs::exists(fs::path(cfg.run_dir) / "config.toml"));
  }
}

TEST_F(FashionMnistE2E, EachLossTermOnAndOff) {
  struct Variant {
    const char* name;
    double nce, red, hash;
  };
  for (const Variant& v : {Variant{"ce_only", 0, 0, 0}, Variant{"nce_only", 0.1, 0, 0},
                           Variant{"red_only", 0, 0.01, 0}, Variant{"hash_only", 0, 0, 0.01},
                           Variant{"all_terms", 0.1, 0.01, 0.01}}) {
    SCOPED_TRACE(v.name);
    RunConfig cfg = small_run("fmnist_nano.toml", v.name);
    cfg.loss.lambda_nce = v.nce;
    cfg.loss.lambda_red = v.red;
    cfg.loss.lambda_hash = v.hash;
    im::launch::Trainer trainer(cfg);
    const im::launch::EvalResult r = trainer.run();
    expect_loss_falls(trainer.loss_history(), v.name);
    // Terms switched off report zero; terms switched on report a value.
    EXPECT_EQ(r.nce == 0.0, v.nce == 0.0) << r.nce;
    EXPECT_EQ(r.red == 0.0, v.red == 0.0) << r.red;
    EXPECT_EQ(r.hash == 0.0, v.hash == 0.0) << r.hash;
  }
}

// Every config shipped in configs/ loads, passes the schema and builds a model.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/rng.h"
#include "launch/config.h"
#include "layers/infomamba.h"

namespace fs = std::filesystem;

TEST(ShippedConfigs, EveryConfigLoadsAndBuildsItsModel) {
  int count = 0;
  for (const auto& entry : fs::recursive_directory_iterator(fs::path(IM_SOURCE_DIR) / "configs")) {
    if (entry.path().extension() != ".toml") continue;
    ++count;
    SCOPED_TRACE(entry.path().string());
    im::launch::RunConfig cfg;
    ASSERT_NO_THROW(cfg = im::launch::load_run_config(entry.path().string(), {}));
    if (cfg.model.d_model > 128) continue;  // large presets: schema only, building is slow
    im::Generator gen(0);
    EXPECT_NO_THROW(im::layers::InfoMamba(cfg.model, gen));
  }
  EXPECT_GE(count, 15);
}

TEST(ShippedConfigs, AblationsDifferFromTheBaseInTheirSwitchOnly) {
  const fs::path dir = fs::path(IM_SOURCE_DIR) / "configs";
  const auto base = im::launch::load_run_config((dir / "fmnist_nano_full.toml").string(), {});
  const auto no_inject =
      im::launch::load_run_config((dir / "ablations" / "no_inject.toml").string(), {});
  EXPECT_FALSE(no_inject.model.imf.inject);
  EXPECT_EQ(no_inject.train.epochs, base.train.epochs);
  EXPECT_EQ(no_inject.optim.lr, base.optim.lr);
  const auto no_mi = im::launch::load_run_config((dir / "ablations" / "no_mi_loss.toml").string(), {});
  EXPECT_EQ(no_mi.loss.lambda_nce, 0.0);
  EXPECT_EQ(no_mi.loss.lambda_red, 0.0);
  EXPECT_EQ(no_mi.loss.lambda_hash, base.loss.lambda_hash);
}

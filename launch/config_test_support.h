// Shared by the config tests: a scratch directory per test, and a field-by-field comparison of
// RunConfigs written out by hand, so it does not trust the schema it is used to check.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "launch/config.h"

namespace im::launch::testing {

class ConfigDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/im_config_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `text` to dir/name and returns the path.
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // The ConfigError message of loading `text` as x.toml, or "(no error)".
  std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
    const std::string path = write("x.toml", text);
    try {
      load_run_config(path, overrides);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "(no error)";
  }

  std::string x() const { return dir_ + "/x.toml"; }  // the path error_of writes

  std::string dir_;
};

// Every field of every config struct, by name (source_file and overrides excepted: they say
// where a config came from, not what it is).
inline void expect_same_settings(const RunConfig& a, const RunConfig& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.run_dir, b.run_dir);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.data.dir, b.data.dir);
  EXPECT_EQ(a.data.train_split, b.data.train_split);
  EXPECT_EQ(a.data.test_split, b.data.test_split);
  EXPECT_EQ(a.data.normalize, b.data.normalize);
  EXPECT_EQ(a.data.augment_crop_pad, b.data.augment_crop_pad);
  EXPECT_EQ(a.data.augment_flip, b.data.augment_flip);
  EXPECT_EQ(a.data.workers, b.data.workers);
  EXPECT_EQ(a.data.prefetch, b.data.prefetch);
  EXPECT_EQ(a.data.train_subset, b.data.train_subset);
  EXPECT_EQ(a.data.test_subset, b.data.test_subset);
  const layers::ModelConfig &m = a.model, &n = b.model;
  EXPECT_EQ(m.preset, n.preset);
  EXPECT_EQ(m.modality, n.modality);
  EXPECT_EQ(m.channels, n.channels);
  EXPECT_EQ(m.image_size, n.image_size);
  EXPECT_EQ(m.patch, n.patch);
  EXPECT_EQ(m.vocab_size, n.vocab_size);
  EXPECT_EQ(m.max_len, n.max_len);
  EXPECT_EQ(m.pad_id, n.pad_id);
  EXPECT_EQ(m.num_classes, n.num_classes);
  EXPECT_EQ(m.d_model, n.d_model);
  EXPECT_EQ(m.depth, n.depth);
  EXPECT_EQ(m.expand, n.expand);
  EXPECT_EQ(m.d_state, n.d_state);
  EXPECT_EQ(m.conv_kernel, n.conv_kernel);
  EXPECT_EQ(m.num_concepts, n.num_concepts);
  EXPECT_EQ(m.num_buckets, n.num_buckets);
  EXPECT_EQ(m.top_r, n.top_r);
  EXPECT_EQ(m.k_min, n.k_min);
  EXPECT_EQ(m.k_max, n.k_max);
  EXPECT_EQ(m.tau, n.tau);
  EXPECT_EQ(m.d_proj, n.d_proj);
  EXPECT_EQ(m.bidirectional, n.bidirectional);
  EXPECT_EQ(m.drop_path, n.drop_path);
  EXPECT_EQ(m.filter.static_assign, n.filter.static_assign);
  EXPECT_EQ(m.filter.no_mix, n.filter.no_mix);
  EXPECT_EQ(m.filter.hash, n.filter.hash);
  EXPECT_EQ(m.filter.budget, n.filter.budget);
  EXPECT_EQ(m.imf.inject, n.imf.inject);
  EXPECT_EQ(m.imf.ssm_path, n.imf.ssm_path);
  EXPECT_EQ(m.imf.filter_path, n.imf.filter_path);
  EXPECT_EQ(a.loss.label_smoothing, b.loss.label_smoothing);
  EXPECT_EQ(a.loss.lambda_nce, b.loss.lambda_nce);
  EXPECT_EQ(a.loss.lambda_red, b.loss.lambda_red);
  EXPECT_EQ(a.loss.lambda_hash, b.loss.lambda_hash);
  EXPECT_EQ(a.loss.tau_nce, b.loss.tau_nce);
  EXPECT_EQ(a.optim.lr, b.optim.lr);
  EXPECT_EQ(a.optim.beta1, b.optim.beta1);
  EXPECT_EQ(a.optim.beta2, b.optim.beta2);
  EXPECT_EQ(a.optim.eps, b.optim.eps);
  EXPECT_EQ(a.optim.weight_decay, b.optim.weight_decay);
  EXPECT_EQ(a.optim.grad_clip, b.optim.grad_clip);
  EXPECT_EQ(a.train.epochs, b.train.epochs);
  EXPECT_EQ(a.train.max_steps, b.train.max_steps);
  EXPECT_EQ(a.train.batch_size, b.train.batch_size);
  EXPECT_EQ(a.train.warmup_epochs, b.train.warmup_epochs);
  EXPECT_EQ(a.train.schedule, b.train.schedule);
  EXPECT_EQ(a.train.min_lr, b.train.min_lr);
  EXPECT_EQ(a.train.eval_every, b.train.eval_every);
  EXPECT_EQ(a.train.log_every, b.train.log_every);
  EXPECT_EQ(a.train.precision, b.train.precision);
  EXPECT_EQ(a.train.device, b.train.device);
  EXPECT_EQ(a.train.tf32, b.train.tf32);
  EXPECT_EQ(a.train.cuda_graph, b.train.cuda_graph);
}

}  // namespace im::launch::testing

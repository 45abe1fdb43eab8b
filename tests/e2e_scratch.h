// Shared by the tests that run the real binary on several ranks (launch/*_mpi_e2e_test.cpp,
// slurm/): a scratch directory with a small synthetic dataset, the mpirun command line, the
// training flags of a small model, and what a finished run left behind (its losses, its
// checkpoints' parameters). The test binary defines IM_BINARY, IM_SOURCE_DIR, IM_MPIEXEC.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "data/test_util.h"
#include "dist/checkpoint.h"
#include "tests/process_util.h"

namespace im::testing {

// Daemons, namespaces and jobs need root; a test that cannot have it says so and skips.
inline bool running_as_root() {
  return geteuid() == 0;
}

// `mpirun ... ` (with a trailing space) for `ranks` ranks on this machine, one OpenMP thread
// each; `env` (NAME=value) is exported to the ranks too. Empty for ranks = 0: no mpirun.
inline std::string mpirun_prefix(int ranks, const std::string& env = "") {
  if (ranks <= 0) return "";
  return std::string(IM_MPIEXEC) + " --oversubscribe --allow-run-as-root -np " +
         std::to_string(ranks) + " -x OMP_NUM_THREADS=1" + (env.empty() ? "" : " -x " + env) + " ";
}

class E2eScratch {
 public:
  // A fresh directory under /tmp with 640 training and 64 test samples in 4 shards.
  explicit E2eScratch(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
    std::filesystem::create_directories(root_ + "/idx");
    data::testing::write_synthetic_idx_set(root_ + "/idx", 640, 64, 28, 28, true);
    const ShellResult r = run_shell(std::string(IM_BINARY) + " data mnist --src " + root_ +
                                        "/idx --out " + data_dir() + " --shards 4",
                                    root_ + "/data_cmd");
    if (r.exit_code != 0) throw std::runtime_error("making the test data failed: " + r.err);
  }
  ~E2eScratch() { std::filesystem::remove_all(root_); }
  E2eScratch(const E2eScratch&) = delete;
  E2eScratch& operator=(const E2eScratch&) = delete;

  const std::string& root() const { return root_; }
  std::string data_dir() const { return root_ + "/data"; }
  std::string run_dir(const std::string& name) const { return root_ + "/runs/" + name; }

  // `train` flags (without the command word) for a small model on the synthetic data: the
  // global batch is 32, so any world size up to 32 trains the same steps.
  std::string train_flags(const std::string& name, int64_t max_steps,
                          const std::string& extra = "") const {
    return "--config " + std::string(IM_SOURCE_DIR) + "/configs/fmnist_nano.toml" +
           " --set data.dir=" + data_dir() + " --set run.dir=" + run_dir(name) +
           " --set model.d_model=32 --set model.depth=2 --set model.num_concepts=16"
           " --set model.d_proj=32 --set data.workers=1 --set train.batch_size=32"
           " --set train.log_every=1 --set train.warmup_epochs=0.0 --set train.epochs=10"
           " --set train.max_steps=" +
           std::to_string(max_steps) + (extra.empty() ? "" : " " + extra);
  }

  // Training steps the run has logged so far (metrics.jsonl).
  std::map<int64_t, double> losses(const std::string& name) const {
    std::map<int64_t, double> out;
    std::ifstream in(run_dir(name) + "/metrics.jsonl");
    const std::regex re(R"re("type": "train", "step": (\d+), .*"loss": ([-0-9.eE+]+))re");
    for (std::string line; std::getline(in, line);) {
      std::smatch m;
      if (std::regex_search(line, m, re)) out[std::stoll(m[1])] = std::stod(m[2]);
    }
    return out;
  }

  std::string step_dir(const std::string& name, int64_t step) const {
    char buf[32];
    std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
    return run_dir(name) + "/checkpoints/" + buf;
  }

  // Parameters of a checkpoint, read and verified (sizes, CRCs, manifest).
  static std::vector<float> params(const std::string& checkpoint_dir) {
    return dist::read_checkpoint(checkpoint_dir, false).params.to_vector<float>();
  }

 private:
  std::string root_;
};

inline double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(a[i]) * a[i];
  }
  return std::sqrt(diff / norm);
}

}  // namespace im::testing

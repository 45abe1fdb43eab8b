// `infomamba_dist bench` through the real binary, on 1 and 2 ranks under mpirun (ctest labels
// mpi and e2e): the machine-readable result line is there once, complete and consistent with
// itself and with the FLOP count; real data works data-parallel; bad flags are one line, exit 2.
// No timing thresholds: the numbers depend on the machine.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "core/device.h"
#include "launch/cli_test_support.h"
#include "layers/flop_count.h"
#include "layers/infomamba.h"
#include "tests/e2e_scratch.h"

namespace fs = std::filesystem;
using im::launch::testing::Outcome;
using im::testing::slurp;

namespace {

class BenchMpi : public ::testing::Test {
 protected:
  // For --data real: 640 training samples in 4 shards.
  static void SetUpTestSuite() {
    scratch_ = std::make_unique<im::testing::E2eScratch>("im_bench_mpi");
    root_ = scratch_->root();
  }
  static void TearDownTestSuite() { scratch_.reset(); }

  // `infomamba_dist ARGS` on `ranks` ranks under mpirun (0: without mpirun).
  static Outcome run(const std::string& args, int ranks = 0) {
    static int counter = 0;
    const im::testing::ShellResult r =
        im::testing::run_shell(im::testing::mpirun_prefix(ranks) + IM_BINARY + " " + args,
                               root_ + "/out" + std::to_string(counter++));
    return Outcome{r.exit_code, r.out, r.err};
  }

  // A small model (the mpi training tests' sizes), global batch 16, 1 warm-up + 3 timed steps.
  static std::string bench_args(const std::string& extra = "") {
    return "bench --config " + std::string(IM_SOURCE_DIR) + "/configs/fmnist_nano.toml" +
           " --set model.d_model=32 --set model.depth=2 --set model.num_concepts=16"
           " --set model.d_proj=32 --set data.workers=1 --set train.batch_size=16"
           " --warmup 1 --steps 3 " +
           extra;
  }
  static im::layers::ModelConfig bench_model() {
    im::layers::ModelConfig m;  // nano on 28 x 28 x 1, as fmnist_nano.toml
    m.d_model = 32;
    m.depth = 2;
    m.num_concepts = 16;
    m.d_proj = 32;
    return m;
  }

  // The JSON of the one `bench-result: ` line (which must be the last line of stdout).
  static std::string result_json(const std::string& out) {
    const std::string tag = "bench-result: ";
    const size_t at = out.find(tag);
    EXPECT_NE(at, std::string::npos) << out;
    if (at == std::string::npos) return "";
    EXPECT_EQ(out.find(tag, at + 1), std::string::npos) << "more than one result line:\n" << out;
    EXPECT_TRUE(at == 0 || out[at - 1] == '\n') << out;
    const size_t end = out.find('\n', at);
    EXPECT_EQ(end, out.size() - 1) << "the result line is not the last line:\n" << out;
    return out.substr(at + tag.size(), end - at - tag.size());
  }

  // A flat JSON object's values as written: numbers, "strings" (quoted) and null.
  static std::map<std::string, std::string> parse_flat(const std::string& json) {
    std::map<std::string, std::string> m;
    const std::regex field(R"re("([a-z_]+)": ("[^"]*"|null|-?[0-9][-0-9.eE+]*))re");
    for (std::sregex_iterator it(json.begin(), json.end(), field), end; it != end; ++it)
      m[(*it)[1]] = (*it)[2];
    return m;
  }

  static double number(const std::map<std::string, std::string>& r, const std::string& key) {
    const auto it = r.find(key);
    if (it == r.end() || it->second == "null" || it->second.front() == '"') {
      ADD_FAILURE() << "no number for '" << key << "'";
      return std::nan("");
    }
    return std::stod(it->second);
  }

  // Everything the result line promises, for a run of `ranks` ranks.
  static std::map<std::string, std::string> check_result(const Outcome& o, int ranks,
                                                         const std::string& data) {
    const auto r = parse_flat(result_json(o.out));
    EXPECT_EQ(number(r, "ranks"), ranks);
    EXPECT_EQ(number(r, "nodes"), 1);
    EXPECT_EQ(number(r, "global_batch"), 16);
    EXPECT_EQ(number(r, "steps"), 3);
    EXPECT_EQ(number(r, "warmup"), 1);
    EXPECT_EQ(r.count("device") ? r.at("device") : "", "\"cpu\"");
    EXPECT_EQ(r.count("data") ? r.at("data") : "", "\"" + data + "\"");
    for (const char* key :
         {"threads", "samples_per_s", "tokens_per_s", "step_ms_median", "forward_ms", "backward_ms",
          "optimizer_ms", "peak_host_mb", "flops_per_sample", "achieved_tflops", "parameters"})
      EXPECT_GT(number(r, key), 0) << key;
    for (const char* key : {"data_ms", "comm_ms"}) EXPECT_GE(number(r, key), 0) << key;
    // Throughput is the global batch over the median step; tokens are 49 patches a sample.
    const double samples = number(r, "samples_per_s");
    EXPECT_NEAR(samples, 16 / (number(r, "step_ms_median") / 1e3), 1e-6 * samples);
    EXPECT_NEAR(number(r, "tokens_per_s"), 49 * samples, 1e-6 * 49 * samples);
    EXPECT_EQ(number(r, "tokens_per_sample"), 49);
    // The analytic count of this model, training = 3 x forward.
    const auto forward = static_cast<double>(im::layers::forward_flops_per_sample(bench_model()));
    EXPECT_EQ(number(r, "forward_flops_per_sample"), forward);
    EXPECT_EQ(number(r, "flops_per_sample"), 3 * forward);
    EXPECT_NEAR(number(r, "achieved_tflops"), samples * 3 * forward / 1e12,
                1e-6 * samples * 3 * forward / 1e12);
    // The model's own parameter count (without the flat store's alignment padding).
    im::Generator gen(0);
    EXPECT_EQ(number(r, "parameters"), im::layers::InfoMamba(bench_model(), gen).num_parameters());
    // Only rank 0 prints: one report.
    EXPECT_EQ(o.out.find("comm wait"), o.out.rfind("comm wait")) << o.out;
    return r;
  }

  static std::unique_ptr<im::testing::E2eScratch> scratch_;
  static std::string root_;
};
std::unique_ptr<im::testing::E2eScratch> BenchMpi::scratch_;
std::string BenchMpi::root_;

TEST_F(BenchMpi, SyntheticOnOneRankGivesAConsistentResult) {
  const std::string json_path = root_ + "/one.json";
  const Outcome o = run(bench_args("--json " + json_path), 1);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const auto r = check_result(o, 1, "synthetic");
  EXPECT_EQ(r.at("mfu"), "null");
  EXPECT_NE(o.out.find("MFU: n/a (give --peak-tflops)"), std::string::npos) << o.out;
  // --json holds the same object as the result line.
  EXPECT_EQ(slurp(json_path), result_json(o.out) + "\n");
}

TEST_F(BenchMpi, SyntheticOnTwoRanksSplitsTheGlobalBatch) {
  const Outcome o = run(bench_args("--peak-tflops 0.5"), 2);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const auto r = check_result(o, 2, "synthetic");
  // MFU over the job's peak: 2 ranks x 0.5 TFLOP/s.
  EXPECT_NEAR(number(r, "mfu"), number(r, "achieved_tflops") / 1.0,
              1e-6 * number(r, "achieved_tflops"));
  EXPECT_NE(o.out.find("2 ranks on 1 node, 1 thread per rank"), std::string::npos) << o.out;
}

TEST_F(BenchMpi, RealDataOnTwoRanks) {
  const Outcome o = run(bench_args("--data real --set data.dir=" + root_ + "/data"), 2);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  check_result(o, 2, "real");
}

TEST_F(BenchMpi, InferenceModeTimesForwardPassesOnly) {
  const Outcome o = run(bench_args("--mode inference"), 1);
  ASSERT_EQ(o.exit_code, 0) << o.err;
  const auto r = parse_flat(result_json(o.out));
  EXPECT_EQ(r.count("mode") ? r.at("mode") : "", "\"inference\"");
  EXPECT_GT(number(r, "forward_ms"), 0);
  EXPECT_EQ(number(r, "backward_ms"), 0);
  EXPECT_EQ(number(r, "optimizer_ms"), 0);
  // One forward pass is what a sample costs.
  const auto forward = static_cast<double>(im::layers::forward_flops_per_sample(bench_model()));
  EXPECT_EQ(number(r, "flops_per_sample"), forward);
  const double samples = number(r, "samples_per_s");
  EXPECT_NEAR(number(r, "achieved_tflops"), samples * forward / 1e12,
              1e-6 * samples * forward / 1e12);
  EXPECT_NE(o.out.find("timed inference passes (forward only, no autograd)"), std::string::npos)
      << o.out;
}

TEST_F(BenchMpi, BadFlagsAreOneLineAndExit2) {
  const std::string dir = root_ + "/cli";
  fs::create_directories(dir);
  using im::launch::testing::expect_one_error_line;
  using im::launch::testing::run_cli;
  expect_one_error_line(run_cli(bench_args("--stepz 3"), dir), {"bench", "'--stepz'"});
  expect_one_error_line(run_cli(bench_args("--steps 0"), dir), {"--steps", "'0'"});
  expect_one_error_line(run_cli(bench_args("--warmup two"), dir), {"--warmup", "'two'"});
  expect_one_error_line(run_cli(bench_args("--data fake"), dir), {"--data", "'fake'"});
  expect_one_error_line(run_cli(bench_args("--mode fast"), dir), {"--mode", "'fast'"});
  expect_one_error_line(run_cli(bench_args("--kernel-profile 0"), dir),
                        {"--kernel-profile", "'0'"});
  // The kernel table times GPU kernels: a CPU run (or a CPU-only build) refuses it.
  expect_one_error_line(run_cli(bench_args("--kernel-profile 10 --set train.device=cpu"), dir),
                        {"--kernel-profile"});
  if (im::cuda_device_count() == 0)  // on a GPU host this would simply run on the GPU
    expect_one_error_line(run_cli(bench_args("--set train.device=cuda"), dir),
                          {"train.device = \"cuda\"", "no GPU"});
  expect_one_error_line(run_cli(bench_args("--peak-tflops -1"), dir), {"--peak-tflops"});
  expect_one_error_line(run_cli(bench_args("--json " + root_ + "/no/such/dir/x.json"), dir),
                        {"--json", root_ + "/no/such/dir"});
  expect_one_error_line(run_cli(bench_args("--set model.depth=0"), dir), {"model.depth"});
  expect_one_error_line(run_cli("bench --steps 3", dir), {"--config"});

  // Under mpirun every rank sees the bad flag; one of them reports it, every rank exits 2.
  const Outcome o = run(bench_args("--stepz 3"), 2);
  EXPECT_EQ(o.exit_code, 2);
  size_t lines = 0;
  for (size_t p = o.err.find("error:"); p != std::string::npos; p = o.err.find("error:", p + 1))
    ++lines;
  EXPECT_EQ(lines, 1u) << o.err;
  EXPECT_NE(o.err.find("unknown argument '--stepz'"), std::string::npos) << o.err;
  EXPECT_EQ(o.out.find("bench-result"), std::string::npos) << o.out;
}

}  // namespace

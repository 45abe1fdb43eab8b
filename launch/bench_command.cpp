// `infomamba_dist bench --config FILE [--set key=value ...] [--warmup N] [--steps N]
//  [--data synthetic|real] [--mode train|inference] [--json PATH] [--peak-tflops X]
//  [--kernel-profile ROWS]`
//  (docs/PERFORMANCE.md).
//
// Under mpirun the ranks train data-parallel exactly as `train` does, and fail as it does:
// setup problems are agreed through one all-reduce and reported once (exit 2); a rank that
// fails once stepping has begun aborts every rank. Rank 0 prints.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "dist/world.h"
#include "dist/world_communicator.h"
#include "launch/bench.h"
#include "launch/bench_report.h"
#include "launch/cli_flags.h"
#include "launch/command_guard.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/setup_agreement.h"

namespace im::launch {

namespace {

struct BenchArgs {
  std::string config;
  std::vector<std::string> overrides;
  BenchOptions options;
  std::string json;        // where rank 0 also writes the result object; "" = nowhere
  double peak_tflops = 0;  // one rank's peak; 0 = not given
};

// The whole of `text` as an integer of at least `min`, or a SetupError naming `flag`.
int64_t parse_count(const std::string& flag, const std::string& text, int64_t min) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < min)
    throw SetupError(flag + " expects an integer of at least " + std::to_string(min) + ", got '" +
                     text + "'");
  return v;
}

double parse_positive(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !(v > 0))
    throw SetupError(flag + " expects a positive number, got '" + text + "'");
  return v;
}

// Throws SetupError naming the bad argument.
BenchArgs parse_args(int argc, char** argv) {
  BenchArgs a;
  parse_flags(
      argc, argv,
      {
          {"--config", [&](const std::string& v) { a.config = v; }},
          {"--set", [&](const std::string& v) { a.overrides.push_back(v); }},
          {"--warmup",
           [&](const std::string& v) { a.options.warmup = parse_count("--warmup", v, 0); }},
          {"--steps",
           [&](const std::string& v) { a.options.steps = parse_count("--steps", v, 1); }},
          {"--data",
           [&](const std::string& v) {
             if (v != "synthetic" && v != "real")
               throw SetupError("--data expects 'synthetic' or 'real', got '" + v + "'");
             a.options.real_data = v == "real";
           }},
          {"--mode",
           [&](const std::string& v) {
             if (v != "train" && v != "inference")
               throw SetupError("--mode expects 'train' or 'inference', got '" + v + "'");
             a.options.inference = v == "inference";
           }},
          {"--kernel-profile",
           [&](const std::string& v) {
#if IM_WITH_CUDA
             a.options.kernel_profile_rows = parse_count("--kernel-profile", v, 1);
#else
             (void)v;
             throw SetupError("--kernel-profile needs a CUDA build (this one is CPU-only)");
#endif
           }},
          {"--json", [&](const std::string& v) { a.json = v; }},
          {"--peak-tflops",
           [&](const std::string& v) { a.peak_tflops = parse_positive("--peak-tflops", v); }},
      });
  if (a.config.empty()) throw SetupError("--config FILE is required");
  return a;
}

// A --json path whose directory does not exist is bad input, found before any step runs.
void check_json_path(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::absolute(path).parent_path();
  if (!fs::is_directory(dir))
    throw SetupError("--json " + path + ": directory '" + dir.string() + "' does not exist");
  if (fs::is_directory(path)) throw SetupError("--json " + path + " is a directory");
}

void write_json(const std::string& path, const std::string& json) {
  std::ofstream out(path, std::ios::trunc);
  out << json << "\n";
  out.close();
  IM_CHECK(out.good(), "cannot write --json file '", path, "'");
}

}  // namespace

int run_bench(int argc, char** argv) {
  dist::World& world = dist::World::init(nullptr, nullptr);
  // As in train: a hung or cut-off rank ends the run after dist.timeout_s.
  const dist::WatchedWorld watched = dist::watched_world_communicator(world);
  const std::unique_ptr<dist::Communicator>& comm = watched.comm;
  const int rank = world.rank();

  // Setup: local work only, so that every rank reaches the agreement below.
  BenchArgs args;
  std::unique_ptr<Bench> bench;
  const SetupStatus setup = try_setup([&] {
    args = parse_args(argc, argv);
    if (rank == 0 && !args.json.empty()) check_json_path(args.json);
    bench = std::make_unique<Bench>(load_run_config(args.config, args.overrides), args.options,
                                    comm.get());
  });
  if (const int code = agree_on_setup(*comm, "bench", setup)) return code;

  watched.watchdog->set_timeout(bench->config().dist.timeout_s);
  BenchSetup b;
  b.name = bench->config().name;
  b.data = args.options.real_data ? "real" : "synthetic";
  b.inference = args.options.inference;
  b.device = device_description(bench->device());
  b.ranks = world.size();
  b.nodes = world.num_nodes();
  b.threads = omp_get_max_threads();
  b.global_batch = bench->config().train.batch_size;
  b.warmup = args.options.warmup;
  b.steps = args.options.steps;
  b.parameters = bench->num_parameters();
  b.model = bench->config().model;
  b.peak_tflops = args.peak_tflops;
  if (rank == 0) {
    std::printf("bench %s: running %lld warm-up + %lld timed steps | %s\n", b.name.c_str(),
                static_cast<long long>(b.warmup), static_cast<long long>(b.steps),
                world.node_map().c_str());
    std::fflush(stdout);
  }
  return guarded_collective("bench", world, [&] {
    const BenchMeasurement m = bench->run();
    if (rank == 0) {
      const BenchSummary s = summarise(b, m);
      const std::string json = bench_result_json(s);
      std::printf("%s%sbench-result: %s\n", bench->kernel_profile().c_str(),
                  format_bench_report(s).c_str(), json.c_str());
      std::fflush(stdout);
      if (!args.json.empty()) write_json(args.json, json);
    }
    return 0;
  });
}

}  // namespace im::launch

// What `bench` reports (docs/PERFORMANCE.md): the timings agreed over the ranks turned into
// throughput, the median step and its phases, FLOP rates and MFU; printed as a block for
// people and as one `bench-result: {...}` line for scripts. No MPI here: pure arithmetic
// and formatting, so it is unit-tested on made-up timings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "launch/train_step.h"
#include "layers/model_config.h"

namespace im::launch {

// One timed step, in seconds: this rank's, or after the agreement over the ranks, each field
// the largest any rank took at that step (a synchronous step goes at its slowest rank's pace).
struct StepTiming {
  double data = 0;  // waiting for the batch
  StepPhases phases;
  double total = 0;  // the whole step: data wait and the training step
};

struct BenchMeasurement {
  std::vector<StepTiming> steps;  // the timed steps, in order
  double peak_host_mb = 0;        // peak resident set (getrusage), the largest over the ranks
  double peak_device_mb = 0;      // peak GPU memory in tensors (caching allocator); 0 on CPU
  bool cuda_graph = false;        // the timed training steps replayed one CUDA graph
};

// What the report says about the run besides its timings.
struct BenchSetup {
  std::string name;                       // run.name
  std::string device = "cpu";             // cpu, or cuda:N with the GPU's name
  bool inference = false;                 // forward passes only (--mode inference)
  std::string data = "synthetic";         // synthetic | real
  int ranks = 1, nodes = 1, threads = 1;  // threads: OpenMP threads per rank
  int64_t global_batch = 0, warmup = 0, steps = 0, parameters = 0;
  layers::ModelConfig model;  // as trained (fitted to the dataset with real data)
  double peak_tflops = 0;     // peak of one rank's device; 0 = not given
};

struct BenchSummary {
  BenchSetup setup;
  int64_t tokens_per_sample = 0;
  double step_ms = 0;  // median over the timed steps
  double data_ms = 0, forward_ms = 0, backward_ms = 0, comm_ms = 0, optimizer_ms = 0;  // medians
  double host_queue_ms = 0;  // GPU training: the host's time to queue a step (median); 0 else
  double samples_per_s = 0, tokens_per_s = 0;
  double peak_host_mb = 0;
  double peak_device_mb = 0;
  bool cuda_graph = false;
  // flops_per_sample: what one timed sample costs (training: 3 x forward; inference: forward)
  int64_t forward_flops_per_sample = 0, flops_per_sample = 0;
  double achieved_tflops = 0;
  double mfu = 0;  // NaN when no peak was given
};

// Middle value (mean of the two middle ones for an even count); 0 for none.
double median(std::vector<double> values);

// Throws im::Error when there are no timed steps.
BenchSummary summarise(const BenchSetup& setup, const BenchMeasurement& measurement);

// The human-readable block, several lines, each ending in a newline.
std::string format_bench_report(const BenchSummary& s);

// One JSON object on one line (no newline): the keys of docs/PERFORMANCE.md, mfu and
// peak_tflops null when unknown.
std::string bench_result_json(const BenchSummary& s);

}  // namespace im::launch

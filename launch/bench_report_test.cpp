// bench's report on made-up timings: medians, throughput from the median step, FLOP rates,
// MFU only with a peak, and the machine-readable line (one line, stable keys, null MFU).
#include "launch/bench_report.h"

#include <gtest/gtest.h>

#include <cmath>

#include "layers/flop_count.h"

using namespace im::launch;

namespace {
StepTiming step(double data, double fwd, double bwd, double comm, double opt) {
  StepTiming t;
  t.data = data;
  t.phases = {fwd, bwd, comm, opt};
  t.total = data + fwd + bwd + comm + opt;
  return t;
}

BenchSetup setup() {
  BenchSetup b;
  b.name = "unit";
  b.ranks = 4;
  b.nodes = 2;
  b.threads = 3;
  b.global_batch = 64;
  b.warmup = 1;
  b.steps = 3;
  b.parameters = 1234;
  return b;  // the default model: nano, 28x28 images, patch 4 -> 49 tokens
}
}  // namespace

TEST(BenchReport, MedianOfOddAndEvenCounts) {
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(median({7}), 7);
  EXPECT_EQ(median({}), 0);
}

TEST(BenchReport, ThroughputAndFlopsFollowFromTheMedianStep) {
  BenchMeasurement m;
  // Step totals 0.20, 0.10 and 0.40 s: the median is 0.20 s, so 64 / 0.2 = 320 samples/s.
  m.steps = {step(0.01, 0.05, 0.12, 0.01, 0.01), step(0.0, 0.03, 0.06, 0.0, 0.01),
             step(0.02, 0.10, 0.25, 0.02, 0.01)};
  m.peak_host_mb = 321.5;
  const BenchSummary s = summarise(setup(), m);
  EXPECT_NEAR(s.step_ms, 200, 1e-9);
  EXPECT_NEAR(s.forward_ms, 50, 1e-9);
  EXPECT_NEAR(s.backward_ms, 120, 1e-9);
  EXPECT_NEAR(s.data_ms, 10, 1e-9);
  EXPECT_NEAR(s.comm_ms, 10, 1e-9);
  EXPECT_NEAR(s.optimizer_ms, 10, 1e-9);
  EXPECT_NEAR(s.samples_per_s, 320, 1e-9);
  EXPECT_EQ(s.tokens_per_sample, 49);
  EXPECT_NEAR(s.tokens_per_s, 320 * 49, 1e-6);
  const int64_t fwd = im::layers::forward_flops_per_sample(setup().model);
  EXPECT_GT(fwd, 0);
  EXPECT_EQ(s.forward_flops_per_sample, fwd);
  EXPECT_EQ(s.flops_per_sample, 3 * fwd);
  EXPECT_NEAR(s.achieved_tflops, 320.0 * 3 * fwd / 1e12, 1e-15);
  EXPECT_TRUE(std::isnan(s.mfu));
  EXPECT_EQ(s.peak_host_mb, 321.5);

  BenchSetup with_peak = setup();
  with_peak.peak_tflops = 0.5;  // per rank; 4 ranks
  EXPECT_NEAR(summarise(with_peak, m).mfu, s.achieved_tflops / 2.0, 1e-15);
}

TEST(BenchReport, NoTimedStepsIsAnError) {
  EXPECT_THROW(summarise(setup(), BenchMeasurement{}), im::Error);
}

TEST(BenchReport, ResultIsOneLineOfJsonWithStableKeys) {
  BenchMeasurement m;
  m.steps = {step(0, 0.1, 0.2, 0, 0.01)};
  const BenchSummary s = summarise(setup(), m);
  const std::string json = bench_result_json(s);
  EXPECT_EQ(json.find('\n'), std::string::npos);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
  for (const char* key :
       {"\"ranks\": 4", "\"nodes\": 2", "\"threads\": 3", "\"global_batch\": 64", "\"steps\": 3",
        "\"samples_per_s\": ", "\"tokens_per_s\": ", "\"step_ms_median\": ", "\"data_ms\": ",
        "\"forward_ms\": ", "\"backward_ms\": ", "\"comm_ms\": ", "\"optimizer_ms\": ",
        "\"peak_host_mb\": ", "\"flops_per_sample\": ", "\"achieved_tflops\": ", "\"mfu\": null",
        "\"peak_tflops\": null", "\"device\": \"cpu\""})
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;

  BenchSetup with_peak = setup();
  with_peak.peak_tflops = 2;
  const std::string known = bench_result_json(summarise(with_peak, m));
  EXPECT_EQ(known.find("\"mfu\": null"), std::string::npos) << known;
  EXPECT_NE(known.find("\"peak_tflops\": 2"), std::string::npos) << known;
}

TEST(BenchReport, HumanBlockNamesEveryPhaseAndSaysWhenMfuIsUnknown) {
  BenchMeasurement m;
  m.steps = {step(0.001, 0.1, 0.2, 0.003, 0.01)};
  const std::string text = format_bench_report(summarise(setup(), m));
  for (const char* piece :
       {"4 ranks on 2 nodes, 3 threads per rank", "global batch 64", "samples/s", "tokens/s",
        "data wait", "forward", "backward", "comm wait", "optimiser", "peak host memory", "TFLOP/s",
        "MFU: n/a (give --peak-tflops)"})
    EXPECT_NE(text.find(piece), std::string::npos) << piece << " in\n" << text;
  BenchSetup with_peak = setup();
  with_peak.peak_tflops = 1;
  EXPECT_EQ(format_bench_report(summarise(with_peak, m)).find("n/a"), std::string::npos);
}

// A GPU run says how its steps were launched and how long the host took to queue one.
TEST(BenchReport, SaysWhenStepsReplayedACudaGraph) {
  BenchMeasurement m;
  for (double q : {0.4e-3, 0.5e-3, 0.6e-3}) {
    StepTiming t = step(0, 0.01, 0.02, 0, 0.001);
    t.phases.host_queue = q;
    m.steps.push_back(t);
  }
  m.cuda_graph = true;
  const BenchSummary s = summarise(setup(), m);
  EXPECT_NEAR(s.host_queue_ms, 0.5, 1e-9);
  const std::string text = format_bench_report(s);
  EXPECT_NE(text.find("one CUDA graph per step"), std::string::npos) << text;
  EXPECT_NE(text.find("host queue       0.50 ms"), std::string::npos) << text;
  const std::string json = bench_result_json(s);
  EXPECT_NE(json.find("\"launches\": \"cuda_graph\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"host_queue_ms\": 0.5"), std::string::npos) << json;
  m.cuda_graph = false;
  EXPECT_EQ(format_bench_report(summarise(setup(), m)).find("CUDA graph"), std::string::npos);
  EXPECT_NE(bench_result_json(summarise(setup(), m)).find("\"launches\": \"kernels\""),
            std::string::npos);
}

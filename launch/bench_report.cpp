#include "launch/bench_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"
#include "launch/metrics.h"
#include "layers/flop_count.h"

namespace im::launch {

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  const size_t n = values.size(), mid = n / 2;
  std::nth_element(values.begin(), values.begin() + mid, values.end());
  const double upper = values[mid];
  if (n % 2) return upper;
  return 0.5 * (upper + *std::max_element(values.begin(), values.begin() + mid));
}

BenchSummary summarise(const BenchSetup& setup, const BenchMeasurement& m) {
  IM_CHECK(!m.steps.empty(), "bench: no timed steps to summarise");
  BenchSummary s;
  s.setup = setup;
  auto median_ms = [&](auto field) {
    std::vector<double> v;
    for (const StepTiming& t : m.steps) v.push_back(1e3 * field(t));
    return median(std::move(v));
  };
  s.step_ms = median_ms([](const StepTiming& t) { return t.total; });
  s.data_ms = median_ms([](const StepTiming& t) { return t.data; });
  s.forward_ms = median_ms([](const StepTiming& t) { return t.phases.forward; });
  s.backward_ms = median_ms([](const StepTiming& t) { return t.phases.backward; });
  s.comm_ms = median_ms([](const StepTiming& t) { return t.phases.comm; });
  s.optimizer_ms = median_ms([](const StepTiming& t) { return t.phases.optimizer; });
  s.host_queue_ms = median_ms([](const StepTiming& t) { return t.phases.host_queue; });
  s.tokens_per_sample = layers::tokens_per_sample(setup.model);
  s.samples_per_s = setup.global_batch / (s.step_ms / 1e3);
  s.tokens_per_s = s.samples_per_s * static_cast<double>(s.tokens_per_sample);
  s.peak_host_mb = m.peak_host_mb;
  s.peak_device_mb = m.peak_device_mb;
  s.cuda_graph = m.cuda_graph;
  s.forward_flops_per_sample = layers::forward_flops_per_sample(setup.model);
  s.flops_per_sample =
      setup.inference ? s.forward_flops_per_sample : layers::training_flops_per_sample(setup.model);
  s.achieved_tflops = s.samples_per_s * static_cast<double>(s.flops_per_sample) / 1e12;
  // The peak is one rank's device; the job has `ranks` of them.
  s.mfu = setup.peak_tflops > 0 ? s.achieved_tflops / (setup.peak_tflops * setup.ranks)
                                : std::numeric_limits<double>::quiet_NaN();
  return s;
}

namespace {
std::string printf_string(const char* format, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

std::string plural(int64_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}
}  // namespace

std::string format_bench_report(const BenchSummary& s) {
  const BenchSetup& b = s.setup;
  std::string out = printf_string(
      "bench %s: %lld parameters | %s data | %s on %s, %s per rank | global batch %lld | %lld "
      "warm-up + %lld timed %s | %s\n",
      b.name.c_str(), static_cast<long long>(b.parameters), b.data.c_str(),
      plural(b.ranks, "rank").c_str(), plural(b.nodes, "node").c_str(),
      plural(b.threads, "thread").c_str(), static_cast<long long>(b.global_batch),
      static_cast<long long>(b.warmup), static_cast<long long>(b.steps),
      b.inference ? "inference passes (forward only, no autograd)" : "training steps",
      b.device.c_str());
  out +=
      printf_string("  throughput       %.1f samples/s | %.0f tokens/s (%lld tokens per sample)\n",
                    s.samples_per_s, s.tokens_per_s, static_cast<long long>(s.tokens_per_sample));
  out += printf_string(
      "  step time        %.2f ms median (each phase: the slowest rank at each step, median "
      "over steps)\n",
      s.step_ms);
  out += printf_string("    data wait      %8.2f ms\n", s.data_ms);
  out += printf_string("    forward        %8.2f ms\n", s.forward_ms);
  out += printf_string("    backward       %8.2f ms\n", s.backward_ms);
  out += printf_string("    comm wait      %8.2f ms\n", s.comm_ms);
  out += printf_string("    optimiser      %8.2f ms\n", s.optimizer_ms);
  if (s.host_queue_ms > 0)
    out += printf_string(
        "  host queue       %.2f ms to queue a step (GPU phases are GPU time; a queue time near "
        "the step time means the GPU waits for launches)\n",
        s.host_queue_ms);
  if (s.cuda_graph)
    out +=
        "  launches         one CUDA graph per step (train.cuda_graph; captured after 2 eager "
        "steps)\n";
  out += printf_string("  peak host memory %.1f MB (the largest rank)\n", s.peak_host_mb);
  if (s.peak_device_mb > 0)
    out += printf_string("  peak GPU memory  %.1f MB in tensors (the largest rank)\n",
                         s.peak_device_mb);
  if (b.inference)
    out += printf_string("  model FLOPs      %.4g MFLOP per sample forward\n",
                         s.forward_flops_per_sample / 1e6);
  else
    out += printf_string(
        "  model FLOPs      %.4g MFLOP per sample forward, %.4g MFLOP trained (3 x forward)\n",
        s.forward_flops_per_sample / 1e6, s.flops_per_sample / 1e6);
  out += printf_string("  achieved         %.4g TFLOP/s\n", s.achieved_tflops);
  if (std::isnan(s.mfu))
    out += "  MFU: n/a (give --peak-tflops)\n";
  else
    out += printf_string("  MFU              %.2f%% (of %d x %.4g TFLOP/s)\n", 100 * s.mfu, b.ranks,
                         b.peak_tflops);
  return out;
}

std::string bench_result_json(const BenchSummary& s) {
  const BenchSetup& b = s.setup;
  const double unknown = std::numeric_limits<double>::quiet_NaN();  // written as null
  MetricsRecord r("bench");
  r.add("name", b.name).add("device", b.device).add("data", b.data);
  r.add("ranks", int64_t{b.ranks}).add("nodes", int64_t{b.nodes});
  r.add("threads", int64_t{b.threads});
  r.add("global_batch", b.global_batch).add("warmup", b.warmup).add("steps", b.steps);
  r.add("parameters", b.parameters).add("tokens_per_sample", s.tokens_per_sample);
  r.add("samples_per_s", s.samples_per_s).add("tokens_per_s", s.tokens_per_s);
  r.add("step_ms_median", s.step_ms).add("data_ms", s.data_ms).add("forward_ms", s.forward_ms);
  r.add("backward_ms", s.backward_ms).add("comm_ms", s.comm_ms);
  r.add("optimizer_ms", s.optimizer_ms).add("host_queue_ms", s.host_queue_ms);
  r.add("timing", std::string("max over ranks per step, median over steps"));
  r.add("peak_host_mb", s.peak_host_mb).add("peak_device_mb", s.peak_device_mb);
  r.add("mode", std::string(b.inference ? "inference" : "train"));
  r.add("launches", std::string(s.cuda_graph ? "cuda_graph" : "kernels"));
  r.add("forward_flops_per_sample", s.forward_flops_per_sample);
  r.add("flops_per_sample", s.flops_per_sample);
  r.add("achieved_tflops", s.achieved_tflops);
  r.add("peak_tflops", b.peak_tflops > 0 ? b.peak_tflops : unknown);
  r.add("mfu", s.mfu);
  return r.json();
}

}  // namespace im::launch

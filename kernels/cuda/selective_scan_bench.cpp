// selective_scan_bench: times the CUDA selective scan, forward and backward, at the small
// preset's bidirectional size (B=64, L=196, E=768, N=16, two directions in one launch),
// and sets each against its memory-traffic floor: the bytes the kernel must move at
// least (every input read once, every output written once, in the storage dtype: bf16
// moves half the bytes of float32, except A, D and their gradients, which stay float32)
// over the GPU's peak memory bandwidth (2 x memory clock x bus width, from the device, or
// --peak-gbs).
//
//   selective_scan_bench [--batch B] [--len L] [--inner E] [--state N] [--directions 1|2]
//                        [--no-inject] [--dtype float32|float64|bf16] [--double]
//                        [--warmup W] [--iters I] [--peak-gbs G]
//
// --double is --dtype float64. The backward workspace (chunk-boundary states, and bf16's
// float sums of dBm, dCm) is in the compute type and not part of the floor.
//
// Prints a table and one line `scan-bench: {json}`. Without a GPU it says so and exits 0.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/bfloat16.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/selective_scan.h"
#include "kernels/cuda/stream.h"

namespace {

namespace kc = im::kernels::cuda;

enum class Dtype { Float32, Float64, BFloat16 };

const char* dtype_name(Dtype t) {
  switch (t) {
    case Dtype::Float64:
      return "float64";
    case Dtype::BFloat16:
      return "bf16";
    default:
      return "float32";
  }
}

struct Options {
  int64_t batch = 64, len = 196, inner = 768, state = 16;
  int directions = 2;
  bool inject = true;
  Dtype dtype = Dtype::Float32;
  int warmup = 10, iters = 50;
  double peak_gbs = 0;  // 0: from the device
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "selective_scan_bench: %s\nusage: selective_scan_bench [--batch B] [--len L] "
               "[--inner E] [--state N] [--directions 1|2] [--no-inject] "
               "[--dtype float32|float64|bf16] [--double] [--warmup W] [--iters I] "
               "[--peak-gbs G]\n",
               why.c_str());
  std::exit(2);
}

Dtype parse_dtype(const std::string& name) {
  if (name == "float32") return Dtype::Float32;
  if (name == "float64") return Dtype::Float64;
  if (name == "bf16" || name == "bfloat16") return Dtype::BFloat16;
  usage("--dtype must be float32, float64 or bf16, got '" + name + "'");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> double {
      if (i + 1 >= argc) usage(a + " needs a value");
      char* end = nullptr;
      const double v = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0') usage(a + ": not a number: " + argv[i]);
      return v;
    };
    if (a == "--batch")
      o.batch = static_cast<int64_t>(value());
    else if (a == "--len")
      o.len = static_cast<int64_t>(value());
    else if (a == "--inner")
      o.inner = static_cast<int64_t>(value());
    else if (a == "--state")
      o.state = static_cast<int64_t>(value());
    else if (a == "--directions")
      o.directions = static_cast<int>(value());
    else if (a == "--warmup")
      o.warmup = static_cast<int>(value());
    else if (a == "--iters")
      o.iters = static_cast<int>(value());
    else if (a == "--peak-gbs")
      o.peak_gbs = value();
    else if (a == "--no-inject")
      o.inject = false;
    else if (a == "--double")
      o.dtype = Dtype::Float64;
    else if (a == "--dtype")
      o.dtype = parse_dtype(i + 1 < argc ? argv[++i] : "(none)");
    else
      usage("unknown option " + a);
  }
  if (o.batch < 1 || o.len < 1 || o.inner < 1 || o.state < 1 || o.state > kc::kScanMaxState)
    usage("sizes must be positive and --state at most " + std::to_string(kc::kScanMaxState));
  if (o.directions < 1 || o.directions > 2) usage("--directions must be 1 or 2");
  if (o.warmup < 0 || o.iters < 1) usage("--warmup must be >= 0 and --iters >= 1");
  return o;
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    std::fprintf(stderr, "selective_scan_bench: %s: %s\n", what, cudaGetErrorString(err));
    std::exit(1);
  }
}

// One device buffer of n elements of T, filled from the host (rounded to T).
template <typename T>
T* upload(const std::vector<double>& host) {
  std::vector<T> h(host.size());
  for (size_t i = 0; i < host.size(); ++i) h[i] = im::convert<T>(host[i]);
  T* d = static_cast<T*>(kc::device_malloc(sizeof(T) * std::max<size_t>(1, h.size())));
  kc::memcpy_host_to_device(d, h.data(), sizeof(T) * h.size());
  return d;
}

template <typename T>
T* scratch(int64_t n) {
  return static_cast<T*>(
      kc::device_malloc(sizeof(T) * static_cast<size_t>(std::max<int64_t>(1, n))));
}

// Median milliseconds of `iters` calls of fn after `warmup` untimed ones, each call timed
// on the current stream by its own pair of events.
template <typename F>
double median_ms(F&& fn, int warmup, int iters) {
  const kc::StreamHandle s = kc::current_stream();
  for (int i = 0; i < warmup; ++i) fn();
  kc::stream_synchronize(s);
  kc::EventHandle start = kc::create_event(true), stop = kc::create_event(true);
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    kc::record_event(start, s);
    fn();
    kc::record_event(stop, s);
    kc::event_synchronize(stop);
    ms.push_back(kc::event_elapsed_ms(start, stop));
  }
  kc::destroy_event(start);
  kc::destroy_event(stop);
  std::sort(ms.begin(), ms.end());
  return ms.size() % 2 ? ms[ms.size() / 2] : 0.5 * (ms[ms.size() / 2 - 1] + ms[ms.size() / 2]);
}

template <typename T>
int run(const Options& o, const std::string& device, double peak_bytes_per_s) {
  using C = im::compute_t<T>;
  const int64_t B = o.batch, L = o.len, E = o.inner, N = o.state;
  const int64_t ble = B * L * E, bln = B * L * N;
  std::mt19937_64 rng(1234);
  std::normal_distribution<double> normal(0.0, 1.0);
  auto randn = [&](int64_t n, auto&& f) {
    std::vector<double> v(static_cast<size_t>(n));
    for (double& x : v) x = f(normal(rng));
    return v;
  };
  auto id = [](double x) { return x; };
  auto neg_exp = [](double x) { return -std::exp(x); };

  std::vector<kc::ScanProblem<T>> fwd(o.directions);
  std::vector<kc::ScanBackwardProblem<T>> bwd(o.directions);
  for (int dir = 0; dir < o.directions; ++dir) {
    kc::ScanDims d;
    d.batch = B;
    d.len = L;
    d.inner = E;
    d.state = N;
    d.reverse = dir == 1;
    // As the model runs it: the kernels take W_Δ s and apply b_Δ and the softplus.
    d.softplus_delta = true;
    const T* u = upload<T>(randn(ble, id));
    const T* delta = upload<T>(randn(ble, id));
    const C* delta_bias = upload<C>(
        randn(E, [](double x) { return std::log(std::expm1(0.01 + 0.05 * std::abs(x))); }));
    const C* A = upload<C>(randn(E * N, neg_exp));  // A, D and dA, dD: the compute type
    const T* Bm = upload<T>(randn(bln, id));
    const T* Cm = upload<T>(randn(bln, id));
    const C* D = upload<C>(randn(E, id));
    const T* inject = o.inject ? upload<T>(randn(ble, id)) : nullptr;
    fwd[dir] = {u, delta, A, Bm, Cm, D, inject, delta_bias, scratch<T>(ble), d};
    kc::ScanBackwardProblem<T>& p = bwd[dir];
    p.dy = upload<T>(randn(ble, id));
    p.u = u;
    p.delta = delta;
    p.A = A;
    p.Bm = Bm;
    p.Cm = Cm;
    p.D = D;
    p.inject = inject;
    p.delta_bias = delta_bias;
    p.ddelta_bias = scratch<C>(E);
    p.du = scratch<T>(ble);
    p.ddelta = scratch<T>(ble);
    p.dA = scratch<C>(E * N);
    p.dBm = scratch<T>(bln);
    p.dCm = scratch<T>(bln);
    p.dD = scratch<C>(E);
    p.dinject = o.inject ? scratch<T>(ble) : nullptr;
    p.workspace = scratch<C>(kc::selective_scan_workspace_elems<T>(d));
    p.dims = d;
  }

  const double fwd_ms =
      median_ms([&] { kc::selective_scan_multi(fwd.data(), o.directions); }, o.warmup, o.iters);
  const double bwd_ms = median_ms(
      [&] { kc::selective_scan_backward_multi(bwd.data(), o.directions); }, o.warmup, o.iters);

  // The least traffic per direction: [B, L, E] tensors, [B, L, N] ones (elements of T),
  // A [E, N], D [E] (elements of the compute type).
  const double es = sizeof(T), ps = sizeof(C);
  const int ins = o.inject ? 1 : 0;
  const double fwd_bytes =  // u delta [inject] y, Bm Cm, A D
      o.directions * (es * ((3.0 + ins) * ble + 2.0 * bln) + ps * (E * N + E));
  // bwd: read dy u delta [inject] Bm Cm A D, write du ddelta [dinject] dBm dCm dA dD.
  const double bwd_bytes =
      o.directions * (es * ((5.0 + 2 * ins) * ble + 4.0 * bln) + ps * 2.0 * (E * N + E));
  const double fwd_floor = fwd_bytes / peak_bytes_per_s * 1e3;
  const double bwd_floor = bwd_bytes / peak_bytes_per_s * 1e3;
  const double ws_mb = o.directions * sizeof(C) *
                       static_cast<double>(kc::selective_scan_workspace_elems<T>(bwd[0].dims)) /
                       1e6;

  std::printf("selective scan on %s, %s, B=%lld L=%lld E=%lld N=%lld, %d direction(s)%s\n",
              device.c_str(), dtype_name(o.dtype), static_cast<long long>(B),
              static_cast<long long>(L), static_cast<long long>(E), static_cast<long long>(N),
              o.directions, o.inject ? ", with inject" : "");
  std::printf("peak memory bandwidth %.0f GB/s; median of %d runs after %d warm-up\n",
              peak_bytes_per_s / 1e9, o.iters, o.warmup);
  std::printf("%-9s %10s %12s %11s %14s %10s\n", "pass", "time ms", "min bytes MB", "floor ms",
              "time / floor", "GB/s");
  std::printf("%-9s %10.4f %12.1f %11.4f %14.2f %10.0f\n", "forward", fwd_ms, fwd_bytes / 1e6,
              fwd_floor, fwd_ms / fwd_floor, fwd_bytes / (fwd_ms * 1e-3) / 1e9);
  std::printf("%-9s %10.4f %12.1f %11.4f %14.2f %10.0f\n", "backward", bwd_ms, bwd_bytes / 1e6,
              bwd_floor, bwd_ms / bwd_floor, bwd_bytes / (bwd_ms * 1e-3) / 1e9);
  std::printf("backward workspace (states at chunk boundaries%s): %.1f MB\n",
              std::is_same_v<T, C> ? "" : ", float sums", ws_mb);
  std::printf(
      "scan-bench: {\"device\": \"%s\", \"dtype\": \"%s\", \"batch\": %lld, \"len\": %lld, "
      "\"inner\": %lld, \"state\": %lld, \"directions\": %d, \"inject\": %s, "
      "\"peak_gbs\": %.1f, \"fwd_ms\": %.5f, \"bwd_ms\": %.5f, \"fwd_bytes\": %.0f, "
      "\"bwd_bytes\": %.0f, \"fwd_floor_ms\": %.5f, \"bwd_floor_ms\": %.5f, "
      "\"fwd_time_over_floor\": %.3f, \"bwd_time_over_floor\": %.3f, \"workspace_mb\": %.2f}\n",
      device.c_str(), dtype_name(o.dtype), static_cast<long long>(B), static_cast<long long>(L),
      static_cast<long long>(E), static_cast<long long>(N), o.directions,
      o.inject ? "true" : "false", peak_bytes_per_s / 1e9, fwd_ms, bwd_ms, fwd_bytes, bwd_bytes,
      fwd_floor, bwd_floor, fwd_ms / fwd_floor, bwd_ms / bwd_floor, ws_mb);
  // The process ends here; the device memory goes with it.
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  std::string why;
  if (kc::device_count(&why) == 0) {
    std::printf("selective_scan_bench: no GPU (%s); nothing to measure\n", why.c_str());
    return 0;
  }
  kc::set_device(0);
  int dev = 0, clock_khz = 0, bus_bits = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  double peak = o.peak_gbs * 1e9;
  if (peak <= 0) {
    check(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, dev), "memory clock rate");
    check(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev),
          "memory bus width");
    peak = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0);
  }
  if (!(peak > 0)) {
    std::printf("selective_scan_bench: the device reports no memory bandwidth; pass --peak-gbs\n");
    return 2;
  }
  try {
    const std::string name = kc::device_name(dev);
    switch (o.dtype) {
      case Dtype::Float64:
        return run<double>(o, name, peak);
      case Dtype::BFloat16:
        return run<im::bfloat16>(o, name, peak);
      default:
        return run<float>(o, name, peak);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "selective_scan_bench: %s\n", e.what());
    return 1;
  }
}

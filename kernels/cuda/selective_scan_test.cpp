// CUDA selective scan (forward, backward, the multi-problem launch and the autograd op)
// against the CPU reference kernels on fresh random inputs in realistic ranges: delta =
// softplus(randn), A = -exp(randn), everything else randn. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "kernels/cpu/selective_scan.h"
#include "kernels/cuda/selective_scan.h"
#include "tests/expect_error.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;

namespace {

namespace cpu = im::kernels::cpu;
namespace gpu = im::kernels::cuda;
using im::testing::float_tolerance;
using im::testing::rel_error;

struct Case {
  int64_t B, L, E, N;
};

std::string describe(const Case& c, DType dt, bool reverse, bool inject) {
  return "B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) + " E=" + std::to_string(c.E) +
         " N=" + std::to_string(c.N) + " " + im::dtype_name(dt) + (reverse ? " reverse" : "") +
         (inject ? " inject" : "");
}

// Inputs of one problem (CPU tensors of the test's dtype) and its upstream gradient dy.
struct Inputs {
  Tensor u, delta, A, Bm, Cm, D, inject, dy;
};

Inputs make_inputs(const Case& c, DType dt, uint64_t seed) {
  im::Generator g(seed);
  auto randn = [&](const im::Shape& s) { return im::randn(s, g, DType::Float64); };
  Inputs in;
  in.u = randn({c.B, c.L, c.E}).to(dt);
  in.delta = im::softplus(randn({c.B, c.L, c.E})).to(dt);
  in.A = im::neg(im::exp(randn({c.E, c.N}))).to(dt);
  in.Bm = randn({c.B, c.L, c.N}).to(dt);
  in.Cm = randn({c.B, c.L, c.N}).to(dt);
  in.D = randn({c.E}).to(dt);
  in.inject = randn({c.B, c.L, c.E}).to(dt);
  in.dy = randn({c.B, c.L, c.E}).to(dt);
  return in;
}

Inputs to_gpu(const Inputs& in) {
  return {in.u.to(Device::cuda()),      in.delta.to(Device::cuda()), in.A.to(Device::cuda()),
          in.Bm.to(Device::cuda()),     in.Cm.to(Device::cuda()),    in.D.to(Device::cuda()),
          in.inject.to(Device::cuda()), in.dy.to(Device::cuda())};
}

// Forward output and every gradient; dinject undefined when not asked for.
struct Outputs {
  Tensor y, du, ddelta, dA, dBm, dCm, dD, dinject;
};

// Outputs on `device`; on the GPU they start as NaN, so an element a kernel forgets to
// write fails the comparison.
Outputs make_outputs(const Inputs& in, bool want_dinject, Device device) {
  const DType dt = in.u.dtype();
  auto out = [&](const Tensor& like) {
    return device.is_cuda() ? Tensor::full(like.shape(), NAN, dt, device)
                            : Tensor::empty(like.shape(), dt, device);
  };
  return {out(in.u),  out(in.u),  out(in.delta), out(in.A),
          out(in.Bm), out(in.Cm), out(in.D),     want_dinject ? out(in.u) : Tensor()};
}

template <typename T>
T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

cpu::ScanDims dims_of(const Case& c, bool reverse) {
  cpu::ScanDims d;
  d.batch = c.B;
  d.len = c.L;
  d.inner = c.E;
  d.state = c.N;
  d.reverse = reverse;
  return d;
}

template <typename T>
Outputs run_cpu(const Inputs& in, const cpu::ScanDims& d, bool inject, bool want_dinject) {
  Outputs o = make_outputs(in, want_dinject, Device::cpu());
  const T* inj = inject ? ptr<T>(in.inject) : nullptr;
  cpu::selective_scan<T>(ptr<T>(in.u), ptr<T>(in.delta), ptr<T>(in.A), ptr<T>(in.Bm), ptr<T>(in.Cm),
                         ptr<T>(in.D), inj, nullptr, ptr<T>(o.y), d);
  cpu::selective_scan_backward<T>(ptr<T>(in.dy), ptr<T>(in.u), ptr<T>(in.delta), ptr<T>(in.A),
                                  ptr<T>(in.Bm), ptr<T>(in.Cm), ptr<T>(in.D), inj, nullptr,
                                  ptr<T>(o.du), ptr<T>(o.ddelta), ptr<T>(o.dA), ptr<T>(o.dBm),
                                  ptr<T>(o.dCm), ptr<T>(o.dD), ptr<T>(o.dinject), nullptr, d);
  return o;
}

Tensor workspace_for(const cpu::ScanDims& d, DType dt) {
  return Tensor::empty({gpu::selective_scan_workspace_elems(d)}, dt, Device::cuda());
}

template <typename T>
gpu::ScanProblem<T> forward_problem(const Inputs& g, const Outputs& o, const cpu::ScanDims& d,
                                    bool inject) {
  gpu::ScanProblem<T> p;
  p.u = ptr<T>(g.u);
  p.delta = ptr<T>(g.delta);
  p.A = ptr<T>(g.A);
  p.Bm = ptr<T>(g.Bm);
  p.Cm = ptr<T>(g.Cm);
  p.D = ptr<T>(g.D);
  p.inject = inject ? ptr<T>(g.inject) : nullptr;
  p.y = ptr<T>(o.y);
  p.dims = d;
  return p;
}

template <typename T>
gpu::ScanBackwardProblem<T> backward_problem(const Inputs& g, const Outputs& o,
                                             const Tensor& workspace, const cpu::ScanDims& d,
                                             bool inject) {
  gpu::ScanBackwardProblem<T> p;
  p.dy = ptr<T>(g.dy);
  p.u = ptr<T>(g.u);
  p.delta = ptr<T>(g.delta);
  p.A = ptr<T>(g.A);
  p.Bm = ptr<T>(g.Bm);
  p.Cm = ptr<T>(g.Cm);
  p.D = ptr<T>(g.D);
  p.inject = inject ? ptr<T>(g.inject) : nullptr;
  p.du = ptr<T>(o.du);
  p.ddelta = ptr<T>(o.ddelta);
  p.dA = ptr<T>(o.dA);
  p.dBm = ptr<T>(o.dBm);
  p.dCm = ptr<T>(o.dCm);
  p.dD = ptr<T>(o.dD);
  p.dinject = ptr<T>(o.dinject);
  p.workspace = ptr<T>(workspace);
  p.dims = d;
  return p;
}

// Through the single-problem entries (the front-end's calls).
template <typename T>
Outputs run_gpu(const Inputs& in, const cpu::ScanDims& d, bool inject, bool want_dinject) {
  const Inputs g = to_gpu(in);
  Outputs o = make_outputs(in, want_dinject, Device::cuda());
  const Tensor ws = workspace_for(d, in.u.dtype());
  const T* inj = inject ? ptr<T>(g.inject) : nullptr;
  gpu::selective_scan<T>(ptr<T>(g.u), ptr<T>(g.delta), ptr<T>(g.A), ptr<T>(g.Bm), ptr<T>(g.Cm),
                         ptr<T>(g.D), inj, ptr<T>(o.y), d);
  gpu::selective_scan_backward<T>(ptr<T>(g.dy), ptr<T>(g.u), ptr<T>(g.delta), ptr<T>(g.A),
                                  ptr<T>(g.Bm), ptr<T>(g.Cm), ptr<T>(g.D), inj, ptr<T>(o.du),
                                  ptr<T>(o.ddelta), ptr<T>(o.dA), ptr<T>(o.dBm), ptr<T>(o.dCm),
                                  ptr<T>(o.dD), ptr<T>(o.dinject), ptr<T>(ws), d);
  return o;
}

// The largest relative error seen so far (with what it was), printed by the tests so a
// run shows the margin under the tolerance.
struct Worst {
  double error = 0;
  std::string what;
};
Worst worst;

void report_worst(const char* test) {
  std::printf("[ scan     ] %s: largest relative error %.3g (%s)\n", test, worst.error,
              worst.what.c_str());
  worst = Worst{};
}

void expect_match(const Outputs& got, const Outputs& want, double tol, const std::string& what) {
  const std::pair<const char*, std::pair<Tensor, Tensor>> pairs[] = {
      {"y", {got.y, want.y}},
      {"du", {got.du, want.du}},
      {"ddelta", {got.ddelta, want.ddelta}},
      {"dA", {got.dA, want.dA}},
      {"dBm", {got.dBm, want.dBm}},
      {"dCm", {got.dCm, want.dCm}},
      {"dD", {got.dD, want.dD}},
      {"dinject", {got.dinject, want.dinject}}};
  for (const auto& [name, gw] : pairs) {
    ASSERT_EQ(gw.first.defined(), gw.second.defined()) << name << " " << what;
    if (!gw.first.defined()) continue;
    const double err = rel_error(gw.first, gw.second);
    EXPECT_LT(err, tol) << name << " " << what;
    if (!(err <= worst.error)) worst = {err, std::string(name) + ", " + what};
  }
}

template <typename T>
void check_case(const Case& c, DType dt, uint64_t seed) {
  const Inputs in = make_inputs(c, dt, seed);
  for (bool reverse : {false, true}) {
    for (bool inject : {false, true}) {
      // dinject is asked for in two of the four combinations, so the kernels run both with
      // and without it, with and without an injection.
      const bool want_dinject = inject != reverse;
      const cpu::ScanDims d = dims_of(c, reverse);
      expect_match(run_gpu<T>(in, d, inject, want_dinject), run_cpu<T>(in, d, inject, want_dinject),
                   float_tolerance(dt), describe(c, dt, reverse, inject));
    }
  }
}

// Lengths 1..4096 at small widths (the CPU reference stays fast), N of every kernel
// bucket (4, 8, 16, 32, 64) and odd ones (1, 5, 13) padded inside one, E odd and E over
// several blocks of channels, and the model's own shape at a small batch.
const Case kCases[] = {
    {2, 1, 33, 16},    {2, 7, 33, 16},   {2, 64, 33, 16}, {2, 197, 33, 16}, {2, 1000, 33, 16},
    {2, 4096, 33, 16}, {2, 1, 33, 8},    {2, 197, 33, 8}, {2, 1000, 33, 8}, {2, 4096, 33, 8},
    {2, 197, 33, 5},   {2, 1000, 33, 5}, {3, 64, 7, 1},   {2, 17, 9, 4},    {1, 200, 130, 4},
    {2, 197, 33, 32},  {2, 100, 17, 64}, {2, 33, 40, 13}, {4, 196, 200, 8}, {2, 196, 768, 16},
};

}  // namespace

TEST(CudaSelectiveScan, ForwardAndBackwardMatchCpuFloat32) {
  REQUIRE_GPU();
  uint64_t seed = 100;
  for (const Case& c : kCases) check_case<float>(c, DType::Float32, seed++);
  report_worst("float32");
}

TEST(CudaSelectiveScan, ForwardAndBackwardMatchCpuFloat64) {
  REQUIRE_GPU();
  uint64_t seed = 200;
  for (const Case& c : kCases) check_case<double>(c, DType::Float64, seed++);
  report_worst("float64");
}

// Two independent problems in one launch (a bidirectional layer: forward and reverse
// direction, own parameters and inputs), against two CPU runs. With state sizes of the
// same kernel bucket that is one launch; with different buckets the entry splits it.
template <typename T>
void check_multi(DType dt, const Case& c0, const Case& c1) {
  const Inputs in0 = make_inputs(c0, dt, 300), in1 = make_inputs(c1, dt, 301);
  const cpu::ScanDims d0 = dims_of(c0, false), d1 = dims_of(c1, true);
  const Outputs want0 = run_cpu<T>(in0, d0, true, true);
  const Outputs want1 = run_cpu<T>(in1, d1, false, false);

  const Inputs g0 = to_gpu(in0), g1 = to_gpu(in1);
  const Outputs o0 = make_outputs(in0, true, Device::cuda());
  const Outputs o1 = make_outputs(in1, false, Device::cuda());
  const gpu::ScanProblem<T> fwd[] = {forward_problem<T>(g0, o0, d0, true),
                                     forward_problem<T>(g1, o1, d1, false)};
  gpu::selective_scan_multi<T>(fwd, 2);
  const Tensor ws0 = workspace_for(d0, dt), ws1 = workspace_for(d1, dt);
  const gpu::ScanBackwardProblem<T> bwd[] = {backward_problem<T>(g0, o0, ws0, d0, true),
                                             backward_problem<T>(g1, o1, ws1, d1, false)};
  gpu::selective_scan_backward_multi<T>(bwd, 2);
  expect_match(o0, want0, float_tolerance(dt), "problem 0: " + describe(c0, dt, false, true));
  expect_match(o1, want1, float_tolerance(dt), "problem 1: " + describe(c1, dt, true, false));
}

TEST(CudaSelectiveScan, MultiProblemLaunchMatchesTwoCpuRuns) {
  REQUIRE_GPU();
  // The bidirectional shape: same dims, both directions.
  check_multi<float>(DType::Float32, {2, 197, 33, 16}, {2, 197, 33, 16});
  check_multi<double>(DType::Float64, {2, 197, 33, 16}, {2, 197, 33, 16});
  // Different B, L, E and N in one launch (13 and 16 share a bucket).
  check_multi<float>(DType::Float32, {2, 197, 33, 16}, {3, 50, 70, 13});
  check_multi<double>(DType::Float64, {3, 50, 70, 13}, {2, 197, 33, 16});
  // Different buckets: two launches behind the same call.
  check_multi<float>(DType::Float32, {2, 64, 33, 8}, {2, 100, 20, 32});
  check_multi<double>(DType::Float64, {2, 64, 33, 8}, {2, 100, 20, 32});
  report_worst("multi, float32 and float64");
}

// The op through autograd: GPU leaves against CPU leaves, both directions, with injection.
TEST(CudaSelectiveScan, AutogradGpuLeavesMatchCpuLeaves) {
  REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (bool reverse : {false, true}) {
      const Case c{3, 150, 40, 16};
      const Inputs in = make_inputs(c, dt, reverse ? 401 : 400);
      auto run = [&](Device device) {
        std::vector<Tensor> leaves;
        for (const Tensor* t : {&in.u, &in.delta, &in.A, &in.Bm, &in.Cm, &in.D, &in.inject}) {
          Tensor l = t->to(device);
          l.set_requires_grad(true);
          leaves.push_back(l);
        }
        const Tensor y = im::selective_scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4],
                                            leaves[5], leaves[6], reverse);
        y.backward(in.dy.to(device));
        std::vector<Tensor> out{y};
        for (const Tensor& l : leaves) out.push_back(l.grad());
        return out;
      };
      const std::vector<Tensor> got = run(Device::cuda()), want = run(Device::cpu());
      const char* names[] = {"y", "u", "delta", "A", "Bm", "Cm", "D", "inject"};
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_TRUE(got[i].defined()) << names[i];
        EXPECT_EQ(got[i].device(), Device::cuda()) << names[i];
        EXPECT_LT(rel_error(got[i].detach(), want[i].detach()), float_tolerance(dt))
            << names[i] << " " << describe(c, dt, reverse, true);
      }
    }
  }
}

// Δ = softplus(delta + bias) inside the kernels: GPU leaves against CPU leaves, the bias's
// gradient included, both directions, odd sizes and the small preset's width.
TEST(CudaSelectiveScan, DeltaBiasAndSoftplusInsideTheKernelsMatchCpu) {
  REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const Case& c : {Case{3, 150, 40, 16}, Case{2, 7, 33, 5}, Case{1, 197, 768, 16}}) {
      for (bool reverse : {false, true}) {
        for (bool softplus : {false, true}) {
          const Inputs in = make_inputs(c, dt, 600 + c.E + reverse);
          im::Generator gen(601 + c.L);
          // With the softplus: raw projections around zero (its curved part) and a
          // Mamba-like bias. Without it, raw + bias is the step itself, so positive.
          const Tensor noise = im::randn({c.B, c.L, c.E}, gen, dt);
          const Tensor raw = softplus ? noise : im::softplus(noise);
          const Tensor bias = softplus ? im::rand_uniform({c.E}, gen, -4.0, 1.0, dt)
                                       : im::rand_uniform({c.E}, gen, 0.0, 0.5, dt);
          auto run = [&](Device device) {
            std::vector<Tensor> leaves;
            for (const Tensor* t : {&in.u, &raw, &in.A, &in.Bm, &in.Cm, &in.D, &in.inject, &bias}) {
              Tensor l = t->to(device);
              l.set_requires_grad(true);
              leaves.push_back(l);
            }
            const Tensor y =
                im::selective_scan(leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5],
                                   {.inject = leaves[6],
                                    .delta_bias = leaves[7],
                                    .delta_softplus = softplus,
                                    .reverse = reverse});
            y.backward(in.dy.to(device));
            std::vector<Tensor> out{y};
            for (const Tensor& l : leaves) out.push_back(l.grad());
            return out;
          };
          const std::vector<Tensor> got = run(Device::cuda()), want = run(Device::cpu());
          const char* names[] = {"y", "u", "delta", "A", "Bm", "Cm", "D", "inject", "bias"};
          for (size_t i = 0; i < got.size(); ++i) {
            ASSERT_TRUE(got[i].defined()) << names[i];
            EXPECT_LT(rel_error(got[i].detach(), want[i].detach()), float_tolerance(dt))
                << names[i] << " " << describe(c, dt, reverse, true)
                << (softplus ? " softplus" : " bias only");
          }
        }
      }
    }
  }
}

TEST(CudaSelectiveScan, RejectsStateSizeAboveKernelMaximum) {
  REQUIRE_GPU();
  const Case c{1, 4, 3, gpu::kScanMaxState + 1};
  const Inputs in = to_gpu(make_inputs(c, DType::Float32, 500));
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] { im::selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.inject); },
      {"selective_scan", "at most 64"}));
}

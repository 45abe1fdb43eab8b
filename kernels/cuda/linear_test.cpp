// linear on the GPU (the bias fused into cuBLASLt's BIAS epilogue, the bias gradient into
// the weight-gradient GEMM's BGRADB epilogue; float64 through cuBLAS and a column sum)
// against the CPU op on the same random inputs: the output and the gradients of x, W and b.
//
// float32 (TF32 off) and float64 are held to float_tolerance; bfloat16 to kBf16Tolerance
// against the float32 CPU op on the same bfloat16-rounded inputs and upstream gradient.
// Shapes: rows 1, 7, 197 (and 3-D x), in 1, 5, 384, out 1, 3, 1536, with and without bias;
// the mixed case (bfloat16 x and W, float32 bias, float32 output); operands at odd addresses
// (where cuBLASLt may decline the epilogue and the unfused path runs); and the kernels'
// other transpose combinations against kernels/cpu/gemm.h.
#include <gtest/gtest.h>

#include <cmath>

#include <algorithm>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "core/autograd.h"
#include "core/device.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/bfloat16.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cuda/gemm.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::bf16_rounded;
using im::testing::float_tolerance;
using im::testing::kBf16Tolerance;
using im::testing::leaf_on;
using im::testing::rel_error;

namespace {

namespace gpu = im::kernels::cuda;

// How the GPU side holds each operand, and the bound on each compared tensor.
struct Precision {
  DType xw;    // x and W on the GPU
  DType bias;  // the bias on the GPU (float32 with bfloat16 x and W: the mixed case)
  double y, dx, dw, db;
};

Precision exact(DType dt) {
  const double t = float_tolerance(dt);
  return {dt, dt, t, t, t, t};
}

// bfloat16 operands and output: everything within the bf16 bound.
const Precision kBf16{DType::BFloat16, DType::BFloat16, kBf16Tolerance,
                      kBf16Tolerance,  kBf16Tolerance,  kBf16Tolerance};

// bfloat16 x and W, float32 bias: the output is accumulated and stored in float32 (never
// rounded to bfloat16), as is the bias gradient (a float32 sum of the float32 upstream);
// dx and dW come from the upstream rounded to bfloat16.
const Precision kMixed{DType::BFloat16, DType::Float32, 1e-4, kBf16Tolerance, kBf16Tolerance, 1e-5};

// Values as the CPU reference sees them: rounded to bfloat16 where the GPU holds bfloat16.
Tensor reference_values(const Tensor& v, DType gpu_dtype) {
  return gpu_dtype == DType::BFloat16 ? bf16_rounded(v) : v;
}

// Runs linear on CPU leaves (float32 for the bfloat16 cases, else the GPU's dtype) and on
// GPU leaves holding the same numbers, then backpropagates the same upstream gradient
// (random; bfloat16-rounded when the output is bfloat16) through both and compares.
void expect_linear_matches_cpu(const Shape& x_shape, int64_t out, bool with_bias,
                               const Precision& p, const std::string& what, uint64_t seed,
                               int64_t bias_offset = 0) {
  const DType cpu_dt = p.xw == DType::Float64 ? DType::Float64 : DType::Float32;
  im::Generator gen(seed);
  const int64_t in = x_shape.back();
  const Tensor xv = reference_values(im::randn(x_shape, gen, cpu_dt), p.xw);
  const Tensor wv = reference_values(im::randn({out, in}, gen, cpu_dt), p.xw);
  const Tensor bv = reference_values(im::randn({out + bias_offset}, gen, cpu_dt), p.bias);

  const Tensor xc = leaf_on(xv, Device::cpu()), wc = leaf_on(wv, Device::cpu());
  const Tensor xg = leaf_on(xv.to(p.xw), Device::cuda()), wg = leaf_on(wv.to(p.xw), Device::cuda());
  Tensor bc, bg;
  if (with_bias) {
    bc = leaf_on(bv, Device::cpu());
    bg = leaf_on(bv.to(p.bias), Device::cuda());
  }
  // A bias at an odd element offset: a slice of a longer leaf (the gradient reaches it).
  auto view = [&](const Tensor& b) {
    return b.defined() ? b.slice(0, bias_offset, bias_offset + out) : b;
  };
  const Tensor yc = im::linear(xc, wc, view(bc));
  const Tensor yg = im::linear(xg, wg, view(bg));
  ASSERT_TRUE(yg.device().is_cuda()) << what;
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_EQ(yg.dtype(), with_bias ? p.bias : p.xw) << what;
  // Relative to the size of the products (|x| |W|^T + |b|), the scale of a GEMM's rounding
  // error: one output of a long dot product can cancel to near zero (x [1, 384], out 1),
  // where an error relative to the output itself measures the cancellation, not the kernel.
  {
    im::NoGradGuard no_grad;
    const Tensor scale =
        im::linear(im::abs(xc), im::abs(wc), bc.defined() ? im::abs(view(bc)) : Tensor());
    const auto got = yg.to_vector<double>(), want = yc.to_vector<double>();
    const auto mag = scale.to_vector<double>();
    double num = 0, den = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      num += (got[i] - want[i]) * (got[i] - want[i]);
      den += mag[i] * mag[i];
    }
    EXPECT_LT(den == 0 ? std::sqrt(num) : std::sqrt(num / den), p.y) << what << " forward";
  }

  Tensor up = im::randn(yc.shape(), gen, cpu_dt);
  if (yg.dtype() == DType::BFloat16) up = bf16_rounded(up);
  yc.backward(up);
  yg.backward(up.to(yg.dtype()).to(Device::cuda()));
  ASSERT_TRUE(xg.grad().defined() && wg.grad().defined()) << what;
  EXPECT_EQ(xg.grad().dtype(), p.xw) << what;
  EXPECT_EQ(wg.grad().dtype(), p.xw) << what;
  EXPECT_LT(rel_error(xg.grad(), xc.grad()), p.dx) << what << " dx";
  EXPECT_LT(rel_error(wg.grad(), wc.grad()), p.dw) << what << " dW";
  if (with_bias) {
    ASSERT_TRUE(bg.grad().defined()) << what;
    EXPECT_EQ(bg.grad().dtype(), p.bias) << what;
    EXPECT_LT(rel_error(bg.grad(), bc.grad()), p.db) << what << " db";
  }
}

std::string describe(const Shape& x_shape, int64_t out, bool bias, const char* kind) {
  return std::string(kind) + " x " + im::shape_str(x_shape) + " out " + std::to_string(out) +
         (bias ? " with bias" : " without bias");
}

// Every combination of rows, in and out of the brief, with and without bias.
void sweep_sizes(const Precision& p, const char* kind, uint64_t seed) {
  for (int64_t rows : {1, 7, 197})
    for (int64_t in : {1, 5, 384})
      for (int64_t out : {1, 3, 1536})
        for (bool bias : {true, false})
          expect_linear_matches_cpu({rows, in}, out, bias, p, describe({rows, in}, out, bias, kind),
                                    seed++);
}

// 3-D x ([B, L, in], the layers' shape), including one that is a strided view.
void sweep_3d(const Precision& p, const char* kind, uint64_t seed) {
  for (auto [x_shape, out] : std::vector<std::tuple<Shape, int64_t>>{
           {{2, 197, 384}, 1536}, {{3, 7, 5}, 3}, {{2, 1, 384}, 1}, {{4, 197, 1}, 768}})
    for (bool bias : {true, false})
      expect_linear_matches_cpu(x_shape, out, bias, p, describe(x_shape, out, bias, kind), seed++);
}

}  // namespace

TEST(CudaLinear, Float32MatchesCpu) {
  REQUIRE_GPU();
  gpu::set_tf32_enabled(false);
  sweep_sizes(exact(DType::Float32), "float32", 100);
  sweep_3d(exact(DType::Float32), "float32", 200);
}

TEST(CudaLinear, Float64MatchesCpu) {
  REQUIRE_GPU();
  sweep_sizes(exact(DType::Float64), "float64", 300);
  sweep_3d(exact(DType::Float64), "float64", 400);
}

TEST(CudaLinear, Bfloat16MatchesCpu) {
  REQUIRE_GPU();
  sweep_sizes(kBf16, "bfloat16", 500);
  sweep_3d(kBf16, "bfloat16", 600);
}

TEST(CudaLinear, Bfloat16WithFloat32BiasGivesFloat32) {
  REQUIRE_GPU();
  uint64_t seed = 700;
  for (auto [x_shape, out] : std::vector<std::tuple<Shape, int64_t>>{
           {{2, 197, 384}, 1536}, {{197, 24}, 768}, {{7, 5}, 3}, {{1, 1}, 1}, {{3, 7, 384}, 1}})
    expect_linear_matches_cpu(x_shape, out, true, kMixed,
                              describe(x_shape, out, true, "bfloat16/float32-bias"), seed++);
}

TEST(CudaLinear, BiasAtOddAddressesMatchesCpu) {
  // A bias starting one element into its buffer (4-byte aligned float32, 2-byte bfloat16):
  // cuBLASLt may decline the epilogue for it, and the unfused path must give the same.
  REQUIRE_GPU();
  gpu::set_tf32_enabled(false);
  uint64_t seed = 800;
  for (auto [x_shape, out] :
       std::vector<std::tuple<Shape, int64_t>>{{{197, 384}, 1536}, {{2, 7, 5}, 3}}) {
    expect_linear_matches_cpu(x_shape, out, true, exact(DType::Float32),
                              describe(x_shape, out, true, "float32 odd bias"), seed++, 1);
    expect_linear_matches_cpu(x_shape, out, true, exact(DType::Float64),
                              describe(x_shape, out, true, "float64 odd bias"), seed++, 1);
    expect_linear_matches_cpu(x_shape, out, true, kBf16,
                              describe(x_shape, out, true, "bfloat16 odd bias"), seed++, 1);
    expect_linear_matches_cpu(x_shape, out, true, kMixed,
                              describe(x_shape, out, true, "mixed odd bias"), seed++, 1);
  }
}

TEST(CudaLinear, StridedOperandsMatchCpu) {
  // x a column slice (rows read in place at a stride and an odd address), x with uneven
  // rows (copied), W column-major (the transpose of an [in, out] tensor).
  REQUIRE_GPU();
  gpu::set_tf32_enabled(false);
  im::Generator gen(900);
  const Tensor big = im::randn({2, 9, 40}, gen), wt = im::randn({33, 17}, gen);
  const Tensor b = im::randn({17}, gen);
  struct Variant {
    const char* name;
    Tensor (*x)(const Tensor&);
  };
  for (const Variant& v :
       {Variant{"column slice", [](const Tensor& t) { return t.slice(2, 3, 36); }},
        Variant{"uneven rows", [](const Tensor& t) { return t.slice(1, 2, 7).slice(2, 0, 33); }}}) {
    const Tensor xc = leaf_on(big, Device::cpu()), xg = leaf_on(big, Device::cuda());
    const Tensor wc = leaf_on(wt, Device::cpu()), wg = leaf_on(wt, Device::cuda());
    const Tensor bc = leaf_on(b, Device::cpu()), bg = leaf_on(b, Device::cuda());
    const Tensor yc = im::linear(v.x(xc), wc.transpose(0, 1), bc);
    const Tensor yg = im::linear(v.x(xg), wg.transpose(0, 1), bg);
    EXPECT_LT(rel_error(yg, yc), 1e-5) << v.name;
    const Tensor up = im::randn(yc.shape(), gen);
    yc.backward(up);
    yg.backward(up.to(Device::cuda()));
    EXPECT_LT(rel_error(xg.grad(), xc.grad()), 1e-5) << v.name << " dx";
    EXPECT_LT(rel_error(wg.grad(), wc.grad()), 1e-5) << v.name << " dW";
    EXPECT_LT(rel_error(bg.grad(), bc.grad()), 1e-5) << v.name << " db";
  }
}

TEST(CudaLinear, Tf32StaysWithinItsPrecision) {
  REQUIRE_GPU();
  gpu::set_tf32_enabled(true);
  Precision p = exact(DType::Float32);
  // TF32 keeps 10 mantissa bits; the fused bias gradient may sum the TF32-rounded operand.
  p.y = p.dx = p.dw = p.db = 1e-2;
  expect_linear_matches_cpu({2, 197, 384}, 1536, true, p, "tf32", 950);
  gpu::set_tf32_enabled(false);
}

// The kernels themselves in every transpose combination (linear uses one per GEMM) against
// kernels/cpu/gemm.h, with packed operands.
TEST(CudaGemmBias, EveryTransposeMatchesCpu) {
  REQUIRE_GPU();
  gpu::set_tf32_enabled(false);
  im::Generator gen(960);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{197, 33, 17},
                           {5, 3, 1},
                           {1, 1536, 384},
                           {64, 64, 0}}) {
      for (bool ta : {false, true}) {
        for (bool tb : {false, true}) {
          const Tensor a = im::randn(ta ? Shape{k, m} : Shape{m, k}, gen, dt);
          const Tensor b = im::randn(tb ? Shape{n, k} : Shape{k, n}, gen, dt);
          const Tensor bias = im::randn({n}, gen, dt);
          const int64_t lda = std::max<int64_t>(ta ? m : k, 1),
                        ldb = std::max<int64_t>(tb ? k : n, 1);
          const Tensor ga = a.to(Device::cuda()), gb = b.to(Device::cuda());
          const Tensor gbias = bias.to(Device::cuda());
          Tensor c = Tensor::empty({m, n}, dt), gc = Tensor::empty({m, n}, dt, Device::cuda());
          Tensor bg = Tensor::empty({m}, dt), gbg = Tensor::empty({m}, dt, Device::cuda());
          Tensor c2 = Tensor::empty({m, n}, dt), gc2 = Tensor::empty({m, n}, dt, Device::cuda());
          const std::string what = std::string(im::dtype_name(dt)) + " " + std::to_string(m) + "x" +
                                   std::to_string(n) + "x" + std::to_string(k) +
                                   (ta ? " A^T" : " A") + (tb ? " B^T" : " B");
          im::dispatch_float(dt, "test", [&]<typename T>() {
            im::kernels::cpu::gemm_bias<T>(ta, tb, m, n, k, a.data<T>(), lda, b.data<T>(), ldb,
                                           bias.data<T>(), c.data<T>(), n);
            gpu::gemm_bias<T, T>(ta, tb, m, n, k, ga.data<T>(), lda, gb.data<T>(), ldb,
                                 gbias.data<T>(), gc.data<T>(), n);
            im::kernels::cpu::gemm_bias_grad<T>(ta, tb, m, n, k, a.data<T>(), lda, b.data<T>(), ldb,
                                                c2.data<T>(), n, bg.data<T>());
            gpu::gemm_bias_grad<T>(ta, tb, m, n, k, ga.data<T>(), lda, gb.data<T>(), ldb,
                                   gc2.data<T>(), n, gbg.data<T>());
          });
          const double tol = float_tolerance(dt);
          EXPECT_LT(rel_error(gc, c), tol) << what << " gemm_bias";
          EXPECT_LT(rel_error(gc2, c2), tol) << what << " gemm_bias_grad C";
          EXPECT_LT(rel_error(gbg, bg), tol) << what << " gemm_bias_grad bias";
        }
      }
    }
  }
}

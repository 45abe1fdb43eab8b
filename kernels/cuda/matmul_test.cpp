// matmul on the GPU (cuBLASLt for float32/bfloat16, cuBLAS for float64) against the CPU
// BLAS path: every way the front-end lowers a product (one GEMM, one GEMM over folded
// batch rows, one strided-batched GEMM, a loop over batches), transposed and sliced
// operands, odd sizes, and the gradients.
#include <gtest/gtest.h>

#include <tuple>

#include "core/ops.h"
#include "core/rng.h"
#include "kernels/bfloat16.h"
#include "kernels/cuda/gemm.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::on_gpu;
using im::testing::rel_error;

namespace {

struct MatmulCase {
  im::Shape a, b;
};

// Lowered differently by the front-end: plain, folded rows (shared weight), strided
// batched, broadcast left operand, and a batch layout that needs the per-batch loop.
const MatmulCase kCases[] = {
    {{1, 1}, {1, 1}},          {{33, 17}, {17, 65}},      {{7, 1}, {1, 9}},
    {{2, 197, 33}, {33, 129}}, {{3, 5, 4, 7}, {7, 3}},    {{4, 65, 17}, {4, 17, 31}},
    {{9, 9}, {5, 9, 31}},      {{3, 1, 4, 5}, {2, 5, 2}}, {{2, 3, 4, 5}, {2, 3, 5, 3}},
};

double tolerance(DType dt) {
  return dt == DType::Float64 ? 1e-12 : 1e-5;
}

}  // namespace

TEST(CudaMatmul, ForwardMatchesCpuForEveryLowering) {
  REQUIRE_GPU();
  im::kernels::cuda::set_tf32_enabled(false);
  im::Generator gen(21);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const auto& c : kCases) {
      Tensor a = im::randn(c.a, gen, dt), b = im::randn(c.b, gen, dt);
      EXPECT_LT(rel_error(im::matmul(on_gpu(a), on_gpu(b)), im::matmul(a, b)), tolerance(dt))
          << im::shape_str(c.a) << " @ " << im::shape_str(c.b) << " " << im::dtype_name(dt);
    }
  }
}

TEST(CudaMatmul, TransposedAndSlicedOperandsMatchCpu) {
  REQUIRE_GPU();
  im::kernels::cuda::set_tf32_enabled(false);
  im::Generator gen(22);
  Tensor a = im::randn({37, 19}, gen), b = im::randn({23, 37}, gen);
  Tensor ga = on_gpu(a), gb = on_gpu(b);
  EXPECT_LT(rel_error(im::matmul(ga.transpose(0, 1), gb.transpose(0, 1)),
                      im::matmul(a.transpose(0, 1), b.transpose(0, 1))),
            1e-5);
  // A column slice (row stride larger than the width, an odd start address).
  Tensor w = im::randn({5, 11}, gen);
  EXPECT_LT(rel_error(im::matmul(ga.slice(1, 3, 8), on_gpu(w)), im::matmul(a.slice(1, 3, 8), w)),
            1e-5);
  // A batched operand transposed in its last two dims.
  Tensor x = im::randn({3, 17, 29}, gen), y = im::randn({3, 17, 13}, gen);
  EXPECT_LT(
      rel_error(im::matmul(on_gpu(x).transpose(1, 2), on_gpu(y)), im::matmul(x.transpose(1, 2), y)),
      1e-5);
}

TEST(CudaMatmul, GradientsMatchCpu) {
  REQUIRE_GPU();
  im::kernels::cuda::set_tf32_enabled(false);
  im::Generator gen(23);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const auto& c : kCases) {
      Tensor a = im::randn(c.a, gen, dt), b = im::randn(c.b, gen, dt);
      Tensor w = im::randn(im::matmul(a, b).shape(), gen, dt);
      Tensor ca = a.clone().set_requires_grad(true), cb = b.clone().set_requires_grad(true);
      Tensor ga = on_gpu(a).set_requires_grad(true), gb = on_gpu(b).set_requires_grad(true);
      im::sum(im::mul(im::matmul(ca, cb), w)).backward();
      im::sum(im::mul(im::matmul(ga, gb), on_gpu(w))).backward();
      EXPECT_LT(rel_error(ga.grad(), ca.grad()), tolerance(dt)) << im::shape_str(c.a);
      EXPECT_LT(rel_error(gb.grad(), cb.grad()), tolerance(dt)) << im::shape_str(c.b);
    }
  }
}

TEST(CudaMatmul, Tf32StaysWithinItsPrecision) {
  REQUIRE_GPU();
  im::Generator gen(24);
  Tensor a = im::randn({2, 197, 384}, gen), b = im::randn({384, 768}, gen);
  im::kernels::cuda::set_tf32_enabled(true);
  const double err = rel_error(im::matmul(on_gpu(a), on_gpu(b)), im::matmul(a, b));
  im::kernels::cuda::set_tf32_enabled(false);
  EXPECT_LT(err, 1e-2);
  EXPECT_GT(err, 0.0);  // TF32 really was used: exact float32 agrees to ~1e-7
}

TEST(CudaGemm, Bfloat16InputsWithFloatAccumulation) {
  REQUIRE_GPU();
  im::Generator gen(25);
  for (auto [m, n, k] :
       {std::tuple<int64_t, int64_t, int64_t>{64, 64, 64}, {197, 129, 33}, {5, 3, 1000}}) {
    // Inputs already rounded to bfloat16, so the float32 reference sees the same values.
    Tensor a = im::randn({m, k}, gen).to(DType::BFloat16);
    Tensor b = im::randn({k, n}, gen).to(DType::BFloat16);
    Tensor ga = on_gpu(a), gb = on_gpu(b);
    Tensor gc = Tensor::empty({m, n}, DType::BFloat16, Device::cuda());
    im::kernels::cuda::gemm<im::bfloat16>(false, false, m, n, k, im::bfloat16::from_float(1.f),
                                          static_cast<const im::bfloat16*>(ga.data_ptr()), k,
                                          static_cast<const im::bfloat16*>(gb.data_ptr()), n,
                                          im::bfloat16::from_float(0.f),
                                          static_cast<im::bfloat16*>(gc.data_ptr()), n);
    const Tensor ref = im::matmul(a.to(DType::Float64), b.to(DType::Float64));
    EXPECT_LT(rel_error(gc.to(DType::Float64), ref), 1e-2) << m << "x" << n << "x" << k;
  }
}

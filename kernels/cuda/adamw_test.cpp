// The CUDA AdamW step and the two halves of gradient clipping (sum of squares, scale)
// against the CPU kernels on flat buffers: several steps with a weight-decay mask,
// comparing parameters and both moments. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cuda/adamw.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::float_tolerance;
using im::testing::rel_error;

namespace {

// Typed pointer to a tensor's first element on either device (data<T>() is host only).
template <typename T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

template <typename T>
void adamw_matches_cpu(int64_t n) {
  const DType dt = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
  const std::string what = std::string(im::dtype_name(dt)) + " n " + std::to_string(n);
  im::Generator gen(501);
  Tensor p = im::randn({n}, gen, dt);
  const Tensor p0 = p.clone();
  // Decay on about 70% of the elements.
  Tensor mask = im::bernoulli_mask({n}, 0.7, gen).to(dt);
  Tensor m = Tensor::zeros({n}, dt), v = Tensor::zeros({n}, dt);
  Tensor pg = p.to(Device::cuda()), maskg = mask.to(Device::cuda());
  Tensor mg = m.to(Device::cuda()), vg = v.to(Device::cuda());
  const double beta1 = 0.9, beta2 = 0.999;
  for (int step = 1; step <= 6; ++step) {
    // Gradients of varying scale, some exactly zero.
    Tensor g = im::mul(im::randn({n}, gen, dt), std::pow(10.0, step % 3 - 1));
    if (step == 4) g = im::mul(g, im::bernoulli_mask({n}, 0.5, gen).to(dt));
    const Tensor gg = g.to(Device::cuda());
    const im::kernels::cpu::AdamWStep s{1e-2 / step,
                                        beta1,
                                        beta2,
                                        1e-8,
                                        step % 2 ? 0.05 : 0.1,
                                        1.0 - std::pow(beta1, step),
                                        1.0 - std::pow(beta2, step)};
    im::kernels::cpu::adamw<T>(ptr<T>(p), ptr<T>(g), ptr<T>(m), ptr<T>(v), ptr<T>(mask), n, s);
    im::kernels::cuda::adamw<T>(ptr<T>(pg), ptr<T>(gg), ptr<T>(mg), ptr<T>(vg), ptr<T>(maskg), n,
                                s);
  }
  const double tol = float_tolerance(dt);
  EXPECT_LT(rel_error(pg, p), tol) << what << " params";
  EXPECT_LT(rel_error(mg, m), tol) << what << " exp_avg";
  EXPECT_LT(rel_error(vg, v), tol) << what << " exp_avg_sq";
  // The parameters moved, so the comparison above is not of two untouched copies.
  EXPECT_GT(rel_error(p, p0), 1e-3) << what;
}

template <typename T>
void clipping_matches_cpu(int64_t n) {
  const DType dt = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
  const std::string what = std::string(im::dtype_name(dt)) + " n " + std::to_string(n);
  im::Generator gen(502);
  Tensor g = im::randn({n}, gen, dt);
  Tensor gg = g.to(Device::cuda());
  const Tensor ws =
      Tensor::empty({static_cast<int64_t>(im::kernels::cuda::sum_of_squares_workspace_bytes(n))},
                    DType::UInt8, Device::cuda());
  const double cpu = im::kernels::cpu::sum_of_squares<T>(ptr<T>(g), n);
  const double gpu = im::kernels::cuda::sum_of_squares<T>(ptr<T>(gg), n, ws.data_ptr());
  EXPECT_NEAR(gpu, cpu, 1e-12 * cpu) << what;
  // Run again: the same result bit for bit (a fixed reduction order).
  EXPECT_EQ(im::kernels::cuda::sum_of_squares<T>(ptr<T>(gg), n, ws.data_ptr()), gpu) << what;
  const T factor = static_cast<T>(0.37);
  im::kernels::cpu::scale<T>(ptr<T>(g), factor, n);
  im::kernels::cuda::scale<T>(ptr<T>(gg), factor, n);
  EXPECT_EQ(gg.to(Device::cpu()).to_vector<T>(), g.to_vector<T>()) << what;
}

}  // namespace

TEST(CudaAdamW, StepsMatchCpu) {
  REQUIRE_GPU();
  for (int64_t n : {1, 7, 1000, 100003}) {
    adamw_matches_cpu<float>(n);
    adamw_matches_cpu<double>(n);
  }
}

TEST(CudaAdamW, SumOfSquaresAndScaleMatchCpu) {
  REQUIRE_GPU();
  for (int64_t n : {1, 7, 257, 1000, 262145, 1000003}) {
    clipping_matches_cpu<float>(n);
    clipping_matches_cpu<double>(n);
  }
}

TEST(CudaAdamW, SumOfSquaresOfNothingIsZero) {
  REQUIRE_GPU();
  EXPECT_EQ(im::kernels::cuda::sum_of_squares<float>(nullptr, 0, nullptr), 0.0);
}

// CUDA layer norm against the CPU reference: forward and the gradients of input, weight
// and bias, with and without the affine parameters, at row lengths that take both launch
// shapes and row counts that split the weight/bias column sums over several blocks.
// Skipped without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::float_tolerance;
using im::testing::leaf_on;
using im::testing::rel_error;

namespace {

// layer_norm on both devices from the same x, weight, bias (either may be undefined);
// outputs and all three gradients of sum(y * w) compared.
void expect_matches_cpu(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps,
                        const std::string& what) {
  const double tol = float_tolerance(x.dtype());
  Tensor xc = leaf_on(x, Device::cpu()), wc = leaf_on(weight, Device::cpu()),
         bc = leaf_on(bias, Device::cpu());
  Tensor xg = leaf_on(x, Device::cuda()), wg = leaf_on(weight, Device::cuda()),
         bg = leaf_on(bias, Device::cuda());
  const Tensor yc = im::layer_norm(xc, wc, bc, eps);
  const Tensor yg = im::layer_norm(xg, wg, bg, eps);
  ASSERT_TRUE(yg.device().is_cuda()) << what;
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_LT(rel_error(yg.detach(), yc.detach()), tol) << what << " forward";

  im::Generator wgen(555);
  const Tensor w = im::randn(yc.shape(), wgen, yc.dtype());
  im::sum(im::mul(yc, w)).backward();
  im::sum(im::mul(yg, w.to(Device::cuda()))).backward();
  ASSERT_TRUE(xg.grad().defined()) << what;
  EXPECT_LT(rel_error(xg.grad(), xc.grad()), tol) << what << " dx";
  if (weight.defined()) {
    ASSERT_TRUE(wg.grad().defined()) << what;
    EXPECT_LT(rel_error(wg.grad(), wc.grad()), tol) << what << " dweight";
  }
  if (bias.defined()) {
    ASSERT_TRUE(bg.grad().defined()) << what;
    EXPECT_LT(rel_error(bg.grad(), bc.grad()), tol) << what << " dbias";
  }
}

}  // namespace

TEST(CudaLayerNorm, MatchesCpuWithAndWithoutAffine) {
  REQUIRE_GPU();
  im::Generator gen(301);
  const std::vector<im::Shape> shapes = {
      {1, 1},    {3, 7},     {65, 33},    {3, 257},  {65, 1000}, {1, 1024},  {3, 1025},
      {1, 4099}, {65, 4099}, {2, 3, 257}, {5000, 7}, {2049, 33}, {4, 10007},
  };
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const auto& shape : shapes) {
      const int64_t cols = shape.back();
      // An offset and scale per row make the statistics matter.
      const Tensor x = im::add(im::mul(im::randn(shape, gen, dt), 2.5), 0.75);
      const Tensor weight = im::rand_uniform({cols}, gen, 0.5, 1.5, dt);
      const Tensor bias = im::randn({cols}, gen, dt);
      const std::string what = im::shape_str(shape) + " " + im::dtype_name(dt);
      expect_matches_cpu(x, weight, bias, 1e-5, what + " weight+bias");
      expect_matches_cpu(x, weight, Tensor(), 1e-5, what + " weight only");
      expect_matches_cpu(x, Tensor(), Tensor(), 1e-5, what + " no affine");
    }
  }
}

TEST(CudaLayerNorm, LargeMeanAndEpsMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(302);
  for (DType dt : {DType::Float32, DType::Float64}) {
    // A mean far from zero relative to the spread: two-pass statistics keep the digits.
    const Tensor x = im::add(im::randn({17, 513}, gen, dt), 1000.0);
    const Tensor weight = im::randn({513}, gen, dt);
    const Tensor bias = im::randn({513}, gen, dt);
    expect_matches_cpu(x, weight, bias, 1e-5, std::string("mean 1000 ") + im::dtype_name(dt));
    expect_matches_cpu(x, weight, bias, 0.5, std::string("eps 0.5 ") + im::dtype_name(dt));
  }
}

TEST(CudaLayerNorm, NonContiguousInputMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(303);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = im::randn({40, 6, 33}, gen, dt);
    const Tensor weight = im::randn({6}, gen, dt);
    const Tensor bias = im::randn({6}, gen, dt);
    const double tol = float_tolerance(dt);
    Tensor xc = x.clone(), xg = x.to(Device::cuda());
    xc.set_requires_grad(true);
    xg.set_requires_grad(true);
    // Normalise over the middle dim of a permuted view.
    const Tensor yc = im::layer_norm(xc.transpose(1, 2), weight, bias, 1e-5);
    const Tensor yg = im::layer_norm(xg.transpose(1, 2), weight.to(Device::cuda()),
                                     bias.to(Device::cuda()), 1e-5);
    EXPECT_LT(rel_error(yg.detach(), yc.detach()), tol) << im::dtype_name(dt);
    const Tensor w = im::randn(yc.shape(), gen, dt);
    yc.backward(w);
    yg.backward(w.to(Device::cuda()));
    EXPECT_LT(rel_error(xg.grad(), xc.grad()), tol) << im::dtype_name(dt);
  }
}

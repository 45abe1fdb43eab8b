// AdamW and global gradient-norm clipping on a parameter store that lives on the GPU
// against the same store on the CPU: moments allocated on the store's device, one kernel
// over the flat buffer with its decay mask, the norm reduced on the device.
// Skipped without a GPU (ctest label gpu).
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::float_tolerance;
using im::testing::rel_error;
using namespace im::layers;

namespace {

// Odd-sized parameters (the store pads each to 16 elements), some decayed, some not.
class Params : public Module {
 public:
  Params(DType dtype, uint64_t seed) {
    im::Generator gen(seed);
    register_parameter("w1", im::randn({33, 31}, gen, dtype), {.weight_decay = true});
    register_parameter("b1", im::randn({31}, gen, dtype));
    register_parameter("w2", im::randn({7, 1001}, gen, dtype), {.weight_decay = true});
    register_parameter("s", im::randn({1}, gen, dtype));
  }
};

}  // namespace

TEST(AdamWGpu, StepsAndClippingMatchCpu) {
  REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    const std::string what = im::dtype_name(dt);
    Params cpu_model(dt, 7), gpu_model(dt, 7);
    ParameterStore cpu(cpu_model, dt), gpu(gpu_model, dt, Device::cuda());
    ASSERT_TRUE(gpu.flat_params().device().is_cuda());
    OptimConfig cfg;
    cfg.weight_decay = 0.1;
    AdamW cpu_opt(cpu, cfg), gpu_opt(gpu, cfg);
    EXPECT_TRUE(gpu_opt.exp_avg().device().is_cuda());
    EXPECT_TRUE(gpu_opt.exp_avg_sq().device().is_cuda());
    const Tensor start = cpu.flat_params().clone();
    im::Generator gen(11);
    for (int step = 0; step < 5; ++step) {
      // The same gradients in both flat buffers; large ones on odd steps, so that
      // clipping scales them, small ones on even steps, so that it does not.
      const Tensor g = im::mul(im::randn({cpu.numel()}, gen, dt), step % 2 ? 10.0 : 0.01);
      cpu.flat_grads().copy_(g);
      gpu.flat_grads().copy_(g.to(Device::cuda()));
      const double max_norm = 1.0;
      const double nc = clip_grad_norm(cpu, max_norm);
      const double ng = clip_grad_norm(gpu, max_norm);
      EXPECT_NEAR(ng, nc, 1e-12 * nc) << what << " step " << step;
      EXPECT_LT(rel_error(gpu.flat_grads(), cpu.flat_grads()), float_tolerance(dt))
          << what << " clipped gradients, step " << step;
      const double lr = 1e-2 / (step + 1);
      cpu_opt.step(lr);
      gpu_opt.step(lr);
    }
    EXPECT_EQ(gpu_opt.steps_taken(), 5);
    const double tol = float_tolerance(dt);
    EXPECT_LT(rel_error(gpu.flat_params(), cpu.flat_params()), tol) << what << " params";
    EXPECT_LT(rel_error(gpu_opt.exp_avg(), cpu_opt.exp_avg()), tol) << what << " exp_avg";
    EXPECT_LT(rel_error(gpu_opt.exp_avg_sq(), cpu_opt.exp_avg_sq()), tol) << what << " exp_avg_sq";
    // The parameters did move, so the comparison is not of two untouched copies.
    EXPECT_GT(rel_error(cpu.flat_params(), start), 1e-3) << what;
  }
}

// Mixed precision: a bfloat16 store on the GPU keeps float32 masters and float32
// gradients. One AdamW launch updates the masters exactly as float32 AdamW on the CPU
// does, and leaves the model copy equal to the masters rounded to bf16.
TEST(AdamWGpu, MixedPrecisionStepsMatchFloat32OnTheCpu) {
  REQUIRE_GPU();
  Params cpu_model(DType::Float32, 7), gpu_model(DType::Float32, 7);
  ParameterStore cpu(cpu_model, DType::Float32), gpu(gpu_model, DType::BFloat16, Device::cuda());
  ASSERT_TRUE(gpu.has_master());
  ASSERT_EQ(gpu.flat_params().dtype(), DType::BFloat16);
  ASSERT_EQ(gpu.flat_grads().dtype(), DType::Float32);
  ASSERT_EQ(gpu.master_params().dtype(), DType::Float32);
  EXPECT_EQ(rel_error(gpu.master_params(), cpu.flat_params()), 0.0);
  OptimConfig cfg;
  cfg.weight_decay = 0.1;
  AdamW cpu_opt(cpu, cfg), gpu_opt(gpu, cfg);
  EXPECT_EQ(gpu_opt.exp_avg().dtype(), DType::Float32);
  const Tensor start = cpu.flat_params().clone();
  im::Generator gen(13);
  for (int step = 0; step < 5; ++step) {
    const Tensor g = im::mul(im::randn({cpu.numel()}, gen, DType::Float32), step % 2 ? 10.0 : 0.01);
    cpu.flat_grads().copy_(g);
    gpu.flat_grads().copy_(g.to(Device::cuda()));
    const double nc = clip_grad_norm(cpu, 1.0), ng = clip_grad_norm(gpu, 1.0);
    EXPECT_NEAR(ng, nc, 1e-12 * nc) << "step " << step;
    cpu_opt.step(1e-2);
    gpu_opt.step(1e-2);
  }
  const double tol = float_tolerance(DType::Float32);
  EXPECT_LT(rel_error(gpu.master_params(), cpu.flat_params()), tol);
  EXPECT_LT(rel_error(gpu_opt.exp_avg(), cpu_opt.exp_avg()), tol);
  EXPECT_LT(rel_error(gpu_opt.exp_avg_sq(), cpu_opt.exp_avg_sq()), tol);
  // The model copy is the masters rounded to nearest even, element for element.
  EXPECT_EQ(rel_error(gpu.flat_params().to(DType::Float32),
                      im::testing::bf16_rounded(gpu.master_params().to(Device::cpu()))),
            0.0);
  EXPECT_GT(rel_error(cpu.flat_params(), start), 1e-3);
}

// The clip decided on the device (no host round trip) against the CPU's: the same norm,
// factor and clipped gradients, and the update that follows; large gradients on odd steps.
TEST(AdamWGpu, CheckedClippingMatchesCpu) {
  REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    const std::string what = im::dtype_name(dt);
    Params cpu_model(dt, 9), gpu_model(dt, 9);
    ParameterStore cpu(cpu_model, dt), gpu(gpu_model, dt, Device::cuda());
    AdamW cpu_opt(cpu, OptimConfig{}), gpu_opt(gpu, OptimConfig{});
    im::Generator gen(17);
    for (int step = 0; step < 4; ++step) {
      const Tensor g = im::mul(im::randn({cpu.numel()}, gen, dt), step % 2 ? 10.0 : 0.01);
      cpu.flat_grads().copy_(g);
      gpu.flat_grads().copy_(g.to(Device::cuda()));
      const Tensor loss = Tensor::from_vector<double>({1.5}, {1}).to(dt);
      const ClipOutcome oc = clip_grad_norm_checked(cpu, 1.0, loss);
      const ClipOutcome og = clip_grad_norm_checked(gpu, 1.0, loss.to(Device::cuda()));
      ASSERT_TRUE(og.status.device().is_cuda());
      const std::vector<double> sc = oc.status.to_vector<double>();
      const std::vector<double> sg = og.status.to(Device::cpu()).to_vector<double>();
      EXPECT_NEAR(sg[kClipNormField], sc[kClipNormField], 1e-12 * sc[kClipNormField]) << what;
      EXPECT_NEAR(sg[kClipScaleField], sc[kClipScaleField], 1e-12) << what;
      EXPECT_EQ(sg[kClipFiniteField], 1.0) << what;
      EXPECT_LT(rel_error(gpu.flat_grads(), cpu.flat_grads()), float_tolerance(dt)) << what;
      cpu_opt.step(1e-2, &oc);
      gpu_opt.step(1e-2, &og);
    }
    EXPECT_LT(rel_error(gpu.flat_params(), cpu.flat_params()), float_tolerance(dt)) << what;
  }
}

// A NaN loss or an infinite gradient: the device's verdict stops the mixed-precision
// AdamW kernel, so masters, model copy and moments stay as they were.
TEST(AdamWGpu, CheckedClippingSkipsNonFiniteStepsOnTheDevice) {
  REQUIRE_GPU();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (const auto& [loss, grad_scale] : {std::pair{nan, 1.0f}, std::pair{1.0f, inf}}) {
    Params model(DType::Float32, 3);
    ParameterStore store(model, DType::BFloat16, Device::cuda());
    AdamW opt(store, OptimConfig{});
    im::Generator gen(5);
    store.flat_grads().copy_(
        im::mul(im::randn({store.numel()}, gen, DType::Float32), grad_scale).to(Device::cuda()));
    const Tensor master = store.master_params().to(Device::cpu());
    const Tensor copy = store.flat_params().to(DType::Float32).to(Device::cpu());
    const ClipOutcome clip = clip_grad_norm_checked(
        store, 1.0, Tensor::from_vector<float>({loss}, {1}).to(Device::cuda()));
    opt.step(1e-2, &clip);
    EXPECT_FALSE(clip.finite());
    EXPECT_EQ(rel_error(store.master_params().to(Device::cpu()), master), 0.0);
    EXPECT_EQ(rel_error(store.flat_params().to(DType::Float32).to(Device::cpu()), copy), 0.0);
    EXPECT_EQ(rel_error(opt.exp_avg().to(Device::cpu()), Tensor::zeros({store.numel()})), 0.0);
  }
}

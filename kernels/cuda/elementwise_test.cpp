// CUDA kernels against the CPU reference kernels on fresh random inputs, odd sizes
// included. Skipped (reported as such by ctest) on machines without a GPU.
#include <gtest/gtest.h>

#include <cmath>

#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;

namespace {

using im::testing::rel_error;

const std::vector<im::Shape> kShapes = {{1}, {7}, {33, 17}, {3, 1, 257}, {2, 3, 5, 7}};

struct UnaryCase {
  const char* name;
  Tensor (*op)(const Tensor&);
  double lo, hi;
};

const UnaryCase kUnary[] = {
    {"neg", &im::neg, -3, 3},           {"exp", &im::exp, -3, 3},
    {"log", &im::log, 0.1, 4},          {"sqrt", &im::sqrt, 0.1, 4},
    {"rsqrt", &im::rsqrt, 0.1, 4},      {"abs", &im::abs, -3, 3},
    {"tanh", &im::tanh, -3, 3},         {"sigmoid", &im::sigmoid, -6, 6},
    {"silu", &im::silu, -6, 6},         {"gelu_tanh", &im::gelu_tanh, -6, 6},
    {"gelu_erf", &im::gelu_erf, -6, 6},
};

}  // namespace

TEST(CudaElementwise, UnaryForwardMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(11);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const auto& c : kUnary) {
      for (const auto& shape : kShapes) {
        Tensor x = im::rand_uniform(shape, gen, c.lo, c.hi, dt);
        EXPECT_LT(rel_error(c.op(x.to(Device::cuda())), c.op(x)), 1e-6)
            << c.name << " " << im::shape_str(shape) << " " << im::dtype_name(dt);
      }
    }
    Tensor x = im::rand_uniform({5, 41}, gen, -30, 30, dt);
    EXPECT_LT(rel_error(im::softplus(x.to(Device::cuda())), im::softplus(x)), 1e-6);
    EXPECT_LT(rel_error(im::clamp(x.to(Device::cuda()), -2, 3), im::clamp(x, -2, 3)), 1e-6);
    Tensor pos = im::rand_uniform({5, 41}, gen, 0.1, 3, dt);
    EXPECT_LT(rel_error(im::pow(pos.to(Device::cuda()), 1.7), im::pow(pos, 1.7)), 1e-6);
  }
}

TEST(CudaElementwise, BinaryWithBroadcastAndStridesMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(12);
  const std::vector<std::pair<im::Shape, im::Shape>> pairs = {
      {{1}, {1}}, {{33, 17}, {33, 17}}, {{3, 1, 257}, {5, 1}}, {{17}, {2, 3, 17}}, {{4, 9}, {}}};
  Tensor (*ops[])(const Tensor&, const Tensor&) = {&im::add, &im::sub, &im::mul, &im::div};
  for (auto op : ops) {
    for (const auto& [sa, sb] : pairs) {
      Tensor a = im::rand_uniform(sa, gen, -2, 2);
      Tensor b = im::rand_uniform(sb, gen, 0.5, 2);
      EXPECT_LT(rel_error(op(a.to(Device::cuda()), b.to(Device::cuda())), op(a, b)), 1e-6)
          << im::shape_str(sa) << " " << im::shape_str(sb);
    }
    // Non-contiguous operands: a transposed view.
    Tensor m = im::rand_uniform({19, 13}, gen, -1, 1);
    Tensor mg = m.to(Device::cuda());
    EXPECT_LT(rel_error(op(mg.transpose(0, 1), mg.transpose(0, 1)),
                        op(m.transpose(0, 1), m.transpose(0, 1))),
              1e-6);
  }
}

// The launcher merges dims every operand walks as one and picks a flat, vectorised kernel
// when the output and each input are one run (or a broadcast element), the strided one
// otherwise; 16-byte loads only when every run is 16-byte aligned.
TEST(CudaElementwise, BinaryMatchesCpuOnEveryLayoutTheLauncherDistinguishes) {
  REQUIRE_GPU();
  im::Generator gen(13);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor big = im::rand_uniform({4, 6, 5, 37}, gen, 0.5, 2, dt);
    const Tensor other = im::rand_uniform({4, 6, 5, 37}, gen, 0.5, 2, dt);
    const Tensor bg = big.to(Device::cuda()), og = other.to(Device::cuda());
    // Views that start one element in: not 16-byte aligned, odd lengths (tail handling).
    const Tensor flat = big.reshape({-1}), flat_g = bg.reshape({-1});
    const Tensor oflat = other.reshape({-1}), oflat_g = og.reshape({-1});
    const int64_t n = flat.numel();
    const Tensor scalar = im::rand_uniform({}, gen, 0.5, 2, dt);
    const Tensor row = im::rand_uniform({37}, gen, 0.5, 2, dt);
    const Tensor col = im::rand_uniform({4, 6, 5, 1}, gen, 0.5, 2, dt);
    struct Case {
      const char* what;
      Tensor a, b, ag, bg;
    };
    const Case cases[] = {
        {"contiguous, 4-d merges to one run", big, other, bg, og},
        {"misaligned by one element", flat.slice(0, 1, n - 1), oflat.slice(0, 0, n - 2),
         flat_g.slice(0, 1, n - 1), oflat_g.slice(0, 0, n - 2)},
        {"odd tail", flat.slice(0, 0, n - 3), oflat.slice(0, 0, n - 3), flat_g.slice(0, 0, n - 3),
         oflat_g.slice(0, 0, n - 3)},
        {"scalar on the right", big, scalar, bg, scalar.to(Device::cuda())},
        {"scalar on the left", scalar, big, scalar.to(Device::cuda()), bg},
        {"row broadcast", big, row, bg, row.to(Device::cuda())},
        {"column broadcast", big, col, bg, col.to(Device::cuda())},
        {"inner dims permuted", big.transpose(2, 3), other.transpose(2, 3), bg.transpose(2, 3),
         og.transpose(2, 3)},
        {"outer dims permuted, inner run kept", big.transpose(0, 1), other.transpose(0, 1),
         bg.transpose(0, 1), og.transpose(0, 1)},
    };
    Tensor (*ops[])(const Tensor&, const Tensor&) = {&im::add, &im::sub, &im::mul, &im::div};
    for (const Case& c : cases)
      for (auto op : ops)
        EXPECT_LT(rel_error(op(c.ag, c.bg), op(c.a, c.b)), 1e-12)
            << c.what << " " << im::dtype_name(dt);
  }
}

// Contiguous copies become one device-to-device copy; strided ones go through the kernel.
TEST(CudaTensor, ContiguousOfEveryLayoutMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(14);
  const Tensor x = im::randn({3, 7, 5, 33}, gen);
  const Tensor xg = x.to(Device::cuda());
  for (auto view : {+[](const Tensor& t) { return t.transpose(1, 3); },
                    +[](const Tensor& t) { return t.transpose(0, 1); },
                    +[](const Tensor& t) { return t.slice(3, 1, 32); },
                    +[](const Tensor& t) { return t.reshape({-1}).slice(0, 5, 1005); }}) {
    EXPECT_EQ(rel_error(view(xg).contiguous(), view(x).contiguous()), 0.0);
    EXPECT_EQ(rel_error(view(xg).clone(), view(x).clone()), 0.0);
  }
}

TEST(CudaElementwise, UnaryBackwardMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(13);
  for (const auto& c : kUnary) {
    Tensor x = im::rand_uniform({3, 101}, gen, c.lo, c.hi, DType::Float64);
    x.set_requires_grad(true);
    im::sum(im::mul(c.op(x), x.detach())).backward();
    // Same loss on the GPU, by hand: the GPU path has no autograd node yet for
    // device transfers, so compare the backward kernel through a GPU leaf.
    Tensor xg = x.detach().to(Device::cuda());
    xg.set_requires_grad(true);
    Tensor y = c.op(xg);
    y.backward(xg.detach());
    EXPECT_LT(rel_error(xg.grad(), x.grad()), 1e-9) << c.name;
  }
}

TEST(CudaTensor, CopiesFillsAndRoundTrips) {
  REQUIRE_GPU();
  im::Generator gen(14);
  Tensor x = im::rand_uniform({17, 5, 3}, gen);
  Tensor g = x.to(Device::cuda());
  EXPECT_EQ(g.device(), Device::cuda());
  EXPECT_EQ(g.to(Device::cpu()).to_vector<float>(), x.to_vector<float>());
  // Strided device-to-device copy.
  EXPECT_EQ(g.permute({2, 0, 1}).contiguous().to(Device::cpu()).to_vector<float>(),
            x.permute({2, 0, 1}).contiguous().to_vector<float>());
  Tensor f = Tensor::full({1000003}, 2.5, DType::Float64, Device::cuda());
  const auto v = f.to(Device::cpu()).to_vector<double>();
  EXPECT_EQ(v.front(), 2.5);
  EXPECT_EQ(v.back(), 2.5);
  // dtype conversion on the way.
  EXPECT_EQ(g.to(DType::Float64).to(Device::cpu()).to_vector<double>(),
            x.to(DType::Float64).to_vector<double>());
}

TEST(CudaTensor, CastsOnTheDeviceMatchTheCpuForEveryTypePair) {
  REQUIRE_GPU();
  im::Generator gen(15);
  // Values that exercise rounding to bfloat16 and truncation to integers.
  Tensor x = im::rand_uniform({3, 41}, gen, 0, 250, DType::Float64);
  const DType types[] = {DType::Float32, DType::Float64, DType::BFloat16,
                         DType::Int32,   DType::Int64,   DType::UInt8};
  for (DType from : types) {
    const Tensor src = x.to(from);
    const Tensor src_gpu = src.to(Device::cuda());
    for (DType to : types) {
      // Through a transposed (strided) source, so the strided cast path is used.
      const Tensor want = src.transpose(0, 1).to(to);
      const Tensor got = src_gpu.transpose(0, 1).to(to);
      EXPECT_EQ(got.device(), Device::cuda());
      EXPECT_EQ(got.to(Device::cpu()).to_vector<double>(), want.to_vector<double>())
          << im::dtype_name(from) << " -> " << im::dtype_name(to);
    }
  }
}

TEST(CudaRandom, GpuDrawsTheSameNumbersAsCpu) {
  REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64}) {
    im::Generator cpu_gen(77), gpu_gen(77);
    im::rand_uniform({5}, cpu_gen);  // advance both to a non-zero offset
    im::rand_uniform({5}, gpu_gen);
    Tensor a = im::rand_uniform({1001, 3}, cpu_gen, -2, 5, dt);
    Tensor b = im::rand_uniform({1001, 3}, gpu_gen, -2, 5, dt, Device::cuda());
    EXPECT_EQ(b.to(Device::cpu()).to_vector<double>(), a.to_vector<double>());
    Tensor n_cpu = im::randn({4097}, cpu_gen, dt);
    Tensor n_gpu = im::randn({4097}, gpu_gen, dt, Device::cuda());
    // Same uniforms; log/cos may differ by an ulp between libm and CUDA's math library.
    EXPECT_LT(rel_error(n_gpu, n_cpu), 1e-6);
    EXPECT_EQ(im::bernoulli_mask({333}, 0.7, gpu_gen, Device::cuda())
                  .to(Device::cpu())
                  .to_vector<uint8_t>(),
              im::bernoulli_mask({333}, 0.7, cpu_gen).to_vector<uint8_t>());
    EXPECT_EQ(cpu_gen.state(), gpu_gen.state());
  }
}

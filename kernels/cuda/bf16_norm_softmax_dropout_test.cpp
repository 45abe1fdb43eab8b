// bfloat16 on the GPU for layer norm, softmax and log_softmax, dropout and drop-path, and
// random draws. Each bfloat16 CUDA op is checked against the float32 CPU op run on the same
// bfloat16-rounded inputs (forward and every input gradient within kBf16Tolerance, at sizes
// that take every launch shape); dropout masks and uniform draws must equal the float32
// ones for the same generator state; bfloat16 on the CPU must be an im::Error. The GPU
// tests skip without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::bf16_rounded;
using im::testing::kBf16Tolerance;
using im::testing::leaf_on;
using im::testing::rel_error;

namespace {

using UnaryOp = std::function<Tensor(const Tensor&)>;

// `values` rounded to bfloat16 and widened back (undefined stays undefined).
Tensor rounded_or_none(const Tensor& values) {
  return values.defined() ? bf16_rounded(values) : Tensor();
}

Tensor as_bf16(const Tensor& values) {
  return values.defined() ? values.to(DType::BFloat16) : Tensor();
}

Tensor bf16_on_gpu(const Tensor& values) {
  return values.to(DType::BFloat16).to(Device::cuda());
}

// A GPU result widened to float32 on the CPU, for comparison with the CPU reference.
Tensor widened(const Tensor& t) {
  return t.detach().to(Device::cpu()).to(DType::Float32);
}

// A bfloat16 GPU result against the float32 CPU reference within kBf16Tolerance.
void expect_bf16_close(const Tensor& gpu, const Tensor& cpu, const std::string& what) {
  ASSERT_TRUE(gpu.defined()) << what;
  ASSERT_TRUE(cpu.defined()) << what;
  EXPECT_TRUE(gpu.device().is_cuda()) << what;
  EXPECT_EQ(gpu.dtype(), DType::BFloat16) << what;
  EXPECT_LT(rel_error(widened(gpu), cpu), kBf16Tolerance) << what;
}

// layer_norm on float32 CPU leaves and bfloat16 GPU leaves holding the same bf16-rounded
// x, weight and bias (either may be undefined); the output and the gradients of x, weight
// and bias for the same upstream gradient compared.
void expect_layer_norm_matches_cpu_bf16(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                        double eps, const std::string& what) {
  const Tensor xr = bf16_rounded(x), wr = rounded_or_none(weight), br = rounded_or_none(bias);
  const Tensor xc = leaf_on(xr, Device::cpu()), wc = leaf_on(wr, Device::cpu()),
               bc = leaf_on(br, Device::cpu());
  const Tensor xg = leaf_on(as_bf16(xr), Device::cuda()), wg = leaf_on(as_bf16(wr), Device::cuda()),
               bg = leaf_on(as_bf16(br), Device::cuda());
  const Tensor yc = im::layer_norm(xc, wc, bc, eps);
  const Tensor yg = im::layer_norm(xg, wg, bg, eps);
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  expect_bf16_close(yg, yc.detach(), what + " forward");

  im::Generator wgen(555);
  const Tensor w = bf16_rounded(im::randn(yc.shape(), wgen));
  yc.backward(w);
  yg.backward(bf16_on_gpu(w));
  expect_bf16_close(xg.grad(), xc.grad(), what + " dx");
  if (weight.defined()) expect_bf16_close(wg.grad(), wc.grad(), what + " dweight");
  if (bias.defined()) expect_bf16_close(bg.grad(), bc.grad(), what + " dbias");
}

struct Named {
  const char* name;
  Tensor (*op)(const Tensor&, int64_t);
};
const Named kSoftmaxOps[] = {{"softmax", &im::softmax}, {"log_softmax", &im::log_softmax}};

// Outputs and input gradients of one op on both devices, and the upstream gradient w.
struct PairRun {
  Tensor y_cpu, y_gpu, dx_cpu, dx_gpu, w;
};

// op on a float32 CPU leaf and a bfloat16 GPU leaf holding `values` rounded to bfloat16,
// then backward from the same bf16-rounded upstream gradient w (drawn from w_seed).
PairRun run_on_both(const UnaryOp& op, const Tensor& values, uint64_t w_seed) {
  const Tensor rounded = bf16_rounded(values);
  const Tensor xc = leaf_on(rounded, Device::cpu());
  const Tensor xg = leaf_on(rounded.to(DType::BFloat16), Device::cuda());
  PairRun r;
  r.y_cpu = op(xc);
  r.y_gpu = op(xg);
  im::Generator wgen(w_seed);
  r.w = bf16_rounded(im::randn(r.y_cpu.shape(), wgen));
  r.y_cpu.backward(r.w);
  r.y_gpu.backward(bf16_on_gpu(r.w));
  r.dx_cpu = xc.grad();
  r.dx_gpu = xg.grad();
  return r;
}

// sqrt(sum (gpu - cpu)^2 / sum scale^2) over the entries finite on the CPU: the error
// measured against `scale` (the CPU result itself for a relative error). An entry NaN or
// infinite on one side must be the same (NaN, or the same infinity) on the other, else the
// result is infinity.
double scaled_error(const Tensor& gpu, const Tensor& cpu, const Tensor& scale) {
  const auto a = widened(gpu).to_vector<double>();
  const auto b = cpu.detach().to(Device::cpu()).to_vector<double>();
  const auto s = scale.detach().to(Device::cpu()).to_vector<double>();
  if (a.size() != b.size() || s.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(b[i]) || std::isnan(a[i])) {
      if (!(std::isnan(a[i]) && std::isnan(b[i]))) return INFINITY;
      continue;
    }
    if (std::isinf(b[i]) || std::isinf(a[i])) {
      if (a[i] != b[i]) return INFINITY;
      continue;
    }
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += s[i] * s[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

// softmax or log_softmax through `op` on both devices: the output relative to the CPU's,
// the input gradient against the size it is made from. For log_softmax that is the
// upstream gradient g (dx = g - exp(y) * sum(g)). For softmax it is y * g: dx =
// y * (g - sum(g * y)) is a difference of near-equal numbers wherever g is nearly constant
// over the entries that hold a row's mass (two columns, or a nearly one-hot row), and
// there the bfloat16 y (2^-9 relative) moves sum(g * y) by about 2^-9 |y * g| however
// small dx is; relative to dx itself the error is unbounded.
void expect_softmax_matches_cpu_bf16(const Named& o, const UnaryOp& op, const Tensor& values,
                                     const std::string& what) {
  const PairRun r = run_on_both(op, values, 777);
  ASSERT_TRUE(r.y_gpu.device().is_cuda()) << what;
  ASSERT_EQ(r.y_gpu.dtype(), DType::BFloat16) << what;
  ASSERT_EQ(r.y_gpu.shape(), r.y_cpu.shape()) << what;
  EXPECT_LT(scaled_error(r.y_gpu, r.y_cpu, r.y_cpu), kBf16Tolerance) << what << " forward";
  ASSERT_TRUE(r.dx_gpu.defined()) << what;
  ASSERT_TRUE(r.dx_cpu.defined()) << what;
  EXPECT_EQ(r.dx_gpu.dtype(), DType::BFloat16) << what;
  const bool is_softmax = std::string(o.name) == "softmax";
  const Tensor scale = is_softmax ? im::mul(r.y_cpu.detach(), r.w) : r.w;
  EXPECT_LT(scaled_error(r.dx_gpu, r.dx_cpu, scale), kBf16Tolerance) << what << " backward";
}

}  // namespace

// Runs without a GPU: the CPU kernels are the float32/float64 reference and have no
// bfloat16 path, and a rejected draw leaves the generator as it was.
TEST(Bf16NormSoftmaxDropout, CpuBfloat16IsAnError) {
  const Tensor x = Tensor::ones({4, 8}, DType::BFloat16);
  const Tensor p = Tensor::ones({8}, DType::BFloat16);
  EXPECT_THROW(im::layer_norm(x, p, p, 1e-5), im::Error);
  EXPECT_THROW(im::layer_norm(x, Tensor(), Tensor(), 1e-5), im::Error);
  EXPECT_THROW(im::softmax(x, -1), im::Error);
  EXPECT_THROW(im::softmax(x, 0), im::Error);
  EXPECT_THROW(im::log_softmax(x, 1), im::Error);
  im::Generator gen(7);
  const im::GeneratorState before = gen.state();
  EXPECT_THROW(im::dropout(x, 0.5, gen), im::Error);
  EXPECT_THROW(im::dropout(x, 0.0, gen), im::Error);
  EXPECT_THROW(im::drop_path(x, 0.5, gen), im::Error);
  EXPECT_THROW(im::drop_path(x, 0.5, gen, 1, 6), im::Error);
  EXPECT_THROW(im::rand_uniform({3}, gen, 0.0, 1.0, DType::BFloat16), im::Error);
  EXPECT_THROW(im::randn({3}, gen, DType::BFloat16), im::Error);
  EXPECT_EQ(gen.state(), before);
}

// Row lengths for the group widths of 1, 4, 8, 16 and 32 lanes (2 lanes: TwoColumnRows),
// a warp up to 1024 columns, a block of 256 and of 512 threads beyond; row counts that
// split the weight/bias column sums over several blocks ({5000, 7}, {2049, 33},
// {65, 4099}) and column counts that need no split ({3, 32800}: 1025 column blocks).
TEST(CudaBf16LayerNorm, MatchesCpuWithAndWithoutAffine) {
  REQUIRE_GPU();
  im::Generator gen(311);
  const std::vector<im::Shape> shapes = {
      {1, 1},    {9, 3},     {3, 7},      {17, 13},  {65, 33},   {3, 257},   {65, 1000}, {1, 1024},
      {3, 1025}, {65, 4099}, {2, 3, 257}, {5000, 7}, {2049, 33}, {4, 10007}, {3, 32800},
  };
  for (const auto& shape : shapes) {
    const int64_t cols = shape.back();
    // An offset and scale make the statistics matter.
    const Tensor x = im::add(im::mul(im::randn(shape, gen), 2.5), 0.75);
    const Tensor weight = im::rand_uniform({cols}, gen, 0.5, 1.5);
    const Tensor bias = im::randn({cols}, gen);
    const std::string what = im::shape_str(shape);
    expect_layer_norm_matches_cpu_bf16(x, weight, bias, 1e-5, what + " weight+bias");
    expect_layer_norm_matches_cpu_bf16(x, weight, Tensor(), 1e-5, what + " weight only");
    expect_layer_norm_matches_cpu_bf16(x, Tensor(), Tensor(), 1e-5, what + " no affine");
  }
}

// A row of two columns normalises to about (+1, -1) whatever its values, so dx is the eps
// term alone, eps / (var + eps) times the size of g: with eps = 1e-5 that is a few parts
// per million, and the float rounding of the GPU's sums (2^-24 of g), which the CPU's
// double sums do not have, becomes a relative error of several percent on a typical row.
// eps = 1 keeps dx a sizeable part of g.
TEST(CudaBf16LayerNorm, TwoColumnRows) {
  REQUIRE_GPU();
  im::Generator gen(314);
  const Tensor x = im::randn({65, 2}, gen);
  const Tensor weight = im::rand_uniform({2}, gen, 0.5, 1.5);
  const Tensor bias = im::randn({2}, gen);
  expect_layer_norm_matches_cpu_bf16(x, weight, bias, 1.0, "[65, 2] weight+bias");
  expect_layer_norm_matches_cpu_bf16(x, Tensor(), Tensor(), 1.0, "[65, 2] no affine");
}

TEST(CudaBf16LayerNorm, LargeMeanAndEpsMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(312);
  // A mean 100 times the spread: as far as bfloat16 (spacing 0.5 at 100) still resolves
  // the spread. The statistics are float on the GPU and the saved mean is float, so xhat
  // keeps its digits.
  const Tensor x = im::add(im::randn({17, 513}, gen), 100.0);
  const Tensor weight = im::randn({513}, gen);
  const Tensor bias = im::randn({513}, gen);
  expect_layer_norm_matches_cpu_bf16(x, weight, bias, 1e-5, "mean 100");
  expect_layer_norm_matches_cpu_bf16(x, weight, bias, 0.5, "eps 0.5");
}

TEST(CudaBf16LayerNorm, NonContiguousInputMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(313);
  const Tensor x = bf16_rounded(im::randn({40, 6, 33}, gen));
  const Tensor weight = bf16_rounded(im::randn({6}, gen));
  const Tensor bias = bf16_rounded(im::randn({6}, gen));
  const Tensor xc = leaf_on(x, Device::cpu()), wc = leaf_on(weight, Device::cpu()),
               bc = leaf_on(bias, Device::cpu());
  const Tensor xg = leaf_on(as_bf16(x), Device::cuda()),
               wg = leaf_on(as_bf16(weight), Device::cuda()),
               bg = leaf_on(as_bf16(bias), Device::cuda());
  // Normalise over the middle dim of a permuted view.
  const Tensor yc = im::layer_norm(xc.transpose(1, 2), wc, bc, 1e-5);
  const Tensor yg = im::layer_norm(xg.transpose(1, 2), wg, bg, 1e-5);
  expect_bf16_close(yg, yc.detach(), "forward");
  const Tensor w = bf16_rounded(im::randn(yc.shape(), gen));
  yc.backward(w);
  yg.backward(bf16_on_gpu(w));
  expect_bf16_close(xg.grad(), xc.grad(), "dx");
  expect_bf16_close(wg.grad(), wc.grad(), "dweight");
  expect_bf16_close(bg.grad(), bc.grad(), "dbias");
}

TEST(CudaBf16Softmax, LastDimMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(211);
  for (int64_t rows : {1, 3, 65}) {
    for (int64_t cols : {1, 2, 7, 13, 33, 257, 1000, 1024, 1025, 4099, 10007}) {
      const Tensor x = im::mul(im::randn({rows, cols}, gen), 3.0);
      for (const Named& o : kSoftmaxOps) {
        expect_softmax_matches_cpu_bf16(
            o, [&](const Tensor& t) { return o.op(t, -1); }, x,
            std::string(o.name) + " [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
      }
    }
  }
}

TEST(CudaBf16Softmax, OtherDimsMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(212);
  const Tensor a = im::randn({5, 33, 7}, gen);
  const Tensor b = im::randn({3, 1025, 2}, gen);
  for (const Named& o : kSoftmaxOps) {
    for (int64_t dim : {0, 1, -2}) {
      expect_softmax_matches_cpu_bf16(
          o, [&](const Tensor& t) { return o.op(t, dim); }, a,
          std::string(o.name) + " [5, 33, 7] dim " + std::to_string(dim));
    }
    expect_softmax_matches_cpu_bf16(
        o, [&](const Tensor& t) { return o.op(t, 1); }, b,
        std::string(o.name) + " [3, 1025, 2] dim 1");
    // A non-contiguous input along the last dim.
    expect_softmax_matches_cpu_bf16(
        o, [&](const Tensor& t) { return o.op(t.transpose(0, 2), -1); }, a,
        std::string(o.name) + " transposed");
  }
}

// Logits in [-1000, 1000) (bfloat16 spacing 4 there, so ties are common): nothing
// overflows, and the results match.
TEST(CudaBf16Softmax, LargeLogitsMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(213);
  for (int64_t cols : {7, 257, 4099}) {
    const Tensor x = im::rand_uniform({3, cols}, gen, -1000.0, 1000.0);
    for (const Named& o : kSoftmaxOps) {
      const std::string what =
          std::string(o.name) + " logits in [-1000, 1000), cols " + std::to_string(cols);
      const auto op = [&](const Tensor& t) { return o.op(t, -1); };
      expect_softmax_matches_cpu_bf16(o, op, x, what);
      const Tensor y = op(bf16_on_gpu(x));
      for (double v : widened(y).to_vector<double>()) ASSERT_TRUE(std::isfinite(v)) << what;
    }
  }
}

// -inf entries as masked_fill leaves them; a row that is all -inf is NaN on both devices.
TEST(CudaBf16Softmax, MinusInfinityEntriesMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(214);
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t cols : {7, 1000, 4099}) {
    // Row 0: every third entry -inf; row 1: all -inf but one; row 2: all -inf; row 3: none.
    auto v = im::randn({4, cols}, gen, DType::Float64).to_vector<double>();
    for (int64_t c = 0; c < cols; ++c) {
      if (c % 3 == 1) v[c] = -inf;
      if (c != cols / 2) v[cols + c] = -inf;
      v[2 * cols + c] = -inf;
    }
    const Tensor x = Tensor::from_vector<double>(v, {4, cols}).to(DType::Float32);
    for (const Named& o : kSoftmaxOps) {
      const std::string what = std::string(o.name) + " with -inf, cols " + std::to_string(cols);
      const auto op = [&](const Tensor& t) { return o.op(t, -1); };
      expect_softmax_matches_cpu_bf16(o, op, x, what);
      const auto y = widened(op(bf16_on_gpu(x))).to_vector<double>();
      for (int64_t c = 0; c < cols; ++c) ASSERT_TRUE(std::isnan(y[2 * cols + c])) << what;
      // The one entry left in row 1 takes everything (1 and 0 are exact in bfloat16).
      EXPECT_EQ(y[cols + cols / 2], std::string(o.name) == "softmax" ? 1.0 : 0.0) << what;
    }
  }
}

// The mask comes from the generator state alone, and the kernel multiplies in float and
// rounds once: a bfloat16 run's output and gradient are the float32 CPU run's (on the same
// bf16-rounded values) rounded to bfloat16, exactly.
TEST(CudaBf16Dropout, SameMaskAsFloat32ForTheSameGenerator) {
  REQUIRE_GPU();
  im::Generator data(414);
  const std::vector<im::Shape> shapes = {{1}, {7}, {33, 257}, {4, 3, 1000}, {1000003}};
  for (const im::Shape& shape : shapes) {
    const Tensor x = bf16_rounded(im::randn(shape, data));
    for (double p : {0.1, 0.5, 0.9}) {
      for (int which = 0; which < 4; ++which) {
        if (which == 3 && shape.size() < 2) continue;
        im::Generator cpu_gen(31), gpu_gen(31);
        const std::string what = std::string(which == 0   ? "dropout"
                                             : which == 1 ? "drop_path"
                                             : which == 2 ? "drop_path(batch slice)"
                                                          : "dropout(transposed)") +
                                 " " + im::shape_str(shape) + " p " + std::to_string(p);
        auto run = [&](const Tensor& t, im::Generator& gen) {
          if (which == 0) return im::dropout(t, p, gen);
          if (which == 1) return im::drop_path(t, p, gen);
          // These samples are [2, 2 + B) of a global batch of B + 5.
          if (which == 2) return im::drop_path(t, p, gen, 2, t.size(0) + 5);
          return im::dropout(t.transpose(0, 1), p, gen);
        };
        const Tensor xc = leaf_on(x, Device::cpu());
        const Tensor xg = leaf_on(as_bf16(x), Device::cuda());
        const Tensor yc = run(xc, cpu_gen), yg = run(xg, gpu_gen);
        ASSERT_TRUE(yg.device().is_cuda()) << what;
        ASSERT_EQ(yg.dtype(), DType::BFloat16) << what;
        EXPECT_EQ(widened(yg).to_vector<double>(), bf16_rounded(yc).to_vector<double>()) << what;
        EXPECT_EQ(gpu_gen.state(), cpu_gen.state()) << what;
        const Tensor w = bf16_rounded(im::randn(yc.shape(), data));
        yc.backward(w);
        yg.backward(bf16_on_gpu(w));
        ASSERT_TRUE(xg.grad().defined()) << what;
        EXPECT_EQ(xg.grad().dtype(), DType::BFloat16) << what;
        EXPECT_EQ(widened(xg.grad()).to_vector<double>(),
                  bf16_rounded(xc.grad()).to_vector<double>())
            << what;
      }
    }
  }
}

TEST(CudaBf16Dropout, DroppedInfinitiesBecomeZero) {
  REQUIRE_GPU();
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor x = bf16_on_gpu(Tensor::full({4097}, inf));
  im::Generator gen(5);
  const Tensor y = im::dropout(x, 0.5, gen);
  ASSERT_EQ(y.dtype(), DType::BFloat16);
  int64_t kept = 0, dropped = 0;
  for (double v : widened(y).to_vector<double>()) {
    ASSERT_FALSE(std::isnan(v));
    if (v == 0) {
      ++dropped;
    } else {
      ASSERT_EQ(v, inf);
      ++kept;
    }
  }
  // About half each way (a 4097-draw binomial is within +-300 of 2048 almost surely).
  EXPECT_GT(kept, 1700);
  EXPECT_GT(dropped, 1700);
}

// A bfloat16 draw on the GPU is the float32 draw of the same generator state rounded to
// bfloat16, and consumes the same words.
TEST(CudaBf16Random, DrawsAreTheFloat32DrawsRounded) {
  REQUIRE_GPU();
  im::Generator cpu_gen(77), gpu_gen(77);
  im::rand_uniform({5}, cpu_gen);  // advance both to a non-zero offset
  im::rand_uniform({5}, gpu_gen);
  const Tensor a = im::rand_uniform({1001, 3}, cpu_gen, -2, 5);
  const Tensor b = im::rand_uniform({1001, 3}, gpu_gen, -2, 5, DType::BFloat16, Device::cuda());
  ASSERT_TRUE(b.device().is_cuda());
  ASSERT_EQ(b.dtype(), DType::BFloat16);
  EXPECT_EQ(widened(b).to_vector<double>(), bf16_rounded(a).to_vector<double>());

  const Tensor n_cpu = bf16_rounded(im::randn({4097}, cpu_gen));
  const Tensor n_gpu = im::randn({4097}, gpu_gen, DType::BFloat16, Device::cuda());
  ASSERT_EQ(n_gpu.dtype(), DType::BFloat16);
  // Same uniforms, but log/cos may differ by an ulp between libm and CUDA's math library,
  // which on rare ties moves the bfloat16 result by one bfloat16 ulp (2^-7 relative).
  const auto want = n_cpu.to_vector<double>();
  const auto got = widened(n_gpu).to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_LE(std::abs(got[i] - want[i]), std::ldexp(std::abs(want[i]), -7)) << "element " << i;
  EXPECT_EQ(cpu_gen.state(), gpu_gen.state());
}

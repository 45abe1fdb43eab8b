// bfloat16 elementwise ops, reductions and cumsum on the GPU against the float32 CPU
// reference run on the same bf16-rounded inputs (tests/gpu_test_support.h): outputs and
// input gradients, through every path the launchers pick (16-byte packs and their tails,
// misaligned views, broadcast and strided layouts, a scalar operand; warp, block and
// segmented row reductions, column sums; single-pass and chunked scans). bfloat16 on the
// CPU is an error, checked without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/expect_error.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::bf16_rounded;
using im::testing::expect_op_matches_cpu_bf16;
using im::testing::kBf16Tolerance;
using im::testing::leaf_on;
using im::testing::rel_error;

namespace {

using UnaryFn = std::function<Tensor(const Tensor&)>;
using BinaryFn = std::function<Tensor(const Tensor&, const Tensor&)>;

// Elements where a bfloat16 GPU result (widened) differs from the float32 CPU result
// rounded once to bfloat16. Ops whose float math is correctly rounded on both devices
// (+, -, *, /) must give none: the GPU computes the same float and rounds it the same way.
int64_t mismatches_after_rounding(const Tensor& gpu_bf16, const Tensor& cpu_float) {
  const auto g = gpu_bf16.to(DType::Float32).to_vector<float>();
  const auto c = bf16_rounded(cpu_float).to_vector<float>();
  EXPECT_EQ(g.size(), c.size());
  int64_t bad = 0;
  for (size_t i = 0; i < g.size() && i < c.size(); ++i) bad += g[i] != c[i];
  return bad;
}

// expect_op_matches_cpu_bf16 for two inputs: `op` runs on float32 CPU leaves holding `a`
// and `b` rounded to bfloat16 and on bfloat16 GPU leaves; the output must equal the CPU's
// rounded once (see mismatches_after_rounding), and both input gradients (from the same
// bf16-rounded upstream gradient, summed back over broadcast dims) must be bfloat16 and
// within kBf16Tolerance. The upstream gradient is positive, in [0.5, 1.5]: a broadcast
// operand's gradient sums products rounded to bfloat16 (2^-9 each), and with positive
// inputs every term has one sign, so no cancellation magnifies that rounding (with random
// signs a sum near 0 over a 0-d operand could exceed the tolerance by chance).
void expect_binary_matches_cpu_bf16(const BinaryFn& op, const Tensor& a, const Tensor& b,
                                    const std::string& what, uint64_t w_seed) {
  const Tensor ra = bf16_rounded(a), rb = bf16_rounded(b);
  const Tensor ac = leaf_on(ra, Device::cpu()), bc = leaf_on(rb, Device::cpu());
  const Tensor ag = leaf_on(ra.to(DType::BFloat16), Device::cuda());
  const Tensor bg = leaf_on(rb.to(DType::BFloat16), Device::cuda());
  const Tensor yc = op(ac, bc), yg = op(ag, bg);
  ASSERT_TRUE(yg.device().is_cuda()) << what;
  ASSERT_EQ(yg.dtype(), DType::BFloat16) << what;
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_EQ(mismatches_after_rounding(yg.detach(), yc.detach()), 0) << what << " forward";
  im::Generator wgen(w_seed);
  const Tensor w = bf16_rounded(im::rand_uniform(yc.shape(), wgen, 0.5, 1.5));
  yc.backward(w);
  yg.backward(w.to(DType::BFloat16).to(Device::cuda()));
  for (const auto& [cpu, gpu, name] : {std::tuple{ac, ag, "a"}, std::tuple{bc, bg, "b"}}) {
    ASSERT_TRUE(gpu.grad().defined()) << what << " grad " << name;
    EXPECT_EQ(gpu.grad().dtype(), DType::BFloat16) << what << " grad " << name;
    EXPECT_LT(rel_error(gpu.grad().to(DType::Float32), cpu.grad()), kBf16Tolerance)
        << what << " backward " << name;
  }
}

struct UnaryCase {
  const char* name;
  UnaryFn op;
  double lo, hi;
};

// Input ranges as in elementwise_test.cpp. The backward of exp, sqrt, rsqrt, tanh and
// sigmoid reads the forward output; for bfloat16 the kernel recomputes it from x in float,
// so saturated tanh and sigmoid (|x| up to 3 and 6 here) stay within kBf16Tolerance (read
// from an 8-bit y, 1 - y^2 and y (1 - y) would be off by up to 13% and 2% in L2).
const std::vector<UnaryCase>& unary_cases() {
  static const std::vector<UnaryCase> cases = {
      {"neg", [](const Tensor& t) { return im::neg(t); }, -3, 3},
      {"exp", [](const Tensor& t) { return im::exp(t); }, -3, 3},
      {"log", [](const Tensor& t) { return im::log(t); }, 0.1, 4},
      {"sqrt", [](const Tensor& t) { return im::sqrt(t); }, 0.1, 4},
      {"rsqrt", [](const Tensor& t) { return im::rsqrt(t); }, 0.1, 4},
      {"abs", [](const Tensor& t) { return im::abs(t); }, -3, 3},
      {"tanh", [](const Tensor& t) { return im::tanh(t); }, -3, 3},
      {"sigmoid", [](const Tensor& t) { return im::sigmoid(t); }, -6, 6},
      {"silu", [](const Tensor& t) { return im::silu(t); }, -6, 6},
      {"gelu_tanh", [](const Tensor& t) { return im::gelu_tanh(t); }, -6, 6},
      {"gelu_erf", [](const Tensor& t) { return im::gelu_erf(t); }, -6, 6},
      // beta 2 and threshold 20: both branches (linear above x = 10) and the scaled log1p.
      {"softplus", [](const Tensor& t) { return im::softplus(t, 2.0, 20.0); }, -30, 30},
      {"pow", [](const Tensor& t) { return im::pow(t, 1.7); }, 0.1, 3},
      {"clamp", [](const Tensor& t) { return im::clamp(t, -2, 3); }, -5, 5},
  };
  return cases;
}

struct ReduceCase {
  im::Shape shape;
  std::vector<int64_t> dims;
  bool keepdim;
};

// Launch shapes as in reduce_test.cpp (rows x cols as the kernel sees them).
const std::vector<ReduceCase> kReduceCases = {
    {{1}, {}, false},               // 1 x 1
    {{7}, {0}, true},               // 1 x 7
    {{3, 1}, {1}, false},           // 3 x 1
    {{65, 33}, {1}, false},         // warp per row
    {{65, 33}, {0}, true},          // leading dim: column sums
    {{3, 257}, {-1}, true},         // warp per row
    {{3, 4099}, {1}, false},        // block per row, split into segments
    {{65, 1025}, {1}, false},       // block per row, just past the warp limit
    {{1, 100003}, {1}, false},      // one long row in many segments
    {{2, 3, 5, 7}, {0, 2}, false},  // non-adjacent, non-last dims
    {{2, 3, 5, 7}, {1, 3}, true},   // keepdim
    {{2, 3, 5, 7}, {1}, false},     // a middle dim
    {{4, 1000, 3}, {0, 1}, false},  // leading dims: column sums split over rows
    {{5000, 7}, {0}, false},        // few columns, many rows
    {{65, 1000}, {}, false},        // everything: one row of 65000
    {{17, 1, 4099}, {2}, false},    // size-1 dim kept
    {{1000, 4099}, {0}, false},     // wide column sums, split over rows
    {{16, 3001}, {0}, false},       // column sums of few rows
    {{17, 3001}, {0}, false},       // just past few rows: the tiled column sums
    {{50000, 3}, {0}, false},       // narrow rows after the permute: lane groups of 4
};

std::string label(const ReduceCase& c) {
  return im::shape_str(c.shape) + " dims " + im::shape_str(c.dims) + (c.keepdim ? " keepdim" : "");
}

}  // namespace

// Runs without a GPU: the CPU kernels are the float32/float64 reference and have no
// bfloat16 path, so every op of this family refuses a CPU bfloat16 tensor with a message
// that names the op and says what to do.
TEST(Bf16ElementwiseReduce, CpuBfloat16TensorsAreRejected) {
  im::Generator gen(501);
  const Tensor x = im::randn({3, 5}, gen).to(DType::BFloat16);
  ASSERT_TRUE(x.device().is_cpu());
  const std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"add", [&] { im::add(x, x); }},
      {"sub", [&] { im::sub(x, x); }},
      {"mul", [&] { im::mul(x, x); }},
      {"div", [&] { im::div(x, x); }},
      {"add", [&] { im::add(x, 0.5); }},
      {"mul", [&] { im::mul(x, 0.5); }},
      {"neg", [&] { im::neg(x); }},
      {"exp", [&] { im::exp(x); }},
      {"tanh", [&] { im::tanh(x); }},
      {"softplus", [&] { im::softplus(x); }},
      {"pow", [&] { im::pow(x, 2.0); }},
      {"clamp", [&] { im::clamp(x, -1, 1); }},
      {"sum", [&] { im::sum(x, {1}); }},
      {"sum", [&] { im::sum(x, {0}); }},  // the column-sum path
      {"sum", [&] { im::mean(x, {1}); }},
      {"max", [&] { im::max(x, {1}); }},
      {"var", [&] { im::var(x, {1}); }},
      {"cumsum", [&] { im::cumsum(x, 1); }},
      {"accumulate_into",
       [&] {
         Tensor dst = x.clone();
         im::accumulate_into(dst, x);
       }},
  };
  for (const auto& [name, call] : calls)
    EXPECT_TRUE(im::testing::throws_error_mentioning(call, {name + ":", "bfloat16", "GPU"}))
        << name;
  for (const auto& c : unary_cases())
    EXPECT_TRUE(im::testing::throws_error_mentioning([&] { c.op(x); }, {"bfloat16"})) << c.name;
}

// Sizes: 1 and 7 (fewer than one pack of 8), 561 and 771 (packs and a tail), 210; then a
// view one element in, whose data is not 16-byte aligned: the one-element path, forward
// and backward.
TEST(CudaBf16Elementwise, UnaryOpsMatchCpuOnPackedTailAndMisalignedPaths) {
  REQUIRE_GPU();
  im::Generator gen(502);
  const std::vector<im::Shape> shapes = {{1}, {7}, {33, 17}, {3, 1, 257}, {2, 3, 5, 7}};
  for (const auto& c : unary_cases()) {
    for (const auto& shape : shapes) {
      const Tensor x = im::rand_uniform(shape, gen, c.lo, c.hi);
      expect_op_matches_cpu_bf16(c.op, x, std::string(c.name) + " " + im::shape_str(shape), 77);
    }
    const Tensor x = im::rand_uniform({33, 17}, gen, c.lo, c.hi);
    const UnaryFn misaligned = [&](const Tensor& t) {
      return c.op(t.reshape({-1}).slice(0, 1, t.numel()));
    };
    expect_op_matches_cpu_bf16(misaligned, x, std::string(c.name) + " misaligned view", 78);
    const UnaryFn strided = [&](const Tensor& t) { return c.op(t.transpose(0, 1)); };
    expect_op_matches_cpu_bf16(strided, x, std::string(c.name) + " transposed view", 79);
  }
}

// The binary launcher merges the dims every operand walks as one, then takes the flat
// kernel (16-byte packs when every run is aligned, else one element per thread) when the
// output and each input are one run or one broadcast element, the strided kernel
// otherwise. Inputs in [0.5, 2] keep div and its gradient well conditioned.
TEST(CudaBf16Elementwise, BinaryOpsMatchCpuOnEveryLayoutTheLauncherDistinguishes) {
  REQUIRE_GPU();
  im::Generator gen(503);
  const im::Shape big = {4, 6, 5, 37};
  const int64_t n = im::shape_numel(big);
  struct Case {
    const char* what;
    im::Shape sa, sb;
    std::function<Tensor(const Tensor&)> va, vb;  // views applied to the leaves
  };
  const auto same = [](const Tensor& t) { return t; };
  const Case cases[] = {
      {"contiguous, 4-d merges to one run", big, big, same, same},
      {"misaligned by one element", big, big,
       [n](const Tensor& t) { return t.reshape({-1}).slice(0, 1, n - 1); },
       [n](const Tensor& t) { return t.reshape({-1}).slice(0, 0, n - 2); }},
      {"odd tail", big, big, [n](const Tensor& t) { return t.reshape({-1}).slice(0, 0, n - 3); },
       [n](const Tensor& t) { return t.reshape({-1}).slice(0, 0, n - 3); }},
      {"fewer elements than a pack", {5}, {5}, same, same},
      {"scalar on the right", big, {}, same, same},
      {"scalar on the left", {}, big, same, same},
      {"row broadcast", big, {37}, same, same},
      {"column broadcast", big, {4, 6, 5, 1}, same, same},
      {"inner dims permuted", big, big, [](const Tensor& t) { return t.transpose(2, 3); },
       [](const Tensor& t) { return t.transpose(2, 3); }},
      {"outer dims permuted, inner run kept", big, big,
       [](const Tensor& t) { return t.transpose(0, 1); },
       [](const Tensor& t) { return t.transpose(0, 1); }},
  };
  const std::pair<const char*, Tensor (*)(const Tensor&, const Tensor&)> ops[] = {
      {"add", &im::add}, {"sub", &im::sub}, {"mul", &im::mul}, {"div", &im::div}};
  for (const Case& c : cases) {
    for (const auto& [name, op] : ops) {
      const Tensor a = im::rand_uniform(c.sa, gen, 0.5, 2), b = im::rand_uniform(c.sb, gen, 0.5, 2);
      expect_binary_matches_cpu_bf16(
          [&](const Tensor& x, const Tensor& y) { return op(c.va(x), c.vb(y)); }, a, b,
          std::string(name) + ", " + c.what, 91);
    }
  }
}

// add/mul with a number take it in float, as PyTorch does: the result is the float32 one
// rounded once. Rounding 1/3 to bfloat16 first (0.333984375) would change some elements,
// which the last check shows this input detects. Contiguous (packs), misaligned, strided
// and 0-d inputs take each path of the kernel.
TEST(CudaBf16Elementwise, ScalarOperandsKeepFloatPrecision) {
  REQUIRE_GPU();
  im::Generator gen(504);
  const Tensor x = bf16_rounded(im::randn({37, 29}, gen));
  const Tensor xg = x.to(DType::BFloat16).to(Device::cuda());
  const int64_t n = x.numel();
  const std::pair<const char*, std::function<Tensor(const Tensor&)>> views[] = {
      {"contiguous", [](const Tensor& t) { return t; }},
      {"misaligned", [n](const Tensor& t) { return t.reshape({-1}).slice(0, 1, n); }},
      {"transposed", [](const Tensor& t) { return t.transpose(0, 1); }},
      {"0-d", [](const Tensor& t) { return t.reshape({-1}).select(0, 5); }},
  };
  for (const double s : {1.0 / 3.0, 0.1, -0.7, 1e-3, 12345.678}) {
    const std::pair<const char*, std::function<Tensor(const Tensor&)>> forms[] = {
        {"add", [s](const Tensor& t) { return im::add(t, s); }},
        {"mul", [s](const Tensor& t) { return im::mul(t, s); }},
        {"minus", [s](const Tensor& t) { return t - s; }},
        {"times on the left", [s](const Tensor& t) { return s * t; }},
    };
    for (const auto& [vname, view] : views) {
      for (const auto& [fname, form] : forms) {
        const Tensor yg = form(view(xg));
        EXPECT_EQ(yg.dtype(), DType::BFloat16);
        EXPECT_EQ(mismatches_after_rounding(yg, form(view(x))), 0)
            << fname << " " << s << " " << vname;
      }
    }
  }
  const double third = 1.0 / 3.0;
  const Tensor pre_rounded = bf16_rounded(Tensor::full({}, third));
  EXPECT_GT(mismatches_after_rounding(im::mul(xg, third), im::mul(x, pre_rounded)), 0)
      << "the input cannot tell a float scalar from a bfloat16 one";
  // Gradients through the scalar forms (mul's backward multiplies by the same number).
  expect_op_matches_cpu_bf16([third](const Tensor& t) { return im::mul(im::add(t, 0.1), third); },
                             x, "mul(add(x, 0.1), 1/3)", 92);
}

// dst += src for gradient accumulation: one float addition rounded once, so the result is
// the float32 CPU one rounded to bfloat16, for a broadcast, a transposed (strided) and a
// same-shape contiguous source.
TEST(CudaBf16Elementwise, AccumulateIntoMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(505);
  const Tensor base = bf16_rounded(im::randn({33, 17}, gen));
  struct Source {
    const char* what;
    Tensor values;
    std::function<Tensor(const Tensor&)> view;  // applied on each device
  };
  const Source sources[] = {
      {"broadcast row", bf16_rounded(im::randn({17}, gen)), [](const Tensor& t) { return t; }},
      {"transposed", bf16_rounded(im::randn({17, 33}, gen)),
       [](const Tensor& t) { return t.transpose(0, 1); }},
      {"same shape", bf16_rounded(im::randn({33, 17}, gen)), [](const Tensor& t) { return t; }},
  };
  for (const Source& src : sources) {
    Tensor dst_cpu = base.clone();
    Tensor dst_gpu = base.to(DType::BFloat16).to(Device::cuda());
    im::accumulate_into(dst_cpu, src.view(src.values));
    im::accumulate_into(dst_gpu, src.view(src.values.to(DType::BFloat16).to(Device::cuda())));
    EXPECT_EQ(dst_gpu.dtype(), DType::BFloat16) << src.what;
    EXPECT_EQ(mismatches_after_rounding(dst_gpu, dst_cpu), 0) << src.what;
  }
}

// A bf16 gradient added into a float32 slot (mixed precision) is widened exactly, so the
// float32 result equals the CPU's float32 sum, for every source layout.
TEST(CudaBf16Elementwise, AccumulateIntoAFloat32SlotWidensExactly) {
  REQUIRE_GPU();
  im::Generator gen(507);
  const Tensor base = im::randn({33, 17}, gen);
  const Tensor row = bf16_rounded(im::randn({17}, gen));
  const Tensor wide = bf16_rounded(im::randn({17, 33}, gen));
  const std::pair<const char*, Tensor> sources[] = {
      {"broadcast row", row},
      {"transposed", wide.transpose(0, 1)},
      {"same shape", wide.transpose(0, 1).contiguous()}};
  for (const auto& [what, src] : sources) {
    Tensor dst_cpu = base.clone();
    Tensor dst_gpu = base.to(Device::cuda());
    im::accumulate_into(dst_cpu, src);
    im::accumulate_into(dst_gpu, src.to(DType::BFloat16).to(Device::cuda()));
    EXPECT_EQ(dst_gpu.dtype(), DType::Float32) << what;
    EXPECT_EQ(rel_error(dst_gpu, dst_cpu), 0.0) << what;
  }
}

// Sums accumulate in float and round once; a mean rounds the sum, then the product with
// 1/n (two roundings, within 2^-8 per element).
TEST(CudaBf16Reduce, SumAndMeanMatchCpuInEveryLaunchShape) {
  REQUIRE_GPU();
  im::Generator gen(506);
  for (const ReduceCase& c : kReduceCases) {
    const Tensor x = im::randn(c.shape, gen);
    expect_op_matches_cpu_bf16([&](const Tensor& t) { return im::sum(t, c.dims, c.keepdim); }, x,
                               "sum " + label(c), 93);
    expect_op_matches_cpu_bf16([&](const Tensor& t) { return im::mean(t, c.dims, c.keepdim); }, x,
                               "mean " + label(c), 93);
  }
  const Tensor x = im::randn({33, 257}, gen);
  expect_op_matches_cpu_bf16([](const Tensor& t) { return im::sum(t.transpose(0, 1), {1}); }, x,
                             "sum of a transposed view", 94);
  expect_op_matches_cpu_bf16([](const Tensor& t) { return im::sum(t.transpose(0, 1), {0}); }, x,
                             "column sum of a transposed view", 94);
}

// The maximum is an input element and its gradient a copy of the upstream one, so both
// match the CPU's exactly when the same element is picked. Values near 1 collide at 8
// bits (steps of 2^-7), so many rows hold ties: the first maximum must win on the GPU as
// on the CPU, in every launch shape (a gradient sent to another tied element would put
// the relative error far above the tolerance).
TEST(CudaBf16Reduce, MaxMatchesCpuIncludingTies) {
  REQUIRE_GPU();
  im::Generator gen(507);
  for (const ReduceCase& c : kReduceCases) {
    const Tensor x = im::randn(c.shape, gen);
    expect_op_matches_cpu_bf16([&](const Tensor& t) { return im::max(t, c.dims, c.keepdim); }, x,
                               "max " + label(c), 95);
  }
  for (int64_t cols : {7, 1000, 4099, 100003}) {
    const Tensor x = im::add(im::mul(im::randn({9, cols}, gen), 0.01), 1.0);
    expect_op_matches_cpu_bf16([](const Tensor& t) { return im::max(t, {1}); }, x,
                               "max with ties, cols " + std::to_string(cols), 96);
  }
}

// Inputs centred near 0 (randn): the backward subtracts the row mean, which a bfloat16
// tensor stores with 8 bits, so a mean far from 0 relative to the spread (randn + 100, as
// reduce_test.cpp uses for float32) would shift every centred value by up to half a
// bfloat16 step of the mean (0.25 at 100), an error of the input's own precision there
// but not one this comparison against exact float32 math can allow.
TEST(CudaBf16Reduce, VarMatchesCpuInEveryLaunchShape) {
  REQUIRE_GPU();
  im::Generator gen(508);
  for (const ReduceCase& c : kReduceCases) {
    int64_t reduced = 1;
    if (c.dims.empty()) {
      reduced = im::shape_numel(c.shape);
    } else {
      for (int64_t d : c.dims)
        reduced *= c.shape[d < 0 ? d + static_cast<int64_t>(c.shape.size()) : d];
    }
    const Tensor x = im::randn(c.shape, gen);
    for (int64_t correction : {0, 1}) {
      if (reduced <= correction) continue;  // NaN on both devices (reduce_test.cpp)
      expect_op_matches_cpu_bf16(
          [&](const Tensor& t) { return im::var(t, c.dims, correction, c.keepdim); }, x,
          "var " + label(c) + " correction " + std::to_string(correction), 97);
    }
  }
}

// Running sums in float, each output rounded once; the backward is the reverse scan.
TEST(CudaBf16Cumsum, MatchesCpuAlongEveryDim) {
  REQUIRE_GPU();
  im::Generator gen(509);
  const std::vector<std::pair<im::Shape, int64_t>> cases = {
      {{1}, 0},
      {{7}, 0},
      {{3, 1000}, 1},
      {{3, 1000}, 0},
      {{2, 33, 5}, 1},
      {{2, 33, 5}, 0},
      {{2, 33, 5}, -1},
      {{65, 4099}, -1},
      {{1, 100003}, 1},
      {{65, 1, 3}, 1},
      {{31, 17}, 0},
      // Scans cut into chunks: few long rows; few columns down a long axis.
      {{5000, 7}, 0},
      {{2, 3000, 40}, 1},
      {{1, 100003}, 0},
      {{3, 70001}, -1},
  };
  for (const auto& [shape, dim] : cases) {
    const Tensor x = im::randn(shape, gen);
    expect_op_matches_cpu_bf16([dim](const Tensor& t) { return im::cumsum(t, dim); }, x,
                               "cumsum " + im::shape_str(shape) + " dim " + std::to_string(dim),
                               98);
  }
  expect_op_matches_cpu_bf16([](const Tensor& t) { return im::cumsum(t, 0); }, im::randn({}, gen),
                             "cumsum 0-d", 98);
  expect_op_matches_cpu_bf16([](const Tensor& t) { return im::cumsum(t.transpose(0, 1), 1); },
                             im::randn({40, 9}, gen), "cumsum of a transposed view", 98);
}

// bfloat16 on the GPU for the selective scan, the causal depthwise conv1d and conv2d.
//
// Each bfloat16 CUDA result is compared with the float32 CPU op run on the same
// bfloat16-rounded inputs and upstream gradient, within kBf16Tolerance: both sides then
// compute from identical numbers in float, so what differs is summation order, the GPU's
// exp2 and the final rounding of each output to bfloat16 (at most 2^-8 relative, about 1e-3
// in relative L2). Checked: the scan's output and every input gradient, both directions,
// with and without the IMF injection, with A and D in bfloat16 or (as the layer passes them)
// in float32, through the op and through the two-problem launch; conv1d with the K <= 8
// one-pass weight-gradient kernel and the long-filter per-tap kernel; conv2d over one GEMM
// chunk and several. Shapes take every branch of the launchers: channel counts that are and
// are not multiples of 8 (16-byte and element-wise tiles), state sizes 4, 5, 8, 12, 16, 32,
// 64 (every state bucket; 8-byte, 16-byte and element-wise Bm/Cm rows), lengths 1, 7, 64,
// 197 (part of a chunk, one chunk, several of both kernels' chunk lengths). bfloat16 on the
// CPU must be an im::Error (that test runs without a GPU too).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/bfloat16.h"
#include "kernels/cuda/selective_scan.h"
#include "tests/expect_error.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::bf16_rounded;
using im::testing::kBf16Tolerance;
using im::testing::leaf_on;
using im::testing::rel_error;

namespace {

namespace gpu = im::kernels::cuda;

// A GPU result widened to float32 on the CPU.
Tensor widened(const Tensor& t) {
  return t.detach().to(Device::cpu()).to(DType::Float32);
}

// A CPU tensor's copy on the GPU in `dtype` (bfloat16 unless said otherwise).
Tensor on_gpu_as(const Tensor& values, DType dtype = DType::BFloat16) {
  return values.detach().to(dtype).to(Device::cuda());
}

// A GPU result (of dtype `dtype`) against the float32 CPU reference within kBf16Tolerance.
void expect_bf16_close(const Tensor& got, const Tensor& want, const std::string& what,
                       DType dtype = DType::BFloat16) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_TRUE(want.defined()) << what;
  EXPECT_TRUE(got.device().is_cuda()) << what;
  EXPECT_EQ(got.dtype(), dtype) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_LT(rel_error(widened(got), want.detach()), kBf16Tolerance) << what;
}

struct Input {
  std::string name;
  Tensor values;  // float32 on the CPU; undefined: the op gets an undefined tensor
  bool with_grad = true;
  DType gpu_dtype = DType::BFloat16;  // float32: a parameter kept in float32 under bf16
};

using MultiOp = std::function<Tensor(const std::vector<Tensor>&)>;

// Runs `op` on float32 CPU tensors holding the inputs rounded to bfloat16 and on GPU tensors
// (bfloat16, or an input's gpu_dtype) holding the same numbers (leaves where with_grad,
// constants otherwise), backpropagates the same bf16-rounded upstream gradient through both
// and compares the output and every wanted input gradient (in its input's dtype).
void expect_matches_cpu_bf16(const MultiOp& op, const std::vector<Input>& inputs,
                             const std::string& what, uint64_t w_seed) {
  std::vector<Tensor> cpu, cuda;
  for (const Input& in : inputs) {
    if (!in.values.defined()) {
      cpu.emplace_back();
      cuda.emplace_back();
      continue;
    }
    const Tensor r = bf16_rounded(in.values);
    cpu.push_back(in.with_grad ? leaf_on(r, Device::cpu()) : r);
    cuda.push_back(in.with_grad ? leaf_on(r.to(in.gpu_dtype), Device::cuda())
                                : on_gpu_as(r, in.gpu_dtype));
  }
  const Tensor yc = op(cpu), yg = op(cuda);
  expect_bf16_close(yg, yc, what + " forward");
  im::Generator wgen(w_seed);
  const Tensor w = bf16_rounded(im::randn(yc.shape(), wgen));
  yc.backward(w);
  yg.backward(on_gpu_as(w));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].values.defined() && inputs[i].with_grad)
      expect_bf16_close(cuda[i].grad(), cpu[i].grad(), what + " d" + inputs[i].name,
                        inputs[i].gpu_dtype);
  }
}

// ---- selective scan ----------------------------------------------------------------------

struct ScanCase {
  int64_t B, L, E, N;
};

std::string describe(const ScanCase& c, bool reverse, bool inject, DType params) {
  return "bf16 scan B=" + std::to_string(c.B) + " L=" + std::to_string(c.L) +
         " E=" + std::to_string(c.E) + " N=" + std::to_string(c.N) + (reverse ? " reverse" : "") +
         (inject ? " inject" : "") + " A,D " + im::dtype_name(params);
}

// u, delta, A, Bm, Cm, D, inject in realistic ranges (delta = softplus(randn), A =
// -exp(randn), the rest randn), float32 on the CPU.
struct ScanInputs {
  Tensor u, delta, A, Bm, Cm, D, inject;
};

ScanInputs scan_inputs(const ScanCase& c, uint64_t seed) {
  im::Generator g(seed);
  auto randn = [&](const Shape& s) { return im::randn(s, g); };
  ScanInputs in;
  in.u = randn({c.B, c.L, c.E});
  in.delta = im::softplus(randn({c.B, c.L, c.E}));
  in.A = im::neg(im::exp(randn({c.E, c.N})));
  in.Bm = randn({c.B, c.L, c.N});
  in.Cm = randn({c.B, c.L, c.N});
  in.D = randn({c.E});
  in.inject = randn({c.B, c.L, c.E});
  return in;
}

// The op on both devices; inject undefined unless `inject`, and a constant (so the
// backward kernel skips dinject) unless `inject_grad`; A and D on the GPU in `params`
// (bfloat16 like the rest, or float32 as the layer keeps them).
void check_scan_op(const ScanCase& c, bool reverse, bool inject, bool inject_grad, DType params,
                   uint64_t seed) {
  const ScanInputs in = scan_inputs(c, seed);
  const std::vector<Input> inputs = {{"u", in.u},
                                     {"delta", in.delta},
                                     {"A", in.A, true, params},
                                     {"Bm", in.Bm},
                                     {"Cm", in.Cm},
                                     {"D", in.D, true, params},
                                     {"inject", inject ? in.inject : Tensor(), inject_grad}};
  const MultiOp op = [reverse](const std::vector<Tensor>& t) {
    return im::selective_scan(t[0], t[1], t[2], t[3], t[4], t[5], t[6], reverse);
  };
  expect_matches_cpu_bf16(op, inputs, describe(c, reverse, inject, params), seed + 1000);
}

// Lengths 1, 7, 64, 197 at a channel count that tiles 16 bytes at a time (40) and one that
// does not (33), N = 16 (16-byte Bm/Cm rows); then every other state bucket: N = 4 (one
// 8-byte copy per row), 5 and 12 (element-wise rows, padded states), 8, 32 and 64 (several
// threads per channel); and E over several blocks of channels with a partial last block.
const ScanCase kScanCases[] = {
    {2, 1, 40, 16}, {2, 7, 40, 16},  {2, 64, 40, 16},  {2, 197, 40, 16}, {2, 1, 33, 16},
    {2, 7, 33, 16}, {2, 64, 33, 16}, {2, 197, 33, 16}, {2, 197, 48, 4},  {3, 64, 16, 5},
    {2, 64, 24, 8}, {2, 64, 8, 12},  {2, 197, 40, 32}, {2, 64, 16, 64},  {1, 197, 200, 16},
};

TEST(CudaBf16Scan, OpForwardAndGradientsMatchCpuBothDirectionsWithAndWithoutInject) {
  REQUIRE_GPU();
  uint64_t seed = 7100;
  for (const ScanCase& c : kScanCases)
    for (DType params : {DType::BFloat16, DType::Float32})
      for (bool reverse : {false, true})
        for (bool inject : {false, true}) check_scan_op(c, reverse, inject, true, params, seed++);
}

// Δ = softplus(delta + b) inside the kernels with a float32 bias (as the layer keeps b_Δ):
// the bf16 kernels compute Δ in float from the bf16 projection.
TEST(CudaBf16Scan, DeltaBiasAndSoftplusInsideTheKernelsMatchCpu) {
  REQUIRE_GPU();
  uint64_t seed = 7300;
  for (const ScanCase& c : {ScanCase{2, 197, 40, 16}, ScanCase{2, 7, 33, 5},
                            ScanCase{1, 197, 200, 16}, ScanCase{2, 64, 16, 64}}) {
    for (bool reverse : {false, true}) {
      const ScanInputs in = scan_inputs(c, seed);
      im::Generator g(seed + 50);
      const Tensor raw = im::randn({c.B, c.L, c.E}, g);
      const Tensor bias = im::rand_uniform({c.E}, g, -4.0, 1.0);
      const std::vector<Input> inputs = {{"u", in.u},
                                         {"delta", raw},
                                         {"A", in.A, true, DType::Float32},
                                         {"Bm", in.Bm},
                                         {"Cm", in.Cm},
                                         {"D", in.D, true, DType::Float32},
                                         {"inject", in.inject},
                                         {"delta_bias", bias, true, DType::Float32}};
      const MultiOp op = [reverse](const std::vector<Tensor>& t) {
        return im::selective_scan(
            t[0], t[1], t[2], t[3], t[4], t[5],
            {.inject = t[6], .delta_bias = t[7], .delta_softplus = true, .reverse = reverse});
      };
      expect_matches_cpu_bf16(op, inputs, describe(c, reverse, true, DType::Float32) + " softplus",
                              seed + 1000);
      ++seed;
    }
  }
}

TEST(CudaBf16Scan, InjectWithoutGradientSkipsDinject) {
  REQUIRE_GPU();
  uint64_t seed = 7200;
  for (bool reverse : {false, true}) {
    check_scan_op({2, 64, 40, 16}, reverse, true, false, DType::Float32, seed++);
    check_scan_op({2, 7, 33, 5}, reverse, true, false, DType::BFloat16, seed++);
  }
}

TEST(CudaBf16Scan, RejectsParametersOfAnotherDtype) {
  REQUIRE_GPU();
  // A and D may be float32 beside bfloat16 activations, nothing else (float64 here).
  const ScanCase c{1, 4, 8, 4};
  const ScanInputs in = scan_inputs(c, 7250);
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] {
        im::selective_scan(on_gpu_as(in.u), on_gpu_as(in.delta), on_gpu_as(in.A, DType::Float64),
                           on_gpu_as(in.Bm), on_gpu_as(in.Cm), on_gpu_as(in.D), Tensor());
      },
      {"selective_scan", "dtype mismatch, A", "must be bfloat16 or float32"}));
}

template <typename T>
T* ptr(const Tensor& t) {
  return t.defined() ? static_cast<T*>(t.data_ptr()) : nullptr;
}

// A GPU buffer of `dtype` shaped like `like`, starting as NaN, so an element a kernel
// forgets to write fails the comparison.
Tensor nan_on_gpu(const Tensor& like, DType dtype = DType::BFloat16) {
  return Tensor::full(like.shape(), NAN).to(dtype).to(Device::cuda());
}

struct ScanRun {
  Tensor y, du, ddelta, dA, dBm, dCm, dD, dinject;
};

// The float32 CPU op on bf16-rounded inputs, backpropagating dy.
ScanRun scan_on_cpu(const ScanInputs& in, bool inject, bool reverse, const Tensor& dy) {
  std::vector<Tensor> l;
  for (const Tensor* t : {&in.u, &in.delta, &in.A, &in.Bm, &in.Cm, &in.D, &in.inject})
    l.push_back(leaf_on(bf16_rounded(*t), Device::cpu()));
  const Tensor y =
      im::selective_scan(l[0], l[1], l[2], l[3], l[4], l[5], inject ? l[6] : Tensor(), reverse);
  y.backward(dy);
  return {y.detach(),  l[0].grad(), l[1].grad(), l[2].grad(),
          l[3].grad(), l[4].grad(), l[5].grad(), inject ? l[6].grad() : Tensor()};
}

// dA and dD in float32 (the kernels' parameter type for bfloat16), the rest bfloat16.
void expect_scan_match(const ScanRun& got, const ScanRun& want, const std::string& what) {
  const std::tuple<const char*, Tensor, Tensor, DType> outputs[] = {
      {"y", got.y, want.y, DType::BFloat16},
      {"du", got.du, want.du, DType::BFloat16},
      {"ddelta", got.ddelta, want.ddelta, DType::BFloat16},
      {"dA", got.dA, want.dA, DType::Float32},
      {"dBm", got.dBm, want.dBm, DType::BFloat16},
      {"dCm", got.dCm, want.dCm, DType::BFloat16},
      {"dD", got.dD, want.dD, DType::Float32},
      {"dinject", got.dinject, want.dinject, DType::BFloat16}};
  for (const auto& [name, g, w, dtype] : outputs) {
    ASSERT_EQ(g.defined(), w.defined()) << name << " " << what;
    if (g.defined()) expect_bf16_close(g, w, std::string(name) + " " + what, dtype);
  }
}

// Forward and backward of both directions (the bidirectional layer's shape, inject in the
// forward direction only, dinject wanted there only) in one launch each, through the
// kernels' multi-problem entries (A, D, dA, dD in float32), against two CPU op runs.
TEST(CudaBf16Scan, TwoDirectionsInOneLaunchMatchTwoCpuRuns) {
  REQUIRE_GPU();
  using bf16 = im::bfloat16;
  const ScanCase c{2, 197, 40, 16};
  ScanInputs gpu_in[2];
  Tensor dy_gpu[2], workspace[2];  // GPU buffers the kernels use: alive until the end
  ScanRun out[2], want[2];
  gpu::ScanProblem<bf16> fwd[2];
  gpu::ScanBackwardProblem<bf16> bwd[2];
  for (int dir = 0; dir < 2; ++dir) {
    const bool reverse = dir == 1, inject = dir == 0;
    const ScanInputs ci = scan_inputs(c, 7300 + dir);
    im::Generator g(7310 + dir);
    const Tensor dy = bf16_rounded(im::randn({c.B, c.L, c.E}, g));
    want[dir] = scan_on_cpu(ci, inject, reverse, dy);

    const DType f32 = DType::Float32;
    gpu_in[dir] = {on_gpu_as(ci.u),     on_gpu_as(ci.delta), on_gpu_as(bf16_rounded(ci.A), f32),
                   on_gpu_as(ci.Bm),    on_gpu_as(ci.Cm),    on_gpu_as(bf16_rounded(ci.D), f32),
                   on_gpu_as(ci.inject)};
    const ScanInputs& gi = gpu_in[dir];
    out[dir] = {nan_on_gpu(ci.u),      nan_on_gpu(ci.u),
                nan_on_gpu(ci.delta),  nan_on_gpu(ci.A, f32),
                nan_on_gpu(ci.Bm),     nan_on_gpu(ci.Cm),
                nan_on_gpu(ci.D, f32), inject ? nan_on_gpu(ci.u) : Tensor()};
    dy_gpu[dir] = on_gpu_as(dy);
    im::kernels::cpu::ScanDims d;
    d.batch = c.B;
    d.len = c.L;
    d.inner = c.E;
    d.state = c.N;
    d.reverse = reverse;
    // The chunk-boundary states and the float sums of dBm, dCm: float32.
    workspace[dir] =
        Tensor::empty({gpu::selective_scan_workspace_elems<bf16>(d)}, f32, Device::cuda());
    const bf16* inj = inject ? ptr<bf16>(gi.inject) : nullptr;
    fwd[dir] = {ptr<bf16>(gi.u),
                ptr<bf16>(gi.delta),
                ptr<float>(gi.A),
                ptr<bf16>(gi.Bm),
                ptr<bf16>(gi.Cm),
                ptr<float>(gi.D),
                inj,
                nullptr,  // no delta bias
                ptr<bf16>(out[dir].y),
                d};
    gpu::ScanBackwardProblem<bf16>& p = bwd[dir];
    p.dy = ptr<bf16>(dy_gpu[dir]);
    p.u = fwd[dir].u;
    p.delta = fwd[dir].delta;
    p.A = fwd[dir].A;
    p.Bm = fwd[dir].Bm;
    p.Cm = fwd[dir].Cm;
    p.D = fwd[dir].D;
    p.inject = inj;
    p.du = ptr<bf16>(out[dir].du);
    p.ddelta = ptr<bf16>(out[dir].ddelta);
    p.dA = ptr<float>(out[dir].dA);
    p.dBm = ptr<bf16>(out[dir].dBm);
    p.dCm = ptr<bf16>(out[dir].dCm);
    p.dD = ptr<float>(out[dir].dD);
    p.dinject = ptr<bf16>(out[dir].dinject);
    p.workspace = ptr<float>(workspace[dir]);
    p.dims = d;
  }
  gpu::selective_scan_multi<bf16>(fwd, 2);
  gpu::selective_scan_backward_multi<bf16>(bwd, 2);
  expect_scan_match(out[0], want[0],
                    describe(c, false, true, DType::Float32) + " (problem 0 of 2)");
  expect_scan_match(out[1], want[1],
                    describe(c, true, false, DType::Float32) + " (problem 1 of 2)");
}

// ---- convolutions --------------------------------------------------------------------------

std::string conv1d_flags(const im::DepthwiseConv1dOptions& opts) {
  return std::string(opts.reverse ? " reverse" : "") + (opts.silu ? " silu" : "");
}

const im::DepthwiseConv1dOptions kConv1dFlags[] = {
    {.reverse = false, .silu = false},
    {.reverse = true, .silu = false},
    {.reverse = false, .silu = true},
    {.reverse = true, .silu = true},
};

TEST(CudaBf16Conv, CausalDepthwiseConv1dMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(7400);
  uint64_t seed = 7410;
  for (const im::DepthwiseConv1dOptions& opts : kConv1dFlags) {
    for (int64_t channels : {1, 7, 33, 256}) {  // 256: the 8-channel (16-byte) accesses
      for (int64_t len : {1, 5, 197}) {
        for (int64_t ksize : {3, 4, 9}) {  // 3, 4: the one-pass kernels; 9: long filters
          for (bool with_bias : {true, false}) {
            const int64_t batch = len == 197 ? 2 : 3;
            const std::vector<Input> inputs = {
                {"x", im::randn({batch, len, channels}, gen)},
                {"w", im::randn({channels, ksize}, gen)},
                {"bias", with_bias ? im::randn({channels}, gen) : Tensor()}};
            const MultiOp op = [opts](const std::vector<Tensor>& t) {
              return im::causal_depthwise_conv1d(t[0], t[1], t[2], opts);
            };
            expect_matches_cpu_bf16(
                op, inputs,
                "bf16 conv1d C=" + std::to_string(channels) + " L=" + std::to_string(len) +
                    " K=" + std::to_string(ksize) + (with_bias ? " bias" : "") + conv1d_flags(opts),
                seed++);
          }
        }
      }
    }
  }
}

TEST(CudaBf16Conv, CausalDepthwiseConv1dOnRowStridedViewMatchesCpu) {
  REQUIRE_GPU();
  // x = one half of a [B, L, 2C] projection, as the mixer passes u: read in place (rows 2C
  // apart; the second half of 7 channels is misaligned, element-wise path). The gradient
  // is compared on the whole base tensor (zero in the other half).
  im::Generator gen(7450);
  uint64_t seed = 7460;
  for (const im::DepthwiseConv1dOptions& opts : kConv1dFlags) {
    for (int64_t channels : {7, 768}) {
      for (int64_t half : {0, 1}) {
        for (int64_t len : {5, 197}) {
          const std::vector<Input> inputs = {{"x", im::randn({3, len, 2 * channels}, gen)},
                                             {"w", im::randn({channels, 4}, gen)},
                                             {"bias", im::randn({channels}, gen)}};
          const MultiOp op = [opts, channels, half](const std::vector<Tensor>& t) {
            return im::causal_depthwise_conv1d(
                t[0].slice(2, half * channels, (half + 1) * channels), t[1], t[2], opts);
          };
          expect_matches_cpu_bf16(op, inputs,
                                  "bf16 conv1d strided C=" + std::to_string(channels) + " half " +
                                      std::to_string(half) + " L=" + std::to_string(len) +
                                      conv1d_flags(opts),
                                  seed++);
        }
      }
    }
  }
}

TEST(CudaBf16Conv, CausalDepthwiseConv1dWeightGradientsAloneMatchCpu) {
  REQUIRE_GPU();
  // x a constant: no dx, only the weight (and bias) sums, one-pass and long-filter kernels.
  im::Generator gen(7500);
  for (const im::DepthwiseConv1dOptions& opts : kConv1dFlags) {
    for (int64_t ksize : {4, 9}) {
      const std::vector<Input> inputs = {{"x", im::randn({4, 301, 65}, gen), false},
                                         {"w", im::randn({65, ksize}, gen)},
                                         {"bias", im::randn({65}, gen)}};
      const MultiOp op = [opts](const std::vector<Tensor>& t) {
        return im::causal_depthwise_conv1d(t[0], t[1], t[2], opts);
      };
      expect_matches_cpu_bf16(op, inputs,
                              "bf16 conv1d dw only K=" + std::to_string(ksize) + conv1d_flags(opts),
                              7510 + ksize);
    }
  }
}

struct Conv2dCase {
  int64_t batch, cin, h, w, cout, kh, kw, stride, padding;
};

void check_conv2d(const Conv2dCase& c, bool with_bias, im::Generator& gen, uint64_t w_seed) {
  const std::vector<Input> inputs = {{"x", im::randn({c.batch, c.cin, c.h, c.w}, gen)},
                                     {"w", im::randn({c.cout, c.cin, c.kh, c.kw}, gen)},
                                     {"bias", with_bias ? im::randn({c.cout}, gen) : Tensor()}};
  const MultiOp op = [c](const std::vector<Tensor>& t) {
    return im::conv2d(t[0], t[1], t[2], c.stride, c.padding);
  };
  expect_matches_cpu_bf16(op, inputs,
                          "bf16 conv2d x " + im::shape_str(inputs[0].values.shape()) + " w " +
                              im::shape_str(inputs[1].values.shape()) + " stride " +
                              std::to_string(c.stride) + " padding " + std::to_string(c.padding) +
                              (with_bias ? " bias" : ""),
                          w_seed);
}

TEST(CudaBf16Conv, Conv2dMatchesCpu) {
  REQUIRE_GPU();
  const Conv2dCase cases[] = {
      {2, 3, 7, 9, 5, 3, 3, 1, 0},   // odd H and W
      {2, 3, 7, 9, 5, 3, 3, 1, 1},   // padding 1
      {3, 2, 11, 8, 4, 3, 2, 2, 0},  // stride 2, non-square kernel
      {3, 2, 11, 8, 4, 3, 3, 2, 1},  // stride 2, padding 1
      // Kernel = input: one output pixel per sample. 8 samples x 3 channels, because the GEMM
      // result W x is rounded to bfloat16 before the bias is added: the error of one output
      // is relative to |W x|, so a lone output that nearly cancels with its bias would have
      // an arbitrarily large relative error; over 24 outputs the L2 ratio stays ~2e-3.
      {8, 1, 5, 5, 3, 5, 5, 1, 0},
      {2, 4, 9, 13, 3, 1, 1, 1, 0},    // 1x1
      {2, 3, 8, 7, 2, 2, 2, 3, 1},     // stride > kernel: some input pixels feed nothing
      {4, 3, 32, 32, 16, 4, 4, 4, 0},  // the patch embedding: 3x32x32, patch 4
  };
  im::Generator gen(7600);
  uint64_t seed = 7610;
  for (const Conv2dCase& c : cases)
    for (bool with_bias : {true, false}) check_conv2d(c, with_bias, gen, seed++);
}

TEST(CudaBf16Conv, Conv2dOverSeveralGemmChunksMatchesCpu) {
  REQUIRE_GPU();
  // 256x256 images, 3x3 kernel, padding 1: the 2^25-element workspace holds 14 samples, so
  // a batch of 16 takes two chunks and dw is summed over them in float (each dw element sums
  // ~10^6 products: float32 on the CPU is ~1e-5 off at worst, far inside kBf16Tolerance).
  im::Generator gen(7700);
  check_conv2d({16, 3, 256, 256, 8, 3, 3, 1, 1}, true, gen, 7710);
}

}  // namespace

// ---- bfloat16 on the CPU ---------------------------------------------------------------------

// No GPU needed: the CPU kernels are the float32/float64 reference and refuse bfloat16.
TEST(CudaBf16ScanConv, BFloat16OnTheCpuIsAnError) {
  im::Generator g(7800);
  auto bf16 = [&](const Shape& s) { return im::randn(s, g).to(DType::BFloat16); };
  const Tensor u = bf16({2, 5, 3}), delta = bf16({2, 5, 3}), A = bf16({3, 4});
  const Tensor Bm = bf16({2, 5, 4}), Cm = bf16({2, 5, 4}), D = bf16({3});
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] { im::selective_scan(u, delta, A, Bm, Cm, D, Tensor()); },
      {"selective_scan", "bfloat16"}));
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] {
        im::causal_depthwise_conv1d(u, bf16({3, 4}), Tensor());
      },
      {"causal_depthwise_conv1d", "bfloat16"}));
  EXPECT_TRUE(im::testing::throws_error_mentioning(
      [&] {
        im::conv2d(bf16({1, 2, 5, 5}), bf16({3, 2, 3, 3}), Tensor(), 1, 0);
      },
      {"conv2d", "bfloat16"}));
}

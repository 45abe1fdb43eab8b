// CUDA convolutions against the CPU reference: causal depthwise conv1d and conv2d,
// forward and every gradient, on fresh random inputs with odd sizes (channels 1, 7, 33,
// 257; lengths 1, 5, 197; kernels longer than the sequence; conv2d with odd H/W, stride 1
// and 2, padding 0 and 1, a stride larger than the kernel, the 3x32x32 patch-4 embedding,
// and a batch large enough to be cut into several GEMM chunks); conv1d also anti-causal,
// with the fused SiLU and on a row-strided view. Skipped without a GPU.
#include <gtest/gtest.h>

#include <string>

#include "core/ops.h"
#include "core/rng.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::float_tolerance;
using im::testing::leaf_on;
using im::testing::rel_error;

TEST(CudaConv, CausalDepthwiseConv1dForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(201);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t channels : {1, 7, 33, 257}) {
      for (int64_t len : {1, 5, 197}) {
        for (int64_t ksize : {1, 4, 7, 9}) {  // 9: longer than the one-pass kernel's window
          for (bool with_bias : {true, false}) {
            const int64_t batch = len == 197 ? 2 : 3;
            const Tensor x = im::randn({batch, len, channels}, gen, dt);
            const Tensor w = im::randn({channels, ksize}, gen, dt);
            const Tensor b = with_bias ? im::randn({channels}, gen, dt) : Tensor();
            const Device cpu = Device::cpu(), cuda = Device::cuda();
            const Tensor xc = leaf_on(x, cpu), wc = leaf_on(w, cpu), xg = leaf_on(x, cuda),
                         wg = leaf_on(w, cuda);
            const Tensor bc = with_bias ? leaf_on(b, cpu) : Tensor();
            const Tensor bg = with_bias ? leaf_on(b, cuda) : Tensor();
            const Tensor yc = im::causal_depthwise_conv1d(xc, wc, bc);
            const Tensor yg = im::causal_depthwise_conv1d(xg, wg, bg);
            const std::string what = std::string(im::dtype_name(dt)) +
                                     " C=" + std::to_string(channels) +
                                     " L=" + std::to_string(len) + " K=" + std::to_string(ksize) +
                                     (with_bias ? " bias" : "");
            EXPECT_LT(rel_error(yg, yc), float_tolerance(dt)) << what;
            const Tensor g = im::randn(yc.shape(), gen, dt);
            yc.backward(g);
            yg.backward(g.to(cuda));
            EXPECT_LT(rel_error(xg.grad(), xc.grad()), float_tolerance(dt)) << "dx " << what;
            EXPECT_LT(rel_error(wg.grad(), wc.grad()), float_tolerance(dt)) << "dw " << what;
            if (with_bias) {
              EXPECT_LT(rel_error(bg.grad(), bc.grad()), float_tolerance(dt)) << "db " << what;
            }
          }
        }
      }
    }
  }
}

TEST(CudaConv, CausalDepthwiseConv1dWeightGradientAloneMatchesCpu) {
  REQUIRE_GPU();
  // Only dw wanted (x and bias constants): the kernels skip dx and dbias.
  im::Generator gen(202);
  const Tensor x = im::randn({4, 301, 65}, gen, DType::Float64);
  const Tensor w = im::randn({65, 4}, gen, DType::Float64);
  const Tensor b = im::randn({65}, gen, DType::Float64);
  const Tensor wc = leaf_on(w, Device::cpu()), wg = leaf_on(w, Device::cuda());
  const Tensor yc = im::causal_depthwise_conv1d(x, wc, b);
  const Tensor yg = im::causal_depthwise_conv1d(x.to(Device::cuda()), wg, b.to(Device::cuda()));
  const Tensor g = im::randn(yc.shape(), gen, DType::Float64);
  yc.backward(g);
  yg.backward(g.to(Device::cuda()));
  EXPECT_LT(rel_error(wg.grad(), wc.grad()), 1e-10);
}

namespace {

// x contiguous, or (strided) the second half of a [B, L, 2C] tensor: rows 2C apart, the
// mixer's u. Forward and every gradient (x's through the base tensor) against the CPU.
void check_conv1d(DType dt, int64_t batch, int64_t len, int64_t channels, int64_t ksize,
                  bool with_bias, im::DepthwiseConv1dOptions opts, bool strided,
                  im::Generator& gen) {
  const Tensor base = im::randn({batch, len, strided ? 2 * channels : channels}, gen, dt);
  const Tensor w = im::randn({channels, ksize}, gen, dt);
  const Tensor b = with_bias ? im::randn({channels}, gen, dt) : Tensor();
  const Device cpu = Device::cpu(), cuda = Device::cuda();
  const Tensor basec = leaf_on(base, cpu), baseg = leaf_on(base, cuda);
  const Tensor wc = leaf_on(w, cpu), wg = leaf_on(w, cuda);
  const Tensor bc = leaf_on(b, cpu), bg = leaf_on(b, cuda);
  auto x_of = [&](const Tensor& t) { return strided ? t.slice(2, channels, 2 * channels) : t; };
  const Tensor yc = im::causal_depthwise_conv1d(x_of(basec), wc, bc, opts);
  const Tensor yg = im::causal_depthwise_conv1d(x_of(baseg), wg, bg, opts);
  const std::string what = std::string(im::dtype_name(dt)) + " B=" + std::to_string(batch) +
                           " L=" + std::to_string(len) + " C=" + std::to_string(channels) +
                           " K=" + std::to_string(ksize) + (with_bias ? " bias" : "") +
                           (opts.reverse ? " reverse" : "") + (opts.silu ? " silu" : "") +
                           (strided ? " strided" : "");
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_LT(rel_error(yg, yc), float_tolerance(dt)) << what;
  const Tensor g = im::randn(yc.shape(), gen, dt);
  yc.backward(g);
  yg.backward(g.to(cuda));
  EXPECT_LT(rel_error(baseg.grad(), basec.grad()), float_tolerance(dt)) << "dx " << what;
  EXPECT_LT(rel_error(wg.grad(), wc.grad()), float_tolerance(dt)) << "dw " << what;
  if (with_bias) {
    EXPECT_LT(rel_error(bg.grad(), bc.grad()), float_tolerance(dt)) << "db " << what;
  }
}

const im::DepthwiseConv1dOptions kConv1dFlags[] = {
    {.reverse = false, .silu = false},
    {.reverse = true, .silu = false},
    {.reverse = false, .silu = true},
    {.reverse = true, .silu = true},
};

}  // namespace

TEST(CudaConv, CausalDepthwiseConv1dReverseAndSiluMatchCpu) {
  REQUIRE_GPU();
  // Every flag combination; channel counts that do (40, 768) and do not (1, 7) allow the
  // vector accesses; K = 9 takes the long-filter kernels; the strided view's second half
  // is misaligned for 7 channels (element-wise path) and aligned for 40 and 768.
  im::Generator gen(205);
  for (DType dt : {DType::Float32, DType::Float64})
    for (const im::DepthwiseConv1dOptions& opts : kConv1dFlags)
      for (int64_t channels : {1, 7, 40, 768})
        for (int64_t len : {1, 5, 197})
          for (int64_t ksize : {1, 3, 4, 9})
            for (bool strided : {false, true})
              check_conv1d(dt, 3, len, channels, ksize, /*with_bias=*/ksize != 3, opts, strided,
                           gen);
}

TEST(CudaConv, CausalDepthwiseConv1dManyChunksPerThreadMatchesCpu) {
  REQUIRE_GPU();
  // 96 sequences of 197 steps: more chunks than the backward's threads, so each walks two.
  im::Generator gen(206);
  for (const im::DepthwiseConv1dOptions& opts : kConv1dFlags)
    check_conv1d(DType::Float32, 96, 197, 64, 4, true, opts, true, gen);
}

TEST(CudaConv, CausalDepthwiseConv1dPartialGradientsMatchCpu) {
  REQUIRE_GPU();
  // x a constant (no dx), or w and bias constants (dx only), with SiLU and reverse.
  im::Generator gen(207);
  const Device cpu = Device::cpu(), cuda = Device::cuda();
  for (int64_t ksize : {4, 9}) {
    const Tensor x = im::randn({3, 197, 40}, gen, DType::Float32);
    const Tensor w = im::randn({40, ksize}, gen, DType::Float32);
    const Tensor b = im::randn({40}, gen, DType::Float32);
    const Tensor g = im::randn({3, 197, 40}, gen, DType::Float32);
    const im::DepthwiseConv1dOptions opts{.reverse = true, .silu = true};
    const std::string what = "K=" + std::to_string(ksize);
    {
      const Tensor wc = leaf_on(w, cpu), wg = leaf_on(w, cuda);
      const Tensor bc = leaf_on(b, cpu), bg = leaf_on(b, cuda);
      im::causal_depthwise_conv1d(x, wc, bc, opts).backward(g);
      im::causal_depthwise_conv1d(x.to(cuda), wg, bg, opts).backward(g.to(cuda));
      EXPECT_LT(rel_error(wg.grad(), wc.grad()), 1e-5) << "dw alone " << what;
      EXPECT_LT(rel_error(bg.grad(), bc.grad()), 1e-5) << "db alone " << what;
    }
    {
      const Tensor xc = leaf_on(x, cpu), xg = leaf_on(x, cuda);
      im::causal_depthwise_conv1d(xc, w, b, opts).backward(g);
      im::causal_depthwise_conv1d(xg, w.to(cuda), b.to(cuda), opts).backward(g.to(cuda));
      EXPECT_LT(rel_error(xg.grad(), xc.grad()), 1e-5) << "dx alone " << what;
    }
  }
}

namespace {

struct Conv2dCase {
  int64_t batch, cin, h, w, cout, kh, kw, stride, padding;
};

const Conv2dCase kConv2dCases[] = {
    {2, 3, 7, 9, 5, 3, 3, 1, 0},     // odd H and W
    {2, 3, 7, 9, 5, 3, 3, 1, 1},     // padding 1
    {3, 2, 11, 8, 4, 3, 2, 2, 0},    // stride 2, non-square kernel
    {3, 2, 11, 8, 4, 3, 3, 2, 1},    // stride 2, padding 1
    {1, 1, 5, 5, 1, 5, 5, 1, 0},     // kernel = input: one output pixel
    {2, 4, 9, 13, 3, 1, 1, 1, 0},    // 1x1
    {2, 3, 8, 7, 2, 2, 2, 3, 1},     // stride > kernel: some input pixels feed nothing
    {4, 3, 32, 32, 16, 4, 4, 4, 0},  // the patch embedding: 3x32x32, patch 4
};

void check_conv2d(const Conv2dCase& c, DType dt, bool with_bias, im::Generator& gen) {
  const Tensor x = im::randn({c.batch, c.cin, c.h, c.w}, gen, dt);
  const Tensor w = im::randn({c.cout, c.cin, c.kh, c.kw}, gen, dt);
  const Tensor b = with_bias ? im::randn({c.cout}, gen, dt) : Tensor();
  const Device cpu = Device::cpu(), cuda = Device::cuda();
  const Tensor xc = leaf_on(x, cpu), wc = leaf_on(w, cpu), xg = leaf_on(x, cuda),
               wg = leaf_on(w, cuda);
  const Tensor bc = with_bias ? leaf_on(b, cpu) : Tensor();
  const Tensor bg = with_bias ? leaf_on(b, cuda) : Tensor();
  const Tensor yc = im::conv2d(xc, wc, bc, c.stride, c.padding);
  const Tensor yg = im::conv2d(xg, wg, bg, c.stride, c.padding);
  const std::string what = std::string(im::dtype_name(dt)) + " x " + im::shape_str(x.shape()) +
                           " w " + im::shape_str(w.shape()) + " stride " +
                           std::to_string(c.stride) + " padding " + std::to_string(c.padding) +
                           (with_bias ? " bias" : "");
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_LT(rel_error(yg, yc), float_tolerance(dt)) << what;
  const Tensor g = im::randn(yc.shape(), gen, dt);
  yc.backward(g);
  yg.backward(g.to(cuda));
  EXPECT_LT(rel_error(xg.grad(), xc.grad()), float_tolerance(dt)) << "dx " << what;
  EXPECT_LT(rel_error(wg.grad(), wc.grad()), float_tolerance(dt)) << "dw " << what;
  if (with_bias) {
    EXPECT_LT(rel_error(bg.grad(), bc.grad()), float_tolerance(dt)) << "db " << what;
  }
}

}  // namespace

TEST(CudaConv, Conv2dForwardAndBackwardMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(203);
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Conv2dCase& c : kConv2dCases)
      for (bool with_bias : {true, false}) check_conv2d(c, dt, with_bias, gen);
}

TEST(CudaConv, Conv2dOverSeveralGemmChunksMatchesCpu) {
  REQUIRE_GPU();
  // 256x256 images, 3x3 kernel, padding 1: 65536 pixels x (27 + 8) per sample, so the
  // 2^25-element workspace holds 14 samples and a batch of 16 takes two chunks (14 + 2).
  // float64 only: dw sums ~10^6 products per element, beyond float32's 1e-5 on either
  // device (the chunking does not depend on the dtype).
  im::Generator gen(204);
  check_conv2d({16, 3, 256, 256, 8, 3, 3, 1, 1}, DType::Float64, true, gen);
}

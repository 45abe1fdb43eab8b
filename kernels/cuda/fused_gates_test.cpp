// CUDA fused gates (gated_fusion, sigmoid_gate) against the CPU kernels: the output and the
// gradient of every input, float32 within 1e-5 and float64 within 1e-10 (relative L2), and
// bfloat16 against the float32 CPU op on the same bf16-rounded inputs within kBf16Tolerance.
// Sizes take both access widths (16-byte packs and single elements) and both ways of summing
// the parameter gradients (one row segment, and partial sums added by a second kernel); z and
// pre are read in place from a [.., 2E] tensor, aligned and not. Skipped without a GPU.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"
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

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// f on CPU leaves and on GPU leaves holding `values` (float32 or float64), then backward
// from the same random upstream gradient: output and every gradient compared.
void expect_gpu_matches_cpu(const Fn& f, const std::vector<Tensor>& values,
                            const std::string& what) {
  const DType dt = values[0].dtype();
  const double tol = float_tolerance(dt);
  std::vector<Tensor> c, g;
  for (const Tensor& v : values) {
    c.push_back(leaf_on(v, Device::cpu()));
    g.push_back(leaf_on(v, Device::cuda()));
  }
  const Tensor yc = f(c), yg = f(g);
  ASSERT_TRUE(yg.device().is_cuda()) << what;
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_LT(rel_error(yg.detach(), yc.detach()), tol) << what << " forward";
  im::Generator wgen(555);
  const Tensor w = im::randn(yc.shape(), wgen, dt);
  yc.backward(w);
  yg.backward(w.to(Device::cuda()));
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_TRUE(c[i].grad().defined()) << what << " input " << i;
    ASSERT_TRUE(g[i].grad().defined()) << what << " input " << i;
    EXPECT_TRUE(g[i].grad().device().is_cuda()) << what << " input " << i;
    EXPECT_LT(rel_error(g[i].grad(), c[i].grad()), tol) << what << " grad of input " << i;
  }
}

// The same for bfloat16: f on bfloat16 GPU leaves against f on float32 CPU leaves holding
// the same bf16-rounded values; the upstream gradient is bf16-rounded too.
void expect_gpu_matches_cpu_bf16(const Fn& f, const std::vector<Tensor>& values,
                                 const std::string& what) {
  std::vector<Tensor> c, g;
  for (const Tensor& v : values) {
    const Tensor r = bf16_rounded(v);
    c.push_back(leaf_on(r, Device::cpu()));
    g.push_back(leaf_on(r.to(DType::BFloat16), Device::cuda()));
  }
  const Tensor yc = f(c), yg = f(g);
  ASSERT_TRUE(yg.device().is_cuda()) << what;
  ASSERT_EQ(yg.dtype(), DType::BFloat16) << what;
  ASSERT_EQ(yg.shape(), yc.shape()) << what;
  EXPECT_LT(rel_error(yg.detach().to(DType::Float32), yc.detach()), kBf16Tolerance)
      << what << " forward";
  im::Generator wgen(556);
  const Tensor w = bf16_rounded(im::randn(yc.shape(), wgen, DType::Float32));
  yc.backward(w);
  yg.backward(w.to(DType::BFloat16).to(Device::cuda()));
  for (size_t i = 0; i < values.size(); ++i) {
    ASSERT_TRUE(c[i].grad().defined()) << what << " input " << i;
    ASSERT_TRUE(g[i].grad().defined()) << what << " input " << i;
    EXPECT_EQ(g[i].grad().dtype(), DType::BFloat16) << what << " input " << i;
    EXPECT_LT(rel_error(g[i].grad().to(DType::Float32), c[i].grad()), kBf16Tolerance)
        << what << " grad of input " << i;
  }
}

// Runs the check for every dtype: float32 and float64 against themselves on the CPU,
// bfloat16 against float32. `values` are drawn in float64.
void expect_all_dtypes(const Fn& f, const std::vector<Tensor>& values, const std::string& what) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    std::vector<Tensor> v;
    for (const Tensor& x : values) v.push_back(x.to(dt));
    expect_gpu_matches_cpu(f, v, what + " " + im::dtype_name(dt));
  }
  std::vector<Tensor> v;
  for (const Tensor& x : values) v.push_back(x.to(DType::Float32));
  expect_gpu_matches_cpu_bf16(f, v, what + " bfloat16");
}

struct Streams {
  int ys;
  bool g, ah, ag;
  std::string name() const {
    return std::to_string(ys) + " ys" + (g ? " + g" : "") + (ah ? " alpha_h" : "") +
           (ag ? " alpha_g" : "");
  }
};

const std::vector<Streams>& stream_configs() {
  static const std::vector<Streams> c = {
      {2, true, true, true},   {1, true, true, true},  {2, false, true, false},
      {1, false, true, false}, {0, true, false, true}, {1, false, false, false},
  };
  return c;
}

// Inputs y0, y1, g, z, alpha_h, alpha_g (absent ones left out), float64.
std::vector<Tensor> fusion_values(const Streams& c, const Shape& shape, uint64_t seed) {
  im::Generator gen(seed);
  std::vector<Tensor> v;
  for (int i = 0; i < c.ys; ++i) v.push_back(im::randn(shape, gen, DType::Float64));
  if (c.g) v.push_back(im::randn(shape, gen, DType::Float64));
  v.push_back(im::rand_uniform(shape, gen, -4, 4, DType::Float64));
  if (c.ah) v.push_back(im::rand_uniform({shape.back()}, gen, 0.5, 1.5, DType::Float64));
  if (c.ag) v.push_back(im::randn({shape.back()}, gen, DType::Float64));
  return v;
}

Fn fusion_fn(const Streams& c) {
  return [c](const std::vector<Tensor>& in) {
    size_t k = 0;
    std::vector<Tensor> ys;
    for (int i = 0; i < c.ys; ++i) ys.push_back(in[k++]);
    const Tensor g = c.g ? in[k++] : Tensor();
    const Tensor z = in[k++];
    const Tensor ah = c.ah ? in[k++] : Tensor();
    const Tensor ag = c.ag ? in[k++] : Tensor();
    return im::gated_fusion(ys, g, z, ah, ag);
  };
}

// Sizes: odd widths (single-element access), widths of whole 16-byte packs, one row segment
// and many (partial column sums), the mixer's [B, L, E].
const std::vector<Shape>& shapes() {
  static const std::vector<Shape> s = {{3, 5, 7}, {1, 1},     {5, 8},        {4, 3, 16},
                                       {65, 33},  {1000, 24}, {2, 197, 768}, {3, 4099}};
  return s;
}

// The halves of the last dim of t: rows 2E apart, as split(uz, {E, E}, -1) gives.
Tensor first_half(const Tensor& t) {
  return t.slice(t.dim() - 1, 0, t.size(-1) / 2);
}
Tensor second_half(const Tensor& t) {
  const int64_t w = t.size(-1);
  return t.slice(t.dim() - 1, w / 2, w);
}

}  // namespace

TEST(CudaFusedGates, GatedFusionMatchesCpu) {
  REQUIRE_GPU();
  uint64_t seed = 900;
  for (const Shape& shape : shapes()) {
    for (const Streams& c : stream_configs()) {
      expect_all_dtypes(fusion_fn(c), fusion_values(c, shape, seed++),
                        im::shape_str(shape) + " " + c.name());
    }
  }
}

TEST(CudaFusedGates, GatedFusionReadsZInPlace) {
  REQUIRE_GPU();
  im::Generator gen(910);
  // z (and u, the one y of the both-paths-off mixer) as halves of in_proj's [B, L, 2E]
  // output, E a whole number of packs (aligned: 16-byte access) or odd (single elements).
  for (const Shape& uz_shape : std::vector<Shape>{{2, 197, 1536}, {3, 5, 14}, {4, 9, 66}}) {
    const Shape half = {uz_shape[0], uz_shape[1], uz_shape[2] / 2};
    const Tensor uz = im::rand_uniform(uz_shape, gen, -4, 4, DType::Float64);
    const Tensor y = im::randn(half, gen, DType::Float64), g = im::randn(half, gen, DType::Float64);
    const Tensor ah = im::randn({half[2]}, gen, DType::Float64);
    const Tensor ag = im::randn({half[2]}, gen, DType::Float64);
    const std::string what = "uz " + im::shape_str(uz_shape);
    expect_all_dtypes(
        [](const std::vector<Tensor>& in) {
          return im::gated_fusion({in[1], first_half(in[0])}, in[2], second_half(in[0]), in[3],
                                  in[4]);
        },
        {uz, y, g, ah, ag}, what + " u as y1");
    expect_all_dtypes(
        [](const std::vector<Tensor>& in) {
          return im::gated_fusion({first_half(in[0])}, Tensor(), second_half(in[0]), Tensor(),
                                  Tensor());
        },
        {uz}, what + " silu(z) * u");
  }
}

TEST(CudaFusedGates, GatedFusionMisalignedAndCopiedInputs) {
  REQUIRE_GPU();
  im::Generator gen(920);
  // z starting one element into its rows (no 16-byte access), g transposed (copied first).
  const Tensor zw = im::rand_uniform({6, 7, 17}, gen, -4, 4, DType::Float64);
  const Tensor y = im::randn({6, 7, 16}, gen, DType::Float64);
  const Tensor gt = im::randn({6, 16, 7}, gen, DType::Float64);
  const Tensor ah = im::randn({16}, gen, DType::Float64), ag = im::randn({16}, gen, DType::Float64);
  expect_all_dtypes(
      [](const std::vector<Tensor>& in) {
        return im::gated_fusion({in[1]}, in[2].transpose(1, 2), in[0].slice(2, 1, 17), in[3],
                                in[4]);
      },
      {zw, y, gt, ah, ag}, "misaligned z, transposed g");
}

TEST(CudaFusedGates, SigmoidGateMatchesCpu) {
  REQUIRE_GPU();
  uint64_t seed = 930;
  for (const Shape& shape : shapes()) {
    im::Generator gen(seed++);
    const Tensor pre = im::rand_uniform(shape, gen, -5, 5, DType::Float64);
    const Tensor g = im::randn(shape, gen, DType::Float64);
    const Tensor b = im::randn({shape.back()}, gen, DType::Float64);
    const std::string what = im::shape_str(shape);
    expect_all_dtypes(
        [](const std::vector<Tensor>& in) { return im::sigmoid_gate(in[0], in[1], in[2]); },
        {pre, b, g}, what);
    expect_all_dtypes(
        [](const std::vector<Tensor>& in) { return im::sigmoid_gate(in[0], Tensor(), in[1]); },
        {pre, g}, what + " no bias");
  }
}

TEST(CudaFusedGates, SigmoidGateStridedInputs) {
  REQUIRE_GPU();
  im::Generator gen(940);
  // pre as the second half of a [.., 2E] tensor (aligned), and one element in (not).
  const Tensor pre2 = im::rand_uniform({2, 197, 1536}, gen, -5, 5, DType::Float64);
  const Tensor g = im::randn({2, 197, 768}, gen, DType::Float64);
  const Tensor b = im::randn({768}, gen, DType::Float64);
  expect_all_dtypes(
      [](const std::vector<Tensor>& in) {
        return im::sigmoid_gate(second_half(in[0]), in[2], in[1]);
      },
      {pre2, g, b}, "pre second half");
  expect_all_dtypes(
      [](const std::vector<Tensor>& in) {
        return im::sigmoid_gate(in[0].slice(2, 1, 769), in[2], in[1]);
      },
      {pre2, g, b}, "pre one element in");
}

TEST(CudaFusedGates, NoRowsGiveZeroParameterGradients) {
  REQUIRE_GPU();
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16}) {
    Tensor y = Tensor::zeros({0, 40}, dt, Device::cuda());
    Tensor pre = Tensor::zeros({0, 40}, dt, Device::cuda());
    Tensor ah = Tensor::ones({40}, dt, Device::cuda()), b = Tensor::ones({40}, dt, Device::cuda());
    ah.set_requires_grad(true);
    b.set_requires_grad(true);
    im::gated_fusion({y}, Tensor(), y, ah, Tensor())
        .backward(Tensor::zeros({0, 40}, dt, Device::cuda()));
    im::sigmoid_gate(pre, b, y).backward(Tensor::zeros({0, 40}, dt, Device::cuda()));
    for (double v : ah.grad().to(DType::Float64).to_vector<double>()) EXPECT_EQ(v, 0.0);
    for (double v : b.grad().to(DType::Float64).to_vector<double>()) EXPECT_EQ(v, 0.0);
  }
}

// The strided element-wise launches on the GPU against the CPU, for the layouts the
// model produces: the packed paths (V elements a thread-iteration along a contiguous
// innermost dim, one index computation and 16-byte accesses per pack, an operand constant
// along the pack read once) of binary ops, copies, casts and the widening accumulate; the
// fallbacks they leave to the element kernels (odd inner sizes, views that start mid-pack,
// transposed inner dims, negative inner strides); the flat cast; and fills (the driver's
// memset for zeros, 16-byte stores with an element-wise head and tail otherwise).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/bfloat16.h"
#include "kernels/cuda/elementwise.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Shape;
using im::Tensor;
using im::testing::float_tolerance;
using im::testing::kBf16Tolerance;
using im::testing::rel_error;

namespace {

using View = std::function<Tensor(const Tensor&)>;

Tensor same(const Tensor& t) {
  return t;
}

const DType kFloatTypes[] = {DType::Float32, DType::Float64, DType::BFloat16};
const DType kAllTypes[] = {DType::Float32, DType::Float64, DType::BFloat16,
                           DType::Int32,   DType::Int64,   DType::UInt8};

// The CPU reference's copy of float64 `values` for a binary op in `dt`: bfloat16 runs on
// the CPU as float32 on the bf16-rounded values (the CPU has no bfloat16 math).
Tensor cpu_input(const Tensor& values, DType dt) {
  return dt == DType::BFloat16 ? values.to(DType::BFloat16).to(DType::Float32) : values.to(dt);
}

Tensor gpu_input(const Tensor& values, DType dt) {
  return values.to(dt).to(Device::cuda());
}

// float32/float64 within float_tolerance; bfloat16 equal to the float32 CPU result rounded
// once (+ - * / are correctly rounded in float on both devices, then rounded to bf16 once).
void expect_binary_result(const Tensor& gpu, const Tensor& cpu, DType dt, const std::string& what) {
  ASSERT_TRUE(gpu.device().is_cuda()) << what;
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  ASSERT_EQ(gpu.dtype(), dt) << what;
  if (dt == DType::BFloat16) {
    EXPECT_LT(rel_error(gpu.to(DType::Float32), cpu), kBf16Tolerance) << what;
    EXPECT_EQ(gpu.to_vector<float>(), cpu.to(DType::BFloat16).to_vector<float>()) << what;
  } else {
    EXPECT_LT(rel_error(gpu, cpu), float_tolerance(dt)) << what;
  }
}

// Copies, casts, fills and accumulates move or widen values exactly.
void expect_identical(const Tensor& gpu, const Tensor& cpu, const std::string& what) {
  ASSERT_TRUE(gpu.device().is_cuda()) << what;
  ASSERT_EQ(gpu.shape(), cpu.shape()) << what;
  ASSERT_EQ(gpu.dtype(), cpu.dtype()) << what;
  EXPECT_EQ(gpu.to_vector<double>(), cpu.to_vector<double>()) << what;
}

struct BinaryCase {
  const char* what;
  Shape a_shape;
  View a_view;  // applied on each device
  Shape b_shape;
  View b_view;
};

// Shapes chosen so the innermost dim after coalescing holds whole packs (8 bf16, 4 float,
// 2 double) unless the case says otherwise.
const BinaryCase kBinaryCases[] = {
    {"bias: [M, N] + [N]", {15, 64}, same, {64}, same},
    {"alpha: [B, L, E] * [E]", {3, 5, 48}, same, {48}, same},
    {"pos-embed: [B, L*d] + [L*d]", {4, 80}, same, {80}, same},
    {"drop-path: [B, L, d] * [B, 1, 1]", {3, 5, 16}, same, {3, 1, 1}, same},
    {"column broadcast [B, X] * [B, 1]", {6, 24}, same, {6, 1}, same},
    {"column broadcast on the left [B, 1] - [B, X]", {6, 1}, same, {6, 24}, same},
    {"half-width window of [B, L, 2E]",
     {3, 5, 96},
     [](const Tensor& t) { return t.slice(2, 48, 96); },
     {3, 5, 48},
     same},
    {"narrow windows [B, L, 16] of [B, L, 56]",
     {3, 5, 56},
     [](const Tensor& t) { return t.slice(2, 40, 56); },
     {3, 5, 56},
     [](const Tensor& t) { return t.slice(2, 8, 24); }},
    {"window + row broadcast",
     {3, 5, 56},
     [](const Tensor& t) { return t.slice(2, 16, 32); },
     {16},
     same},
    {"outer dims permuted + row broadcast",
     {5, 3, 48},
     [](const Tensor& t) { return t.transpose(0, 1); },
     {48},
     same},
    // Fallbacks to the element kernel.
    {"window starting at element 1 (packs misaligned)",
     {3, 5, 56},
     [](const Tensor& t) { return t.slice(2, 1, 17); },
     {3, 5, 16},
     same},
    {"odd inner size + row broadcast", {3, 5, 37}, same, {37}, same},
    {"inner 12: packs for float32 and float64, not bfloat16", {3, 5, 12}, same, {12}, same},
    {"column broadcast, odd row length", {6, 13}, same, {6, 1}, same},
    {"transposed inner dim",
     {48, 15},
     [](const Tensor& t) { return t.transpose(0, 1); },
     {15, 48},
     same},
};

// Copies of views (View applied to the source; the result made contiguous).
struct CopyCase {
  const char* what;
  Shape shape;
  View view;
};

const CopyCase kCopyCases[] = {
    {"narrow window [B, L, 16] of [B, L, 56]",
     {3, 5, 56},
     [](const Tensor& t) { return t.slice(2, 8, 24); }},
    {"half-width window of [B, L, 2E]",
     {3, 5, 96},
     [](const Tensor& t) { return t.slice(2, 48, 96); }},
    {"flip along dim 1 of [B, L, E]", {3, 5, 48}, [](const Tensor& t) { return im::flip(t, 1); }},
    {"flip along dim 0", {3, 5, 48}, [](const Tensor& t) { return im::flip(t, 0); }},
    {"flip of a window",
     {3, 5, 56},
     [](const Tensor& t) { return im::flip(t.slice(2, 16, 32), 1); }},
    {"row expanded",
     {48},
     [](const Tensor& t) {
       return t.expand({7, 48});
     }},
    {"column expanded (constant along each pack)",
     {7, 1},
     [](const Tensor& t) {
       return t.expand({7, 32});
     }},
    {"outer dims permuted", {5, 3, 48}, [](const Tensor& t) { return t.transpose(0, 1); }},
    // Fallbacks to the element kernel.
    {"window starting at element 1", {3, 5, 56}, [](const Tensor& t) { return t.slice(2, 1, 17); }},
    {"odd window width", {3, 5, 56}, [](const Tensor& t) { return t.slice(2, 0, 13); }},
    {"flip along the last dim (inner stride -1)",
     {3, 5, 48},
     [](const Tensor& t) { return im::flip(t, 2); }},
    {"transposed inner dim", {15, 48}, [](const Tensor& t) { return t.transpose(0, 1); }},
};

// Windows of a [3, 5, 56] destination that a [3, 5, width] source is copied into.
struct WindowCase {
  int64_t start, end;
};
const WindowCase kWindows[] = {{8, 24}, {40, 56}, {0, 28}, {1, 17}, {3, 16}};

// The value every element of a guard buffer holds before a window of it is written.
constexpr double kGuard = 9;

}  // namespace

TEST(CudaElementwiseLayouts, BinaryOnModelLayoutsMatchesCpu) {
  REQUIRE_GPU();
  im::Generator gen(601);
  Tensor (*ops[])(const Tensor&, const Tensor&) = {&im::add, &im::sub, &im::mul, &im::div};
  const char* op_names[] = {"add", "sub", "mul", "div"};
  for (DType dt : kFloatTypes) {
    for (const BinaryCase& c : kBinaryCases) {
      const Tensor av = im::rand_uniform(c.a_shape, gen, -2, 2, DType::Float64);
      const Tensor bv = im::rand_uniform(c.b_shape, gen, 0.5, 2, DType::Float64);
      const Tensor ac = c.a_view(cpu_input(av, dt)), bc = c.b_view(cpu_input(bv, dt));
      const Tensor ag = c.a_view(gpu_input(av, dt)), bg = c.b_view(gpu_input(bv, dt));
      const std::string what = std::string(c.what) + " " + im::dtype_name(dt);
      for (int k = 0; k < 4; ++k)
        expect_binary_result(ops[k](ag, bg), ops[k](ac, bc), dt, what + " " + op_names[k]);
      // A number as the second operand (binary_scalar): constant along every pack.
      expect_binary_result(im::mul(ag, 0.37), im::mul(ac, 0.37), dt, what + " mul by 0.37");
      expect_binary_result(im::add(bg, -1.25), im::add(bc, -1.25), dt, what + " add -1.25");
    }
  }
}

namespace {

// out = a + row and out = a * 0.37 through the kernel API with `a` read through negative
// strides (the model's flips): reversed along dim 1 of [B, L, E] (inner dim still
// contiguous: packed) or along the last dim (inner stride -1: the element kernel).
template <typename T>
void flipped_binary(const Tensor& xg, const Tensor& rowg, const Tensor& sum_out,
                    const Tensor& scaled_out, int flip_dim) {
  const Shape shape = xg.shape();
  const int64_t L = shape[1], E = shape[2];
  const T* x = static_cast<const T*>(xg.data_ptr());
  const T* a = flip_dim == 1 ? x + (L - 1) * E : x + (E - 1);
  const std::vector<int64_t> a_strides =
      flip_dim == 1 ? std::vector<int64_t>{L * E, -E, 1} : std::vector<int64_t>{L * E, E, -1};
  im::kernels::cuda::binary<T>(im::kernels::BinaryOp::Add, a, a_strides,
                               static_cast<const T*>(rowg.data_ptr()), {0, 0, 1},
                               static_cast<T*>(sum_out.data_ptr()), shape);
  im::kernels::cuda::binary_scalar<T>(im::kernels::BinaryOp::Mul, a, a_strides, 0.37,
                                      static_cast<T*>(scaled_out.data_ptr()), shape);
}

}  // namespace

TEST(CudaElementwiseLayouts, BinaryReadsNegativeStridesLikeCpuFlip) {
  REQUIRE_GPU();
  im::Generator gen(602);
  for (DType dt : kFloatTypes) {
    for (int flip_dim : {1, 2}) {
      const Tensor xv = im::rand_uniform({3, 5, 48}, gen, -2, 2, DType::Float64);
      const Tensor rowv = im::rand_uniform({48}, gen, -2, 2, DType::Float64);
      const Tensor xc = cpu_input(xv, dt), rowc = cpu_input(rowv, dt);
      const Tensor xg = gpu_input(xv, dt), rowg = gpu_input(rowv, dt);
      const Tensor sum = Tensor::empty(xv.shape(), dt, Device::cuda());
      const Tensor scaled = Tensor::empty(xv.shape(), dt, Device::cuda());
      switch (dt) {
        case DType::Float32:
          flipped_binary<float>(xg, rowg, sum, scaled, flip_dim);
          break;
        case DType::Float64:
          flipped_binary<double>(xg, rowg, sum, scaled, flip_dim);
          break;
        default:
          flipped_binary<im::bfloat16>(xg, rowg, sum, scaled, flip_dim);
          break;
      }
      const std::string what =
          std::string(im::dtype_name(dt)) + " flipped along dim " + std::to_string(flip_dim);
      const Tensor flipped = im::flip(xc, flip_dim);
      expect_binary_result(sum, im::add(flipped, rowc), dt, what + " + row");
      expect_binary_result(scaled, im::mul(flipped, 0.37), dt, what + " * 0.37");
    }
  }
}

TEST(CudaElementwiseLayouts, CopiesOfModelLayoutsMatchCpuExactly) {
  REQUIRE_GPU();
  im::Generator gen(603);
  for (DType dt : kAllTypes) {
    for (const CopyCase& c : kCopyCases) {
      const Tensor src = im::rand_uniform(c.shape, gen, 0, 250, DType::Float64).to(dt);
      expect_identical(c.view(src.to(Device::cuda())).contiguous(), c.view(src).contiguous(),
                       std::string(c.what) + " " + im::dtype_name(dt));
    }
    // Into a column window of a wider row-major tensor: the rest must keep its values.
    for (const WindowCase& w : kWindows) {
      const Tensor src = im::rand_uniform({3, 5, w.end - w.start}, gen, 0, 250, DType::Float64);
      const Tensor dst_cpu = Tensor::full({3, 5, 56}, kGuard, dt);
      const Tensor dst_gpu = Tensor::full({3, 5, 56}, kGuard, dt, Device::cuda());
      dst_cpu.slice(2, w.start, w.end).copy_(src.to(dt));
      dst_gpu.slice(2, w.start, w.end).copy_(src.to(dt).to(Device::cuda()));
      expect_identical(dst_gpu, dst_cpu,
                       "into window [" + std::to_string(w.start) + ", " + std::to_string(w.end) +
                           ") " + im::dtype_name(dt));
    }
  }
}

TEST(CudaElementwiseLayouts, CastsOfEveryLayoutMatchCpuExactly) {
  REQUIRE_GPU();
  im::Generator gen(604);
  const CopyCase sources[] = {
      {"contiguous", {3, 5, 48}, same},
      {"contiguous, odd length (tail)", {3, 5, 13}, same},
      {"contiguous from element 1 (misaligned)",
       {1001},
       [](const Tensor& t) { return t.slice(0, 1, 1000); }},
      {"narrow window [B, L, 16] of [B, L, 56]",
       {3, 5, 56},
       [](const Tensor& t) { return t.slice(2, 8, 24); }},
      {"column expanded",
       {7, 1},
       [](const Tensor& t) {
         return t.expand({7, 32});
       }},
      {"window starting at element 1",
       {3, 5, 56},
       [](const Tensor& t) { return t.slice(2, 1, 17); }},
      {"transposed", {15, 48}, [](const Tensor& t) { return t.transpose(0, 1); }},
  };
  for (DType from : kAllTypes) {
    for (DType to : kAllTypes) {
      if (from == to) continue;  // a copy, not a cast
      const std::string pair =
          std::string(im::dtype_name(from)) + " -> " + im::dtype_name(to) + ": ";
      for (const CopyCase& c : sources) {
        // Values that exercise rounding to bfloat16 and truncation to integers.
        const Tensor src = im::rand_uniform(c.shape, gen, 0, 250, DType::Float64).to(from);
        expect_identical(c.view(src.to(Device::cuda())).to(to), c.view(src).to(to), pair + c.what);
      }
      // Into windows of a wider destination (strided destination).
      for (const WindowCase& w : kWindows) {
        const Tensor src =
            im::rand_uniform({3, 5, w.end - w.start}, gen, 0, 250, DType::Float64).to(from);
        const Tensor dst_cpu = Tensor::full({3, 5, 56}, kGuard, to);
        const Tensor dst_gpu = Tensor::full({3, 5, 56}, kGuard, to, Device::cuda());
        dst_cpu.slice(2, w.start, w.end).copy_(src);
        dst_gpu.slice(2, w.start, w.end).copy_(src.to(Device::cuda()));
        expect_identical(
            dst_gpu, dst_cpu,
            pair + "into window [" + std::to_string(w.start) + ", " + std::to_string(w.end) + ")");
      }
    }
  }
}

// Fills of whole tensors and of windows of a guard buffer (head before the first 16-byte
// boundary, packs, tail; windows shorter than the head), zero and non-zero.
TEST(CudaElementwiseLayouts, FillsMatchCpuAndStayInBounds) {
  REQUIRE_GPU();
  const WindowCase windows[] = {{0, 1003}, {1, 1002}, {8, 1003}, {3, 20}, {1, 4}, {5, 6}};
  for (DType dt : kAllTypes) {
    for (double value : {0.0, 3.0, 117.0}) {
      for (int64_t n : {1, 7, 33, 1000003}) {
        expect_identical(Tensor::full({n}, value, dt, Device::cuda()), Tensor::full({n}, value, dt),
                         std::string("full ") + im::dtype_name(dt) + " n " + std::to_string(n) +
                             " value " + std::to_string(value));
      }
      for (const WindowCase& w : windows) {
        const Tensor cpu = Tensor::full({1003}, kGuard, dt);
        const Tensor gpu = Tensor::full({1003}, kGuard, dt, Device::cuda());
        cpu.slice(0, w.start, w.end).fill_(value);
        gpu.slice(0, w.start, w.end).fill_(value);
        expect_identical(gpu, cpu,
                         std::string("fill ") + im::dtype_name(dt) + " window [" +
                             std::to_string(w.start) + ", " + std::to_string(w.end) + ") value " +
                             std::to_string(value));
      }
    }
  }
  // -0.0 has a set sign bit, so it is no zero fill: the sign must survive.
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16}) {
    for (double v : Tensor::full({37}, -0.0, dt, Device::cuda()).to_vector<double>())
      EXPECT_TRUE(v == 0 && std::signbit(v)) << im::dtype_name(dt);
  }
}

// A bf16 gradient added into its float32 slot: exact (the widening is exact, then one float
// addition on both devices), for every source layout the packed path and its fallback take.
TEST(CudaElementwiseLayouts, AccumulateWideningMatchesCpuExactly) {
  REQUIRE_GPU();
  im::Generator gen(605);
  struct Case {
    const char* what;
    Shape dst_shape, src_shape;
    View view;  // applied to the source on each device
  };
  const Case cases[] = {
      {"same shape", {3, 5, 48}, {3, 5, 48}, same},
      {"row broadcast", {3, 5, 48}, {48}, same},
      {"per-sample broadcast [B, 1, 1]", {3, 5, 48}, {3, 1, 1}, same},
      {"column broadcast [B, L, 1]", {3, 5, 48}, {3, 5, 1}, same},
      {"half-width window of [B, L, 2E]",
       {3, 5, 48},
       {3, 5, 96},
       [](const Tensor& t) { return t.slice(2, 48, 96); }},
      {"narrow window [B, L, 16] of [B, L, 56]",
       {3, 5, 16},
       {3, 5, 56},
       [](const Tensor& t) { return t.slice(2, 40, 56); }},
      {"window + row broadcast",
       {3, 5, 16},
       {56},
       [](const Tensor& t) { return t.slice(0, 24, 40); }},
      // Fallbacks to the element kernel.
      {"window starting at element 1",
       {3, 5, 16},
       {3, 5, 56},
       [](const Tensor& t) { return t.slice(2, 1, 17); }},
      {"odd size", {3, 5, 37}, {3, 5, 37}, same},
      {"transposed", {15, 48}, {48, 15}, [](const Tensor& t) { return t.transpose(0, 1); }},
  };
  for (const Case& c : cases) {
    const Tensor base = im::randn(c.dst_shape, gen);
    const Tensor src = im::randn(c.src_shape, gen).to(DType::BFloat16);
    Tensor dst_cpu = base.clone();
    Tensor dst_gpu = base.to(Device::cuda());
    im::accumulate_into(dst_cpu, c.view(src.to(DType::Float32)));
    im::accumulate_into(dst_gpu, c.view(src.to(Device::cuda())));
    EXPECT_EQ(dst_gpu.dtype(), DType::Float32) << c.what;
    EXPECT_EQ(rel_error(dst_gpu, dst_cpu), 0.0) << c.what;
  }
  // A destination that starts one element into its buffer (packs misaligned: fallback).
  const Tensor base = im::randn({3, 5, 48}, gen);
  const Tensor src = im::randn({48}, gen).to(DType::BFloat16);
  Tensor dst_cpu = base.clone();
  Tensor dst_gpu =
      Tensor::zeros({3 * 5 * 48 + 1}, DType::Float32, Device::cuda()).slice(0, 1, 3 * 5 * 48 + 1);
  dst_gpu.copy_(base.reshape({-1}).to(Device::cuda()));
  dst_gpu = dst_gpu.view({3, 5, 48});
  im::accumulate_into(dst_cpu, src.to(DType::Float32));
  im::accumulate_into(dst_gpu, src.to(Device::cuda()));
  EXPECT_EQ(rel_error(dst_gpu, dst_cpu), 0.0) << "misaligned destination";
}

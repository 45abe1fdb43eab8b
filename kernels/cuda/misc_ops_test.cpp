// cumsum, flip, concat/split/stack and dropout/drop-path on the GPU against the CPU:
// forward and backward on fresh random inputs, odd sizes included. Dropout masks come
// from the same generator state on both devices, so the results are equal exactly.
// Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/ops.h"
#include "core/rng.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cuda/dropout.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::expect_op_matches_cpu;
using im::testing::float_tolerance;
using im::testing::rel_error;

namespace {

std::string label(const im::Shape& shape, int64_t dim, DType dt) {
  return im::shape_str(shape) + " dim " + std::to_string(dim) + " " + im::dtype_name(dt);
}

}  // namespace

TEST(CudaCumsum, MatchesCpuAlongEveryDim) {
  REQUIRE_GPU();
  im::Generator gen(401);
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
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const auto& [shape, dim] : cases) {
      const Tensor x = im::randn(shape, gen, dt);
      expect_op_matches_cpu([dim](const Tensor& t) { return im::cumsum(t, dim); }, x,
                            "cumsum " + label(shape, dim, dt), 999);
    }
    // A 0-d tensor scans as one element; a non-contiguous input.
    expect_op_matches_cpu([](const Tensor& t) { return im::cumsum(t, 0); }, im::randn({}, gen, dt),
                          "cumsum 0-d", 999);
    expect_op_matches_cpu([](const Tensor& t) { return im::cumsum(t.transpose(0, 1), 1); },
                          im::randn({40, 9}, gen, dt), "cumsum of a transposed view", 999);
  }
}

TEST(CudaFlip, MatchesCpuExactly) {
  REQUIRE_GPU();
  im::Generator gen(402);
  const std::vector<std::pair<im::Shape, int64_t>> cases = {
      {{1}, 0}, {{7}, 0}, {{3, 257}, 1}, {{3, 257}, 0}, {{2, 33, 5}, 1}, {{2, 33, 5}, -1},
  };
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const auto& [shape, dim] : cases) {
      const Tensor x = im::randn(shape, gen, dt);
      const Tensor yg = im::flip(x.to(Device::cuda()), dim);
      EXPECT_EQ(yg.to(Device::cpu()).to_vector<double>(), im::flip(x, dim).to_vector<double>())
          << "flip " << label(shape, dim, dt);
      expect_op_matches_cpu([dim](const Tensor& t) { return im::flip(t, dim); }, x,
                            "flip " + label(shape, dim, dt), 999);
    }
    // Flip of a non-contiguous view (negative strides over a transposed layout).
    const Tensor m = im::randn({9, 13}, gen, dt);
    expect_op_matches_cpu([](const Tensor& t) { return im::flip(t.transpose(0, 1), 1); }, m,
                          "flip of a transposed view", 999);
  }
}

TEST(CudaJoin, ConcatStackAndSplitMatchCpu) {
  REQUIRE_GPU();
  im::Generator gen(403);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = float_tolerance(dt);
    for (int64_t dim : {0, 1, 2, -1}) {
      // Three inputs that differ in `dim` only (one of them empty there).
      std::vector<Tensor> cpu, gpu;
      for (int64_t n : {3, 0, 5}) {
        im::Shape shape = {4, 6, 7};
        shape[dim < 0 ? dim + 3 : dim] = n;
        Tensor c = im::randn(shape, gen, dt);
        c.set_requires_grad(true);
        Tensor g = c.detach().to(Device::cuda());
        g.set_requires_grad(true);
        cpu.push_back(c);
        gpu.push_back(g);
      }
      const Tensor yc = im::concat(cpu, dim), yg = im::concat(gpu, dim);
      ASSERT_TRUE(yg.device().is_cuda());
      EXPECT_EQ(yg.detach().to(Device::cpu()).to_vector<double>(), yc.detach().to_vector<double>())
          << "concat dim " << dim;
      const Tensor w = im::randn(yc.shape(), gen, dt);
      im::sum(im::mul(yc, w)).backward();
      im::sum(im::mul(yg, w.to(Device::cuda()))).backward();
      for (size_t i = 0; i < cpu.size(); ++i) {
        if (cpu[i].numel() == 0) continue;
        ASSERT_TRUE(gpu[i].grad().defined()) << "concat input " << i;
        EXPECT_LT(rel_error(gpu[i].grad(), cpu[i].grad()), tol) << "concat input " << i;
      }
    }

    // split into parts (one empty) and stack of equal shapes, with gradients.
    const Tensor x = im::randn({5, 11, 3}, gen, dt);
    expect_op_matches_cpu(
        [](const Tensor& t) {
          const std::vector<Tensor> parts = im::split(t, {2, 0, 4, 5}, 1);
          EXPECT_EQ(parts.size(), 4u);
          for (const Tensor& p : parts) EXPECT_EQ(p.device(), t.device());
          // Reassemble with the parts weighted differently, so each part's gradient differs.
          return im::concat({im::mul(parts[3], 2.0), parts[0], im::mul(parts[2], -3.0)}, 1);
        },
        x, std::string("split ") + im::dtype_name(dt), 999);
    for (int64_t dim : {0, 1, 3, -1}) {
      expect_op_matches_cpu(
          [dim](const Tensor& t) {
            return im::stack({t, im::mul(t, 0.5), im::exp(t)}, dim);
          },
          x, "stack dim " + std::to_string(dim) + " " + im::dtype_name(dt), 999);
    }
  }
}

// The masked-scale kernel alone, from one CPU-drawn mask: element-wise and per-group.
TEST(CudaDropout, MaskedScaleKernelMatchesCpuExactly) {
  REQUIRE_GPU();
  im::Generator gen(405);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const auto& [n, group] : std::vector<std::pair<int64_t, int64_t>>{
             {1, 1}, {7, 1}, {1000003, 1}, {12, 4}, {3 * 1001, 1001}, {65 * 33, 33}}) {
      const Tensor x = im::randn({n}, gen, dt);
      const Tensor mask = im::bernoulli_mask({n / group}, 0.6, gen);
      const Tensor xg = x.to(Device::cuda()), maskg = mask.to(Device::cuda());
      Tensor out = Tensor::empty({n}, dt);
      Tensor outg = Tensor::empty({n}, dt, Device::cuda());
      const std::string what = "n " + std::to_string(n) + " group " + std::to_string(group);
      if (dt == DType::Float32) {
        im::kernels::cpu::masked_scale<float>(x.data<float>(), mask.data<uint8_t>(), group, 2.5f,
                                              out.data<float>(), n);
        im::kernels::cuda::masked_scale<float>(static_cast<const float*>(xg.data_ptr()),
                                               static_cast<const uint8_t*>(maskg.data_ptr()), group,
                                               2.5f, static_cast<float*>(outg.data_ptr()), n);
      } else {
        im::kernels::cpu::masked_scale<double>(x.data<double>(), mask.data<uint8_t>(), group, 2.5,
                                               out.data<double>(), n);
        im::kernels::cuda::masked_scale<double>(static_cast<const double*>(xg.data_ptr()),
                                                static_cast<const uint8_t*>(maskg.data_ptr()),
                                                group, 2.5, static_cast<double*>(outg.data_ptr()),
                                                n);
      }
      EXPECT_EQ(outg.to(Device::cpu()).to_vector<double>(), out.to_vector<double>()) << what;
    }
  }
}

// Dropout and drop-path draw their masks from the generator on the tensor's device; the
// same generator state gives the same mask on both, so forward and backward agree exactly.
TEST(CudaDropout, SameGeneratorGivesTheSameResultOnBothDevices) {
  REQUIRE_GPU();
  im::Generator data(404);
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (const im::Shape& shape : std::vector<im::Shape>{{1}, {7}, {33, 257}, {4, 3, 1000}}) {
      const Tensor x = im::randn(shape, data, dt);
      for (double p : {0.1, 0.5, 0.9}) {
        for (int which = 0; which < 3; ++which) {
          im::Generator cpu_gen(31), gpu_gen(31);
          const std::string what = std::string(which == 0   ? "dropout"
                                               : which == 1 ? "drop_path"
                                                            : "drop_path(batch slice)") +
                                   " " + im::shape_str(shape) + " p " + std::to_string(p) + " " +
                                   im::dtype_name(dt);
          auto run = [&](const Tensor& t, im::Generator& gen) {
            if (which == 0) return im::dropout(t, p, gen);
            if (which == 1) return im::drop_path(t, p, gen);
            // These samples are [2, 2 + B) of a global batch of B + 5.
            return im::drop_path(t, p, gen, 2, t.size(0) + 5);
          };
          Tensor xc = x.clone(), xg = x.to(Device::cuda());
          xc.set_requires_grad(true);
          xg.set_requires_grad(true);
          const Tensor yc = run(xc, cpu_gen), yg = run(xg, gpu_gen);
          ASSERT_TRUE(yg.device().is_cuda()) << what;
          EXPECT_EQ(yg.detach().to(Device::cpu()).to_vector<double>(),
                    yc.detach().to_vector<double>())
              << what;
          EXPECT_EQ(gpu_gen.state(), cpu_gen.state()) << what;
          const Tensor w = im::randn(shape, data, dt);
          yc.backward(w);
          yg.backward(w.to(Device::cuda()));
          EXPECT_EQ(xg.grad().to(Device::cpu()).to_vector<double>(), xc.grad().to_vector<double>())
              << what;
        }
      }
    }
  }
}

TEST(CudaDropout, DroppedInfinitiesBecomeZero) {
  REQUIRE_GPU();
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {DType::Float32, DType::Float64}) {
    const Tensor x = Tensor::full({4097}, inf, dt, Device::cuda());
    im::Generator gen(5);
    const auto y = im::dropout(x, 0.5, gen).to(Device::cpu()).to_vector<double>();
    int64_t kept = 0, dropped = 0;
    for (double v : y) {
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
}

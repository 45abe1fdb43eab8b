// The whole model on a GPU against the CPU: the same parameters and batch give the same
// losses and the same gradient for every parameter, for images and padded text, with the
// filter's ablation switches, and AdamW steps on the GPU stay with the CPU's.
// Skipped without a GPU (ctest label gpu).
#include <gtest/gtest.h>

#include "core/ops.h"
#include "layers/infomamba.h"
#include "layers/losses.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::testing::rel_error;
using namespace im::layers;

namespace {

ModelConfig small_image_model() {
  ModelConfig cfg;
  cfg.channels = 3;
  cfg.image_size = 16;
  cfg.patch = 4;  // 16 tokens
  cfg.d_model = 24;
  cfg.depth = 2;
  cfg.d_state = 5;  // odd on purpose
  cfg.num_concepts = 7;
  cfg.num_buckets = 4;
  cfg.k_min = 2;
  cfg.k_max = 6;
  cfg.d_proj = 16;
  cfg.num_classes = 5;
  return cfg;
}

ModelConfig small_text_model() {
  ModelConfig cfg = small_image_model();
  cfg.modality = "text";
  cfg.vocab_size = 23;
  cfg.max_len = 19;
  cfg.pad_id = 0;
  return cfg;
}

// One model per device from the same seed: the GPU one's store holds the same values.
struct Replica {
  std::unique_ptr<InfoMamba> model;
  std::unique_ptr<ParameterStore> store;
  Replica(const ModelConfig& cfg, DType dtype, Device device) {
    im::Generator gen(42);
    model = std::make_unique<InfoMamba>(cfg, gen, dtype);
    store = std::make_unique<ParameterStore>(*model, dtype, device);
    model->train();
  }
  LossTerms step(const Tensor& inputs, const Tensor& labels, Device device) {
    store->zero_grad();
    ForwardContext ctx;
    const ModelOutput out = model->forward(inputs.to(device), ctx);
    LossTerms t =
        compute_losses(out, model->prototypes(), labels.to(device), LossConfig{}, nullptr);
    t.total.backward();
    return t;
  }
};

Tensor image_batch(const ModelConfig& cfg, DType dtype, int64_t batch, uint64_t seed) {
  im::Generator gen(seed);
  return im::randn({batch, cfg.channels, cfg.image_size, cfg.image_size}, gen, dtype);
}

Tensor text_batch(const ModelConfig& cfg, int64_t batch, uint64_t seed) {
  im::Generator gen(seed);
  // Ids in [0, vocab): some pads (id 0) in every row, the last positions padded.
  Tensor ids = im::rand_uniform({batch, cfg.max_len}, gen, 0, cfg.vocab_size - 0.01, DType::Float64)
                   .to(DType::Int64);
  Tensor host = ids.contiguous();
  int64_t* p = host.data<int64_t>();
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = cfg.max_len - 3; t < cfg.max_len; ++t) p[b * cfg.max_len + t] = 0;
  return host;
}

Tensor labels_for(int64_t batch, int64_t classes) {
  std::vector<int64_t> v(batch);
  for (int64_t i = 0; i < batch; ++i) v[i] = (i * 3 + 1) % classes;
  return Tensor::from_vector(v, {batch});
}

void expect_same_training_step(const ModelConfig& cfg, DType dtype, const Tensor& inputs,
                               double tolerance) {
  Replica cpu(cfg, dtype, Device::cpu()), gpu(cfg, dtype, Device::cuda());
  ASSERT_EQ(rel_error(gpu.store->flat_params(), cpu.store->flat_params()), 0.0);
  const Tensor labels = labels_for(inputs.size(0), cfg.num_classes);
  const LossTerms lc = cpu.step(inputs, labels, Device::cpu());
  const LossTerms lg = gpu.step(inputs, labels, Device::cuda());
  EXPECT_NEAR(lg.total.item(), lc.total.item(), tolerance * std::abs(lc.total.item()));
  EXPECT_NEAR(lg.ce, lc.ce, tolerance * std::abs(lc.ce));
  EXPECT_NEAR(lg.nce, lc.nce, tolerance * std::abs(lc.nce) + 1e-12);
  EXPECT_NEAR(lg.red, lc.red, tolerance * std::abs(lc.red) + 1e-12);
  EXPECT_NEAR(lg.hash, lc.hash, tolerance * std::abs(lc.hash) + 1e-12);
  // Every parameter's gradient, named, so a failure says which layer is off.
  const Tensor gc = cpu.store->flat_grads(), gg = gpu.store->flat_grads();
  for (const ParamSlot& s : cpu.store->slots()) {
    const Tensor a = gg.slice(0, s.offset, s.offset + s.numel);
    const Tensor b = gc.slice(0, s.offset, s.offset + s.numel);
    EXPECT_LT(rel_error(a, b), tolerance) << s.name;
  }
}

}  // namespace

TEST(InfoMambaGpu, ImageModelGradientsMatchCpuInFloat64) {
  REQUIRE_GPU();
  const ModelConfig cfg = small_image_model();
  expect_same_training_step(cfg, DType::Float64, image_batch(cfg, DType::Float64, 6, 1), 1e-9);
}

TEST(InfoMambaGpu, ImageModelGradientsMatchCpuInFloat32) {
  REQUIRE_GPU();
  const ModelConfig cfg = small_image_model();
  expect_same_training_step(cfg, DType::Float32, image_batch(cfg, DType::Float32, 6, 2), 1e-4);
}

TEST(InfoMambaGpu, PaddedTextModelGradientsMatchCpu) {
  REQUIRE_GPU();
  const ModelConfig cfg = small_text_model();
  expect_same_training_step(cfg, DType::Float64, text_batch(cfg, 5, 3), 1e-9);
}

TEST(InfoMambaGpu, AblationSwitchesMatchCpu) {
  REQUIRE_GPU();
  ModelConfig base = small_image_model();
  const Tensor x = image_batch(base, DType::Float64, 4, 4);
  ModelConfig a = base;
  a.filter.static_assign = true;
  a.filter.no_mix = true;
  expect_same_training_step(a, DType::Float64, x, 1e-9);
  ModelConfig b = base;
  b.filter.hash = false;
  b.imf.inject = false;
  b.bidirectional = false;
  expect_same_training_step(b, DType::Float64, x, 1e-9);
  ModelConfig c = base;
  c.imf.ssm_path = false;
  expect_same_training_step(c, DType::Float64, x, 1e-9);
}

TEST(InfoMambaGpu, AdamWStepsStayWithTheCpu) {
  REQUIRE_GPU();
  const ModelConfig cfg = small_image_model();
  Replica cpu(cfg, DType::Float64, Device::cpu()), gpu(cfg, DType::Float64, Device::cuda());
  OptimConfig oc;
  AdamW opt_cpu(*cpu.store, oc), opt_gpu(*gpu.store, oc);
  const Tensor labels = labels_for(4, cfg.num_classes);
  for (int step = 0; step < 3; ++step) {
    const Tensor x = image_batch(cfg, DType::Float64, 4, 10 + step);
    cpu.step(x, labels, Device::cpu());
    gpu.step(x, labels, Device::cuda());
    EXPECT_NEAR(clip_grad_norm(*gpu.store, 1.0), clip_grad_norm(*cpu.store, 1.0), 1e-9);
    opt_cpu.step(1e-3);
    opt_gpu.step(1e-3);
  }
  EXPECT_LT(rel_error(gpu.store->flat_params(), cpu.store->flat_params()), 1e-9);
  EXPECT_LT(rel_error(opt_gpu.exp_avg_sq(), opt_cpu.exp_avg_sq()), 1e-9);
}

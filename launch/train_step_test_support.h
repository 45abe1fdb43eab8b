// A small image model with its store, optimiser and TrainStep on one device, for the
// TrainStep tests on the CPU (train_step_test.cpp) and on a GPU (train_step_gpu_test.cpp).
#pragma once

#include <memory>

#include "core/ops.h"
#include "core/rng.h"
#include "launch/train_step.h"

namespace im::launch::testing {

inline RunConfig small_run_config() {
  RunConfig cfg;
  layers::ModelConfig& m = cfg.model;
  m.channels = 3;
  m.image_size = 16;
  m.patch = 4;  // 16 tokens
  m.d_model = 24;
  m.depth = 2;
  m.d_state = 5;
  m.num_concepts = 7;
  m.num_buckets = 4;
  m.k_min = 2;
  m.k_max = 6;
  m.d_proj = 16;
  m.num_classes = 5;
  cfg.optim.grad_clip = 1.0;
  return cfg;
}

struct StepFixture {
  RunConfig cfg = small_run_config();
  Generator init{42}, train{7};
  std::unique_ptr<layers::InfoMamba> model;
  std::unique_ptr<layers::ParameterStore> store;
  std::unique_ptr<layers::AdamW> optimizer;
  std::unique_ptr<TrainStep> step;

  StepFixture(Device device, DType dtype, const RunConfig& run = small_run_config()) : cfg(run) {
    // bfloat16 training builds the model in float32; the store keeps float32 masters.
    model = std::make_unique<layers::InfoMamba>(cfg.model, init,
                                                dtype == DType::BFloat16 ? DType::Float32 : dtype);
    store = std::make_unique<layers::ParameterStore>(*model, dtype, device);
    optimizer = std::make_unique<layers::AdamW>(*store, cfg.optim);
    model->train();
    step = std::make_unique<TrainStep>(*model, *store, *optimizer, cfg, nullptr, train);
  }

  // A host batch of `n` images (float64 values in the model's dtype) and labels.
  data::Batch batch(int64_t n, DType dtype, uint64_t seed) const {
    Generator gen(seed);
    data::Batch b;
    b.inputs =
        randn({n, cfg.model.channels, cfg.model.image_size, cfg.model.image_size}, gen, dtype);
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < n; ++i) labels.push_back(i % cfg.model.num_classes);
    b.labels = Tensor::from_vector<int64_t>(labels, {n});
    b.global_size = n;
    return b;
  }
};

}  // namespace im::launch::testing

// The training step on a GPU: the same result as on the CPU, a divergence decided on the
// device that updates nothing, GPU phase times from events, and batches staged on a copy
// stream.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "launch/batch_stager.h"
#include "launch/train_step.h"
#include "launch/train_step_test_support.h"
#include "tests/gpu_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::launch::DivergedError;
using im::launch::StepPhases;
using im::launch::testing::StepFixture;
using im::testing::rel_error;

TEST(TrainStepGpu, MatchesTheCpuStepInFloat64) {
  REQUIRE_GPU();
  StepFixture cpu(Device::cpu(), DType::Float64), gpu(Device::cuda(), DType::Float64);
  for (int i = 0; i < 3; ++i) {
    const auto batch = cpu.batch(6, DType::Float64, 10 + i);
    StepPhases phases;
    const auto rc = cpu.step->run(batch, 1e-2, i);
    const auto rg = gpu.step->run(batch, 1e-2, i, &phases);
    EXPECT_NEAR(rg.loss, rc.loss, 1e-9 * std::abs(rc.loss)) << "step " << i;
    EXPECT_NEAR(rg.terms.ce, rc.terms.ce, 1e-9 * std::abs(rc.terms.ce));
    EXPECT_NEAR(rg.terms.nce, rc.terms.nce, 1e-9 * std::abs(rc.terms.nce) + 1e-12);
    EXPECT_NEAR(rg.terms.red, rc.terms.red, 1e-9 * std::abs(rc.terms.red) + 1e-12);
    EXPECT_NEAR(rg.terms.hash, rc.terms.hash, 1e-9 * std::abs(rc.terms.hash) + 1e-12);
    EXPECT_NEAR(rg.grad_norm, rc.grad_norm, 1e-9 * rc.grad_norm);
    // GPU phases come from events: each queued phase took some GPU time.
    EXPECT_GT(phases.forward, 0.0);
    EXPECT_GT(phases.backward, 0.0);
    EXPECT_GT(phases.optimizer, 0.0);
  }
  EXPECT_LT(rel_error(gpu.store->flat_params(), cpu.store->flat_params()), 1e-9);
  EXPECT_EQ(gpu.optimizer->steps_taken(), 3);
}

// The loss goes NaN on the GPU: AdamW skips on the device's verdict, the host throws
// after the step, and nothing changed: masters, bf16 model copy, moments, step count.
TEST(TrainStepGpu, NonFiniteLossUpdatesNothingInMixedPrecision) {
  REQUIRE_GPU();
  StepFixture f(Device::cuda(), DType::BFloat16);
  ASSERT_TRUE(f.store->has_master());
  f.step->run(f.batch(6, DType::Float32, 1), 1e-3, 0);
  const Tensor master = f.store->master_params().to(Device::cpu());
  const Tensor model = f.store->flat_params().to(DType::Float32).to(Device::cpu());
  const Tensor moments = f.optimizer->exp_avg_sq().to(Device::cpu());
  im::data::Batch bad = f.batch(6, DType::Float32, 2);
  bad.inputs.fill_(std::numeric_limits<double>::infinity());
  try {
    f.step->run(bad, 1e-3, 1);
    FAIL() << "no DivergedError";
  } catch (const DivergedError& e) {
    EXPECT_NE(std::string(e.what()).find("at step 2; nothing was updated"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(f.optimizer->steps_taken(), 1);
  EXPECT_EQ(rel_error(f.store->master_params().to(Device::cpu()), master), 0.0);
  EXPECT_EQ(rel_error(f.store->flat_params().to(DType::Float32).to(Device::cpu()), model), 0.0);
  EXPECT_EQ(rel_error(f.optimizer->exp_avg_sq().to(Device::cpu()), moments), 0.0);
  // The next good batch trains on as if the bad one never came.
  const auto r = f.step->run(f.batch(6, DType::Float32, 3), 1e-3, 2);
  EXPECT_TRUE(std::isfinite(r.loss));
  EXPECT_EQ(f.optimizer->steps_taken(), 2);
}

TEST(BatchStagerGpu, StagedBatchesArriveIntactWhileStepsRun) {
  REQUIRE_GPU();
  StepFixture f(Device::cuda(), DType::Float32);
  im::launch::BatchStager stager(Device::cuda());
  std::vector<im::data::Batch> host;
  for (int i = 0; i < 4; ++i) {
    im::data::Batch b = f.batch(5, DType::Float32, 20 + i);
    b.inputs = b.inputs.pinned();
    b.labels = b.labels.pinned();
    host.push_back(b);
  }
  stager.stage(host[0]);
  for (int i = 0; i < 4; ++i) {
    const im::data::Batch batch = stager.take();
    if (i + 1 < 4) stager.stage(host[i + 1]);  // copies while step i runs
    ASSERT_TRUE(batch.inputs.device().is_cuda());
    EXPECT_EQ(rel_error(batch.inputs.to(Device::cpu()), host[i].inputs), 0.0) << i;
    EXPECT_EQ(batch.labels.to(Device::cpu()).to_vector<int64_t>(),
              host[i].labels.to_vector<int64_t>());
    f.step->run(batch, 1e-3, i);
  }
  EXPECT_FALSE(stager.staged());
}

namespace {
// Trains `steps` steps with a varying learning rate on both fixtures, batch i the same
// for both; `sizes` gives each step's batch size.
void expect_same_training(StepFixture& eager, StepFixture& graphed, const std::vector<int>& sizes,
                          DType input_dtype, double tolerance) {
  for (size_t i = 0; i < sizes.size(); ++i) {
    const auto batch = eager.batch(sizes[i], input_dtype, 30 + i);
    const double lr = 1e-2 / (1.0 + i);
    const auto re = eager.step->run(batch, lr, static_cast<int64_t>(i));
    StepPhases phases;
    const auto rg = graphed.step->run(batch, lr, static_cast<int64_t>(i), &phases);
    EXPECT_NEAR(rg.loss, re.loss, tolerance * std::abs(re.loss)) << "step " << i;
    EXPECT_NEAR(rg.grad_norm, re.grad_norm, tolerance * re.grad_norm) << "step " << i;
    EXPECT_LT(rel_error(rg.out.logits, re.out.logits), tolerance) << "step " << i;
    EXPECT_GT(phases.forward, 0.0) << "step " << i;
    EXPECT_GT(phases.backward, 0.0) << "step " << i;
  }
  EXPECT_EQ(graphed.optimizer->steps_taken(), eager.optimizer->steps_taken());
  EXPECT_LT(rel_error(graphed.store->master_params(), eager.store->master_params()), tolerance);
  EXPECT_LT(rel_error(graphed.optimizer->exp_avg_sq(), eager.optimizer->exp_avg_sq()), tolerance);
}
}  // namespace

// After its eager warm-up steps the step replays as one CUDA graph, with the learning
// rate changing every step, and trains exactly as kernel-by-kernel launches do. A short
// batch after the capture runs eagerly and the graph resumes after it.
TEST(TrainStepGpu, GraphReplaysTrainAsEagerStepsDo) {
  REQUIRE_GPU();
  for (DType dtype : {DType::Float64, DType::BFloat16}) {
    im::launch::RunConfig eager_cfg = im::launch::testing::small_run_config();
    eager_cfg.train.cuda_graph = false;
    StepFixture eager(Device::cuda(), dtype, eager_cfg), graphed(Device::cuda(), dtype);
    const DType inputs = dtype == DType::Float64 ? DType::Float64 : DType::Float32;
    // Same kernels, same order, same inputs: the replays agree with eager steps to the
    // last bit but for atomics' order.
    expect_same_training(eager, graphed, {6, 6, 6, 6, 4, 6, 6}, inputs,
                         dtype == DType::Float64 ? 1e-12 : 1e-5);
    EXPECT_TRUE(graphed.step->graphed()) << im::dtype_name(dtype);
    EXPECT_FALSE(eager.step->graphed());
  }
}

// Padded text reads the count of real tokens back to the host mid-step, which a capture
// cannot hold: the capture fails, says why once, and training goes on eagerly.
TEST(TrainStepGpu, AStepThatCannotBeCapturedTrainsEagerly) {
  REQUIRE_GPU();
  im::launch::RunConfig text = im::launch::testing::small_run_config();
  text.model.modality = "text";
  text.model.vocab_size = 23;
  text.model.max_len = 9;
  text.model.pad_id = 0;
  im::launch::RunConfig eager_cfg = text;
  eager_cfg.train.cuda_graph = false;
  StepFixture eager(Device::cuda(), DType::Float32, eager_cfg),
      graphed(Device::cuda(), DType::Float32, text);
  for (int i = 0; i < 4; ++i) {
    im::data::Batch b;
    std::vector<int64_t> ids;
    for (int s = 0; s < 5; ++s)
      for (int t = 0; t < 9; ++t) ids.push_back(t < 9 - s ? 1 + (7 * s + 3 * t + i) % 22 : 0);
    b.inputs = Tensor::from_vector<int64_t>(ids, {5, 9});
    b.labels = Tensor::from_vector<int64_t>({0, 1, 2, 3, 4}, {5});
    b.global_size = 5;
    const auto re = eager.step->run(b, 1e-2, i);
    const auto rg = graphed.step->run(b, 1e-2, i);
    EXPECT_NEAR(rg.loss, re.loss, 1e-5 * std::abs(re.loss)) << i;
  }
  EXPECT_FALSE(graphed.step->graphed());
  EXPECT_LT(rel_error(graphed.store->flat_params(), eager.store->flat_params()), 1e-5);
}

// Inside the graph no index is checked against its range, so a replay checks the labels
// first: a bad one is one clear error and nothing is launched; training then goes on.
TEST(TrainStepGpu, AReplayRejectsALabelOutOfRange) {
  REQUIRE_GPU();
  StepFixture f(Device::cuda(), DType::Float32);
  for (int i = 0; i < 3; ++i) f.step->run(f.batch(6, DType::Float32, 40 + i), 1e-3, i);
  ASSERT_TRUE(f.step->graphed());
  const Tensor params = f.store->flat_params().to(Device::cpu());
  im::data::Batch bad = f.batch(6, DType::Float32, 50);
  bad.labels = Tensor::from_vector<int64_t>({0, 1, 2, 99, 3, 4}, {6});
  try {
    f.step->run(bad, 1e-3, 3);
    FAIL() << "no error";
  } catch (const im::Error& e) {
    EXPECT_NE(std::string(e.what()).find("label 99 at position 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rel_error(f.store->flat_params().to(Device::cpu()), params), 0.0);
  EXPECT_EQ(f.optimizer->steps_taken(), 3);
  EXPECT_TRUE(std::isfinite(f.step->run(f.batch(6, DType::Float32, 51), 1e-3, 3).loss));
}

#include "launch/train_step.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "launch/batch_stager.h"
#include "launch/phase_timer.h"
#include "launch/train_step_test_support.h"

using im::Device;
using im::DType;
using im::Tensor;
using im::launch::DivergedError;
using im::launch::StepPhases;
using im::launch::testing::StepFixture;

TEST(TrainStep, UpdatesAndReportsTheLossAndNorm) {
  StepFixture f(Device::cpu(), DType::Float64);
  const Tensor before = f.store->flat_params().clone();
  StepPhases phases;
  const auto r = f.step->run(f.batch(6, DType::Float64, 1), 1e-3, 0, &phases);
  EXPECT_TRUE(std::isfinite(r.loss));
  EXPECT_GT(r.loss, 0.0);
  EXPECT_EQ(r.loss, r.terms.loss);
  EXPECT_NEAR(r.loss, r.terms.total.item(), 1e-12);
  EXPECT_GT(r.grad_norm, 0.0);
  EXPECT_EQ(f.optimizer->steps_taken(), 1);
  EXPECT_GT(im::sum(im::abs(im::sub(f.store->flat_params(), before))).item(), 0.0);
  EXPECT_GT(phases.forward, 0.0);
  EXPECT_GT(phases.backward, 0.0);
  EXPECT_GE(phases.optimizer, 0.0);
}

// A batch that makes the loss NaN: the step throws naming the loss and the step, and the
// parameters, moments and step count are as before it.
TEST(TrainStep, NonFiniteLossUpdatesNothing) {
  StepFixture f(Device::cpu(), DType::Float64);
  f.step->run(f.batch(6, DType::Float64, 1), 1e-3, 0);
  const Tensor params = f.store->flat_params().clone();
  const Tensor moments = f.optimizer->exp_avg().clone();
  im::data::Batch bad = f.batch(6, DType::Float64, 2);
  bad.inputs.fill_(std::numeric_limits<double>::quiet_NaN());
  try {
    f.step->run(bad, 1e-3, 4);
    FAIL() << "no DivergedError";
  } catch (const DivergedError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("the loss is"), std::string::npos) << what;
    EXPECT_NE(what.find("nan at step 5; nothing was updated"), std::string::npos) << what;
  }
  EXPECT_EQ(f.optimizer->steps_taken(), 1);
  EXPECT_EQ(im::sum(im::abs(im::sub(f.store->flat_params(), params))).item(), 0.0);
  EXPECT_EQ(im::sum(im::abs(im::sub(f.optimizer->exp_avg(), moments))).item(), 0.0);
}

TEST(PhaseTimer, OnTheCpuAddsWallTimeToEachPhase) {
  StepPhases phases;
  {
    im::launch::PhaseTimer timer(&phases, Device::cpu());
    timer.mark(&StepPhases::forward);
    timer.mark(&StepPhases::forward);
    timer.mark(&StepPhases::backward);
    timer.finish();
  }
  EXPECT_GE(phases.forward, 0.0);
  EXPECT_GE(phases.backward, 0.0);
  EXPECT_EQ(phases.comm, 0.0);
  // Without phases to fill it does nothing.
  im::launch::PhaseTimer idle(nullptr, Device::cpu());
  idle.mark(&StepPhases::forward);
  idle.finish();
}

TEST(BatchStager, OnTheCpuHandsTheBatchThrough) {
  StepFixture f(Device::cpu(), DType::Float64);
  im::launch::BatchStager stager(Device::cpu());
  EXPECT_FALSE(stager.staged());
  const auto host = f.batch(3, DType::Float64, 5);
  stager.stage(host);
  EXPECT_TRUE(stager.staged());
  const auto taken = stager.take();
  EXPECT_FALSE(stager.staged());
  EXPECT_EQ(taken.inputs.data_ptr(), host.inputs.data_ptr());
  EXPECT_THROW(stager.take(), im::Error);
}

// A bfloat16 parameter store keeps float32 masters beside the model's bf16 copy. Packing,
// refreshing and the optimiser's refusal off the GPU need no GPU: they are copies and
// checks (the bf16 arithmetic itself runs only on a GPU; layers/optimizer_gpu_test.cpp).
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/ops.h"
#include "core/rng.h"
#include "layers/optimizer.h"
#include "layers/parameter_store.h"

using im::DType;
using im::Tensor;
using namespace im::layers;

namespace {

class TwoParams : public Module {
 public:
  TwoParams() {
    im::Generator gen(3);
    register_parameter("w", im::randn({5, 7}, gen, DType::Float32), {.weight_decay = true});
    register_parameter("b", im::randn({3}, gen, DType::Float32));
    register_parameter("a_log", im::randn({4}, gen, DType::Float32), {.keep_float32 = true});
  }
};

std::vector<float> rounded_to_bf16(const Tensor& t) {
  return t.to(DType::BFloat16).to(DType::Float32).to_vector<float>();
}

}  // namespace

TEST(ParameterStoreMixed, Float32StoreHasNoSeparateMasters) {
  TwoParams m;
  ParameterStore store(m, DType::Float32);
  EXPECT_FALSE(store.has_master());
  EXPECT_EQ(store.master_params().data_ptr(), store.flat_params().data_ptr());
}

TEST(ParameterStoreMixed, Bf16StoreKeepsFloat32MastersAndARoundedModelCopy) {
  TwoParams built;
  const std::vector<float> w = built.named_parameters()[0].tensor->to_vector<float>();
  ParameterStore store(built, DType::BFloat16);
  ASSERT_TRUE(store.has_master());
  EXPECT_EQ(store.master_params().dtype(), DType::Float32);
  EXPECT_EQ(store.flat_params().dtype(), DType::BFloat16);
  EXPECT_EQ(store.flat_grads().dtype(), DType::Float32);
  EXPECT_EQ(store.decay_mask().dtype(), DType::Float32);
  // The masters hold the built float32 values exactly; the parameters are bf16 views.
  const std::vector<float> master = store.master_params().slice(0, 0, 35).to_vector<float>();
  EXPECT_EQ(master, w);
  const Tensor& param = *built.named_parameters()[0].tensor;
  EXPECT_EQ(param.dtype(), DType::BFloat16);
  EXPECT_TRUE(param.requires_grad());
  EXPECT_EQ(param.grad().dtype(), DType::Float32);
  EXPECT_EQ(store.flat_params().to(DType::Float32).to_vector<float>(),
            rounded_to_bf16(store.master_params()));
  // A keep_float32 parameter is a float32 view of the masters themselves.
  const Tensor& a_log = *built.named_parameters()[2].tensor;
  EXPECT_EQ(a_log.dtype(), DType::Float32);
  EXPECT_EQ(a_log.data_ptr(), store.master_params().slice(0, 64, 68).data_ptr());
  EXPECT_TRUE(a_log.requires_grad());
  EXPECT_EQ(a_log.grad().data_ptr(), store.flat_grads().slice(0, 64, 68).data_ptr());
  // A restore writes the masters; refreshing rounds them into the model's views.
  store.master_params().fill_(1.0 / 3.0);
  store.refresh_model_params();
  for (float v : param.to(DType::Float32).to_vector<float>()) EXPECT_EQ(v, 0.333984375f);
  for (float v : a_log.to_vector<float>()) EXPECT_EQ(v, 1.0f / 3.0f);
}

// Autograd adds a bf16 gradient into a float32 slot by widening it first.
TEST(ParameterStoreMixed, Bf16GradientsAccumulateIntoFloat32Slots) {
  TwoParams built;
  ParameterStore store(built, DType::BFloat16);
  const Tensor& w = *built.named_parameters()[0].tensor;
  store.flat_grads().fill_(0.25);
  // A cast is differentiable on the CPU: d/dw sum(w) = 1 arrives as a bf16 gradient.
  Tensor loss = im::sum(w.to(DType::Float32));
  loss.backward();
  for (float v : w.grad().to_vector<float>()) EXPECT_EQ(v, 1.25f);
}

TEST(ParameterStoreMixed, AdamWOnACpuBf16StoreSaysItNeedsAGpu) {
  TwoParams m;
  ParameterStore store(m, DType::BFloat16);
  AdamW opt(store, OptimConfig{});
  EXPECT_EQ(opt.exp_avg().dtype(), DType::Float32);
  try {
    opt.step(1e-3);
    FAIL() << "AdamW stepped a bf16 store on the CPU";
  } catch (const im::Error& e) {
    EXPECT_NE(std::string(e.what()).find("mixed precision needs"), std::string::npos) << e.what();
  }
}

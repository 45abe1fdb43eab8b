// Float64 gradient checks of the whole InfoMamba mixer under each ablation switch, and
// of each loss term. Parameters are bound to one flat input so finite differences reach
// every one of them.
#include "tests/gradcheck.h"

#include "layers/imf_mixer.h"
#include "layers/losses.h"
#include "layers/parameter_store.h"

using im::DType;
using im::Tensor;
using namespace im::layers;

namespace {

ModelConfig tiny_mixer_config() {
  ModelConfig cfg;
  cfg.d_model = 4;
  cfg.expand = 2;
  cfg.d_state = 2;
  cfg.num_concepts = 5;
  cfg.num_buckets = 3;
  cfg.top_r = 2;
  cfg.k_min = 2;
  cfg.k_max = 4;
  cfg.conv_kernel = 3;
  return cfg;
}

// Checks d(mixer output, hash loss)/d(input, every parameter).
void check_mixer(const ModelConfig& cfg, uint64_t seed) {
  const int64_t L = 5;
  im::Generator gen(seed);
  ImfMixer mixer(cfg, L, /*depth=*/2, gen, DType::Float64);
  ParameterStore store(mixer, DType::Float64);
  Tensor flat = store.flat_params().detach().clone();
  flat.set_requires_grad(true);
  Tensor x = im::testing::random_input({2, L, cfg.d_model}, seed + 1);
  ForwardContext ctx;
  EXPECT_TRUE(im::testing::gradcheck_multi(
      [&](const std::vector<Tensor>& in) {
        store.bind(in[1]);
        MixerOutput out = mixer.forward(in[0], ctx);
        std::vector<Tensor> outs{out.out};
        if (out.hash_loss.defined()) outs.push_back(out.hash_loss);
        return outs;
      },
      {x, flat}));
  store.rebind_leaves();
}

}  // namespace

GRADCHECK_CASE(mixer_default_switches, "selective_scan", "softmax", "masked_fill",
               "causal_depthwise_conv1d", "flip", "layer_norm", "log_softmax") {
  check_mixer(tiny_mixer_config(), 10);
}

GRADCHECK_CASE(mixer_filter_switches, "selective_scan", "softmax") {
  const std::vector<FilterSwitches> variants = {
      {.static_assign = true, .no_mix = false, .hash = false, .budget = false},
      {.static_assign = false, .no_mix = true, .hash = true, .budget = true},
      {.static_assign = false, .no_mix = false, .hash = false, .budget = true},
      {.static_assign = false, .no_mix = false, .hash = true, .budget = false},
      {.static_assign = false, .no_mix = false, .hash = false, .budget = false},
      {.static_assign = true, .no_mix = true, .hash = false, .budget = false},
  };
  uint64_t seed = 20;
  for (const FilterSwitches& sw : variants) {
    ModelConfig cfg = tiny_mixer_config();
    cfg.filter = sw;
    SCOPED_TRACE("static_assign=" + std::to_string(sw.static_assign) +
                 " no_mix=" + std::to_string(sw.no_mix) + " hash=" + std::to_string(sw.hash) +
                 " budget=" + std::to_string(sw.budget));
    check_mixer(cfg, seed++);
  }
}

GRADCHECK_CASE(mixer_imf_switches, "silu", "matmul") {
  const std::vector<ImfSwitches> variants = {
      {.inject = false, .ssm_path = true, .filter_path = true},
      {.inject = true, .ssm_path = false, .filter_path = true},
      {.inject = true, .ssm_path = true, .filter_path = false},
      {.inject = true, .ssm_path = false, .filter_path = false},
  };
  uint64_t seed = 40;
  for (const ImfSwitches& sw : variants) {
    ModelConfig cfg = tiny_mixer_config();
    cfg.imf = sw;
    SCOPED_TRACE("inject=" + std::to_string(sw.inject) + " ssm_path=" +
                 std::to_string(sw.ssm_path) + " filter_path=" + std::to_string(sw.filter_path));
    check_mixer(cfg, seed++);
  }
  ModelConfig unidirectional = tiny_mixer_config();
  unidirectional.bidirectional = false;
  check_mixer(unidirectional, 50);
}

GRADCHECK_CASE(loss_cross_entropy_with_smoothing, "log_softmax", "gather") {
  Tensor logits = im::testing::random_input({5, 7}, 1, -2, 2);
  Tensor labels = Tensor::from_vector<int64_t>({0, 6, 3, 3, 1}, {5});
  for (double eps : {0.0, 0.1})
    EXPECT_TRUE(im::testing::gradcheck(
        [&](const auto& in) { return cross_entropy(in[0], labels, eps); }, {logits}));
}

GRADCHECK_CASE(loss_info_nce, "matmul", "rsqrt") {
  Tensor r = im::testing::random_input({4, 6}, 2);
  Tensor protos = im::testing::random_input({3, 6}, 3);
  Tensor labels = Tensor::from_vector<int64_t>({2, 0, 1, 2}, {4});
  EXPECT_TRUE(im::testing::gradcheck(
      [&](const auto& in) { return info_nce(in[0], in[1], labels, 0.1); }, {r, protos}));
}

GRADCHECK_CASE(loss_redundancy, "var", "sqrt") {
  Tensor rg = im::testing::random_input({6, 4}, 4);
  Tensor rh = im::testing::random_input({6, 4}, 5);
  EXPECT_TRUE(im::testing::gradcheck(
      [](const auto& in) { return redundancy_loss(in[0], in[1]); }, {rg, rh}));
}

GRADCHECK_CASE(loss_hash_infomax, "log_softmax", "exp", "log") {
  Tensor logits = im::testing::random_input({2, 5, 3}, 6, -2, 2);
  Tensor mask = Tensor::from_vector<double>({1, 1, 1, 0, 0, 1, 1, 1, 1, 1}, {2, 5});
  for (bool masked : {false, true}) {
    EXPECT_TRUE(im::testing::gradcheck(
        [&](const auto& in) {
          const Tensor lp = im::log_softmax(in[0], -1);
          return hash_infomax_loss(im::exp(lp), lp, masked ? mask : Tensor());
        },
        {logits}));
  }
}

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
               "causal_depthwise_conv1d", "layer_norm", "log_softmax", "gated_fusion",
               "sigmoid_gate", "linear", "split") {
  check_mixer(tiny_mixer_config(), 10);
}

// Every distinct combination of the ablation switches of MODEL.md §2 and §4. Settings
// that another switch makes irrelevant are skipped (filter switches without the global
// stream; hash, budget and inject where static_assign or a missing path ignores them),
// leaving 32 mixers.
GRADCHECK_CASE(mixer_every_switch_combination, "selective_scan", "softmax", "gated_fusion",
               "matmul") {
  std::vector<FilterSwitches> filters;
  for (bool no_mix : {false, true}) {
    filters.push_back({.static_assign = true, .no_mix = no_mix, .hash = false, .budget = false});
    for (bool hash : {false, true})
      for (bool budget : {false, true})
        filters.push_back(
            {.static_assign = false, .no_mix = no_mix, .hash = hash, .budget = budget});
  }
  std::vector<ImfSwitches> imfs = {{.inject = true, .ssm_path = true, .filter_path = true},
                                   {.inject = false, .ssm_path = true, .filter_path = true},
                                   {.inject = true, .ssm_path = false, .filter_path = true},
                                   {.inject = true, .ssm_path = true, .filter_path = false},
                                   {.inject = true, .ssm_path = false, .filter_path = false}};
  uint64_t seed = 100;
  int checked = 0;
  for (const ImfSwitches& imf : imfs) {
    const size_t filter_variants = imf.filter_path ? filters.size() : 1;
    for (size_t f = 0; f < filter_variants; ++f) {
      ModelConfig cfg = tiny_mixer_config();
      cfg.imf = imf;
      cfg.filter = filters[f];
      const FilterSwitches& sw = cfg.filter;
      SCOPED_TRACE("inject=" + std::to_string(imf.inject) +
                   " ssm_path=" + std::to_string(imf.ssm_path) +
                   " filter_path=" + std::to_string(imf.filter_path) + " static_assign=" +
                   std::to_string(sw.static_assign) + " no_mix=" + std::to_string(sw.no_mix) +
                   " hash=" + std::to_string(sw.hash) + " budget=" + std::to_string(sw.budget));
      check_mixer(cfg, seed++);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 32);
}

GRADCHECK_CASE(mixer_unidirectional_scan, "selective_scan") {
  ModelConfig cfg = tiny_mixer_config();
  cfg.bidirectional = false;
  check_mixer(cfg, 50);
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

GRADCHECK_CASE(loss_redundancy, "sum", "sqrt") {
  Tensor rg = im::testing::random_input({6, 4}, 4);
  Tensor rh = im::testing::random_input({6, 4}, 5);
  EXPECT_TRUE(im::testing::gradcheck([](const auto& in) { return redundancy_loss(in[0], in[1]); },
                                     {rg, rh}));
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

// The model as built: sizes of MODEL.md §6, parameter names, shapes, pad handling,
// the bidirectional scan, and weight-decay grouping.
#include "layers/infomamba.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "layers/parameter_store.h"
#include "layers/selective_ssm.h"

using im::DType;
using im::Tensor;
using namespace im::layers;

namespace {
ModelConfig preset(const std::string& name) {
  ModelConfig cfg;
  EXPECT_TRUE(apply_preset(name, cfg));
  return cfg;
}

int64_t count_prefix(InfoMamba& m, const std::string& prefix) {
  int64_t n = 0;
  for (const auto& p : m.named_parameters())
    if (p.name.rfind(prefix, 0) == 0) n += p.tensor->numel();
  return n;
}
}  // namespace

TEST(InfoMamba, NanoPresetHasTheSpecifiedSize) {
  im::Generator gen(0);
  InfoMamba m(preset("nano"), gen);
  // MODEL.md §6: nano (d=64, depth 4, K=16, N=8, patch 4, 28x28x1) has 0.45 M parameters.
  EXPECT_NEAR(static_cast<double>(m.num_parameters()), 0.45e6, 0.01e6) << m.num_parameters();
  EXPECT_EQ(m.seq_len(), 49);
}

TEST(InfoMamba, SmallBlockPartsMatchTheSpecification) {
  // MODEL.md §6: per small block, filter 0.63 M, SSM 1.04 M, fusion 0.59 M, MLP 1.18 M.
  ModelConfig cfg = preset("small");
  cfg.depth = 1;
  cfg.image_size = 224;
  cfg.channels = 3;
  cfg.num_classes = 1000;
  im::Generator gen(0);
  InfoMamba m(cfg, gen);
  const std::string b = "blocks.0.mixer.";
  const double filter = count_prefix(m, b + "filter.");
  const double ssm = count_prefix(m, b + "ssm.") + count_prefix(m, b + "in_proj.") +
                     count_prefix(m, b + "out_proj.");
  const double fusion = count_prefix(m, b + "inject_proj.") + count_prefix(m, b + "gate_proj.") +
                        count_prefix(m, b + "alpha_");
  const double mlp = count_prefix(m, "blocks.0.mlp.");
  EXPECT_NEAR(filter, 0.63e6, 0.01e6);
  EXPECT_NEAR(ssm, 1.04e6, 0.01e6);
  EXPECT_NEAR(fusion, 0.59e6, 0.01e6);
  EXPECT_NEAR(mlp, 1.18e6, 0.01e6);
}

TEST(InfoMamba, ParameterNamesAreStableDottedPaths) {
  im::Generator gen(0);
  InfoMamba m(preset("nano"), gen);
  std::set<std::string> names;
  for (const auto& p : m.named_parameters()) EXPECT_TRUE(names.insert(p.name).second) << p.name;
  for (const char* n :
       {"patch_embed.weight", "pos_embed", "blocks.3.mixer.filter.centers",
        "blocks.3.mixer.filter.bucket_embed", "blocks.3.mixer.ssm.A_log",
        "blocks.3.mixer.ssm.A_b_log", "blocks.3.mixer.ssm.D_b", "blocks.0.mixer.ssm.dt_proj.bias",
        "blocks.0.mixer.gate_proj.bias", "blocks.0.mixer.alpha_h", "blocks.0.mlp.fc1.weight",
        "norm.weight", "head.weight", "proj_g.weight", "proj_h.weight", "prototypes"})
    EXPECT_TRUE(names.count(n)) << n;
}

TEST(InfoMamba, InitialisationFollowsTheSpecification) {
  im::Generator gen(0);
  InfoMamba m(preset("nano"), gen);
  for (const auto& p : m.named_parameters()) {
    const auto v = p.tensor->to_vector<double>();
    if (p.name == "blocks.0.mixer.ssm.A_log") {
      EXPECT_NEAR(v[0], 0.0, 1e-7);
      EXPECT_NEAR(v[7], std::log(8.0), 1e-6);  // row e = log(1..N)
    } else if (p.name == "blocks.0.mixer.gate_proj.bias") {
      EXPECT_EQ(v[0], -2.0f);
    } else if (p.name == "blocks.0.mixer.alpha_g") {
      EXPECT_NEAR(v[0], 0.1, 1e-7);
    } else if (p.name == "blocks.0.mixer.filter.mix") {
      EXPECT_EQ(v[0], 1.0);
      EXPECT_EQ(v[1], 0.0);
    } else if (p.name == "blocks.0.mixer.ssm.dt_proj.bias") {
      for (double b : v) {
        const double dt = std::log1p(std::exp(b));
        EXPECT_GE(dt, 1e-3 * 0.999);
        EXPECT_LE(dt, 0.1 * 1.001);
      }
    }
  }
}

TEST(InfoMamba, ImageForwardShapesAndSwitchesChangeTheParameters) {
  im::Generator gen(1);
  ModelConfig cfg = preset("nano");
  cfg.depth = 2;
  InfoMamba m(cfg, gen);
  Tensor x = im::randn({3, 1, 28, 28}, gen);
  ForwardContext ctx{&gen, Tensor()};
  ModelOutput out = m.forward(x, ctx);
  EXPECT_EQ(out.logits.shape(), (im::Shape{3, 10}));
  EXPECT_EQ(out.r_g.shape(), (im::Shape{3, 128}));
  EXPECT_TRUE(out.hash_loss.defined());
  // r is L2-normalised.
  const auto rg = out.r_g.to_vector<float>();
  double norm = 0;
  for (int i = 0; i < 128; ++i) norm += rg[i] * rg[i];
  EXPECT_NEAR(norm, 1.0, 1e-4);

  ModelConfig both_off = cfg;
  both_off.imf.ssm_path = false;
  both_off.imf.filter_path = false;
  InfoMamba plain(both_off, gen);
  EXPECT_LT(plain.num_parameters(), m.num_parameters());
  ModelOutput o2 = plain.forward(x, ctx);
  EXPECT_FALSE(o2.r_g.defined());
  EXPECT_FALSE(o2.r_h.defined());
  EXPECT_FALSE(o2.hash_loss.defined());
  EXPECT_THROW(m.forward(im::randn({3, 1, 32, 32}, gen), ctx), im::Error);
}

TEST(InfoMamba, PadTokensContributeNothing) {
  ModelConfig cfg;
  cfg.modality = "text";
  cfg.vocab_size = 20;
  cfg.max_len = 9;
  cfg.pad_id = 0;
  cfg.num_classes = 3;
  cfg.d_model = 16;
  cfg.depth = 2;
  cfg.num_concepts = 6;
  cfg.d_state = 4;
  cfg.d_proj = 8;
  im::Generator gen(2);
  InfoMamba m(cfg, gen, DType::Float64);
  ParameterStore store(m, DType::Float64);
  // Two samples with 3 trailing pads; changing the pad positions' embeddings must not
  // change the logits, and the pad positions' position embeddings get zero gradient.
  std::vector<int64_t> ids = {5, 3, 7, 2, 9, 4, 0, 0, 0, 1, 1, 8, 6, 2, 3, 0, 0, 0};
  Tensor x = Tensor::from_vector(ids, {2, 9});
  ForwardContext ctx;
  Tensor before = m.forward(x, ctx).logits.detach().clone();
  for (const auto& slot : store.slots()) {
    if (slot.name != "pos_embed") continue;
    im::NoGradGuard no_grad;
    slot.tensor->slice(0, 6, 9).copy_(im::randn({3, 16}, gen, DType::Float64));
  }
  Tensor after = m.forward(x, ctx).logits;
  const auto a = before.to_vector<double>(), b = after.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12);
  store.zero_grad();
  im::sum(after).backward();
  for (const auto& slot : store.slots()) {
    if (slot.name != "pos_embed") continue;
    const auto g = slot.tensor->grad().to_vector<double>();
    for (int64_t i = 6 * 16; i < 9 * 16; ++i) EXPECT_EQ(g[i], 0.0) << i;
    double real = 0;
    for (int64_t i = 0; i < 6 * 16; ++i) real += std::abs(g[i]);
    EXPECT_GT(real, 0.0);
  }
}

TEST(SelectiveSsm, BackwardDirectionEqualsForwardScanOfTheReversedSequence) {
  ModelConfig cfg;
  cfg.d_model = 8;
  cfg.d_state = 3;
  im::Generator gen(3);
  ScanDirection dir(cfg, "_b", gen, DType::Float64);
  Tensor u = im::randn({2, 11, 16}, gen, DType::Float64);
  Tensor inject = im::randn({2, 11, 16}, gen, DType::Float64);
  ForwardContext ctx;
  Tensor backward = dir.forward(u, inject, ctx, /*reverse=*/true);
  Tensor reference =
      im::flip(dir.forward(im::flip(u, 1), im::flip(inject, 1), ctx, /*reverse=*/false), 1);
  const auto a = backward.to_vector<double>(), b = reference.to_vector<double>();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12);
}

TEST(ParameterStore, FlatBufferViewsAndDecayGroups) {
  im::Generator gen(4);
  InfoMamba m(preset("nano"), gen);
  const int64_t n = m.num_parameters();
  ParameterStore store(m, DType::Float32);
  EXPECT_GE(store.numel(), n);
  for (const auto& s : store.slots()) {
    EXPECT_TRUE(s.tensor->shares_storage_with(store.flat_params())) << s.name;
    EXPECT_TRUE(s.tensor->grad().shares_storage_with(store.flat_grads())) << s.name;
    EXPECT_EQ(s.offset % 16, 0);
    const bool decays = s.options.weight_decay;
    const bool exempt = s.name.find("A_log") != std::string::npos ||
                        s.name.find("A_b_log") != std::string::npos ||
                        s.name.find("norm") != std::string::npos ||
                        s.name.find("bias") != std::string::npos || s.name == "pos_embed" ||
                        s.name == "prototypes" || s.name.find(".D") != std::string::npos ||
                        s.name.find("alpha") != std::string::npos;
    EXPECT_NE(decays, exempt) << s.name;
  }
  // Backward accumulates straight into the flat gradient buffer.
  ForwardContext ctx{&gen, Tensor()};
  im::sum(m.forward(im::randn({2, 1, 28, 28}, gen), ctx).logits).backward();
  EXPECT_GT(im::sum(im::abs(store.flat_grads())).item(), 0.0);
}

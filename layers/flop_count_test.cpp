// The analytic FLOP count (docs/PERFORMANCE.md): hand-computed numbers for a tiny config,
// what each ablation switch removes, and agreement with the parameter shapes of the model
// as built, so the count cannot drift from the code.
#include "layers/flop_count.h"

#include <gtest/gtest.h>

#include <map>
#include <regex>

#include "layers/infomamba.h"

using namespace im::layers;

namespace {

// 1x4x4 images, patch 2 -> L = 4 tokens; d = 4, E = 8, N = 2, K = 3, H = 2, conv width 2,
// dt rank R = ceil(4/16) = 1, 3 classes, d_p = 5, 2 blocks, both scan directions.
ModelConfig tiny() {
  ModelConfig c;
  c.channels = 1;
  c.image_size = 4;
  c.patch = 2;
  c.d_model = 4;
  c.expand = 2;
  c.d_state = 2;
  c.num_concepts = 3;
  c.num_buckets = 2;
  c.top_r = 1;
  c.k_min = 1;
  c.k_max = 3;
  c.conv_kernel = 2;
  c.num_classes = 3;
  c.d_proj = 5;
  c.depth = 2;
  return c;
}

std::map<std::string, int64_t> by_name(const ModelConfig& c) {
  std::map<std::string, int64_t> m;
  for (const FlopTerm& t : forward_flop_terms(c)) m[t.name] = t.flops;
  return m;
}

// Per block of tiny(), 2 FLOPs per multiply-add, written out by hand.
constexpr int64_t kInProj = 2 * 4 * 4 * 16;                // L d 2E
constexpr int64_t kQ = 2 * 4 * 4 * 4;                      // L d d_c
constexpr int64_t kScores = 2 * 4 * 4 * 3;                 // L d_c K
constexpr int64_t kHash = 2 * 4 * 4 * 2;                   // L d_c H
constexpr int64_t kV = 2 * 4 * 4 * 4;                      // L d d
constexpr int64_t kAggregate = 2 * 3 * 4 * 4;              // K L d
constexpr int64_t kMix = 2 * 3 * 3 * 4;                    // K K d
constexpr int64_t kMixProj = 2 * 3 * 4 * 4;                // K d d
constexpr int64_t kScatter = 2 * 4 * 3 * 4;                // L K d
constexpr int64_t kFilterOut = 2 * 4 * 4 * 4;              // L d d
constexpr int64_t kInject = 2 * 4 * 4 * 8;                 // L d E
constexpr int64_t kGate = 2 * 4 * 4 * 8;                   // L d E
constexpr int64_t kConv = 2 * (2 * 4 * 8 * 2);             // dirs x 2 L E k
constexpr int64_t kXProj = 2 * (2 * 4 * 8 * (1 + 4));      // dirs x 2 L E (R + 2N)
constexpr int64_t kDtProj = 2 * (2 * 4 * 1 * 8);           // dirs x 2 L R E
constexpr int64_t kScan = 2 * (2 * 2 * 4 * 8 * 2);         // dirs x 2 x 2 L E N
constexpr int64_t kOutProj = 2 * 4 * 8 * 4;                // L E d
constexpr int64_t kMlp = 2 * 4 * 4 * 16 + 2 * 4 * 16 * 4;  // L d 4d + L 4d d
// Once per sample.
constexpr int64_t kPatch = 2 * 4 * (1 * 2 * 2) * 4;  // L (C p^2) d
constexpr int64_t kHead = 2 * 4 * 3;                 // d classes
constexpr int64_t kProj = 2 * 8 * 5;                 // E d_p, each of proj_g and proj_h

constexpr int64_t kFilterBlock = kQ + kScores + kHash + kV + kAggregate + kMix + kMixProj +
                                 kScatter + kFilterOut + kInject + kGate;
constexpr int64_t kScanBlock = kConv + kXProj + kDtProj + kScan;

}  // namespace

TEST(FlopCount, TinyConfigMatchesTheHandCount) {
  static_assert(kFilterBlock == 1416 && kScanBlock == 1536);
  // Per block: 512 + 1416 + 1536 + 256 + 1024 = 4744; two blocks, the patch embedding, the
  // head and the two projections: 9488 + 128 + 24 + 160 = 9800.
  EXPECT_EQ(forward_flops_per_sample(tiny()), 9800);
  EXPECT_EQ(training_flops_per_sample(tiny()), 3 * 9800);
  EXPECT_EQ(tokens_per_sample(tiny()), 4);

  const auto t = by_name(tiny());
  EXPECT_EQ(t.at("patch_embed"), kPatch);
  EXPECT_EQ(t.at("mixer.in_proj"), 2 * kInProj);
  EXPECT_EQ(t.at("filter.q_proj"), 2 * kQ);
  EXPECT_EQ(t.at("filter.scores"), 2 * kScores);
  EXPECT_EQ(t.at("filter.hash_logits"), 2 * kHash);
  EXPECT_EQ(t.at("filter.v_proj"), 2 * kV);
  EXPECT_EQ(t.at("filter.aggregate"), 2 * kAggregate);
  EXPECT_EQ(t.at("filter.mix"), 2 * kMix);
  EXPECT_EQ(t.at("filter.mix_proj"), 2 * kMixProj);
  EXPECT_EQ(t.at("filter.scatter"), 2 * kScatter);
  EXPECT_EQ(t.at("filter.out_proj"), 2 * kFilterOut);
  EXPECT_EQ(t.at("mixer.inject_proj"), 2 * kInject);
  EXPECT_EQ(t.at("mixer.gate_proj"), 2 * kGate);
  EXPECT_EQ(t.at("ssm.conv1d"), 2 * kConv);
  EXPECT_EQ(t.at("ssm.x_proj"), 2 * kXProj);
  EXPECT_EQ(t.at("ssm.dt_proj"), 2 * kDtProj);
  EXPECT_EQ(t.at("ssm.scan"), 2 * kScan);
  EXPECT_EQ(t.at("mixer.out_proj"), 2 * kOutProj);
  EXPECT_EQ(t.at("mlp"), 2 * kMlp);
  EXPECT_EQ(t.at("head"), kHead);
  EXPECT_EQ(t.at("proj_g"), kProj);
  EXPECT_EQ(t.at("proj_h"), kProj);
  EXPECT_EQ(t.size(), 22u);
}

TEST(FlopCount, AblationSwitchesRemoveTheirTerms) {
  const int64_t full = forward_flops_per_sample(tiny());
  auto with = [](auto change) {
    ModelConfig c = tiny();
    change(c);
    return forward_flops_per_sample(c);
  };
  // No global stream: the whole filter, W_gi, the gate and proj_g go; W_in still yields [u; z].
  EXPECT_EQ(with([](ModelConfig& c) { c.imf.filter_path = false; }),
            full - 2 * kFilterBlock - kProj);
  // No scan: conv, projections and scan of both directions, the gate and proj_h go, and W_in
  // yields z alone (half its width).
  EXPECT_EQ(with([](ModelConfig& c) { c.imf.ssm_path = false; }),
            full - 2 * (kScanBlock + kGate + kInProj / 2) - kProj);
  // Both off: a gated MLP mixer, W_in [u; z] and W_out around nothing else.
  EXPECT_EQ(with([](ModelConfig& c) { c.imf.ssm_path = c.imf.filter_path = false; }),
            2 * (kInProj + kOutProj + kMlp) + kPatch + kHead);
  EXPECT_EQ(with([](ModelConfig& c) { c.bidirectional = false; }), full - 2 * kScanBlock / 2);
  EXPECT_EQ(with([](ModelConfig& c) { c.imf.inject = false; }), full - 2 * kGate);
  EXPECT_EQ(with([](ModelConfig& c) { c.filter.static_assign = true; }),
            full - 2 * (kQ + kScores + kHash));
  EXPECT_EQ(with([](ModelConfig& c) { c.filter.no_mix = true; }), full - 2 * (kMix + kMixProj));
  EXPECT_EQ(with([](ModelConfig& c) { c.filter.hash = false; }), full - 2 * kHash);
  // The budget is a top-k selection, not a product: it changes nothing.
  EXPECT_EQ(with([](ModelConfig& c) { c.filter.budget = false; }), full);
  // Text: the same blocks over max_len tokens; the embedding is a lookup.
  EXPECT_EQ(with([](ModelConfig& c) {
              c.modality = "text";
              c.vocab_size = 10;
              c.max_len = 4;
            }),
            full - kPatch);
}

// The count again, from the parameter shapes of the model as built: each per-token weight
// matrix costs 2 L numel, the concept and bucket tables 2 L numel (scores against every
// token), M_mix 2 d numel and W_z 2 K numel (on the K concepts), each A_log 4 L numel (update
// and readout per state), the pooled head and projections 2 numel. Only A^T V and A Z~ use
// no parameter: 2 x 2 K L d per block with the global stream.
int64_t count_from_built_model(const ModelConfig& c) {
  im::Generator gen(0);
  InfoMamba m(c, gen);
  const int64_t L = m.seq_len(), d = c.d_model, K = c.num_concepts;
  const std::regex per_token(
      R"(\.(in_proj|q_proj|v_proj|out_proj|inject_proj|gate_proj|x_proj(_b)?|dt_proj(_b)?|fc1|fc2)\.weight$|patch_embed\.weight$|conv_weight(_b)?$|\.centers$|\.bucket_embed$)");
  int64_t total = 0;
  for (const auto& p : m.named_parameters()) {
    const std::string& n = p.name;
    const int64_t numel = p.tensor->numel();
    if (std::regex_search(n, per_token))
      total += 2 * L * numel;
    else if (std::regex_search(n, std::regex(R"(\.filter\.mix$)")))
      total += 2 * d * numel;
    else if (std::regex_search(n, std::regex(R"(mix_proj\.weight$)")))
      total += 2 * K * numel;
    else if (std::regex_search(n, std::regex(R"(\.A(_b)?_log$)")))
      total += 4 * L * numel;
    else if (std::regex_search(n, std::regex(R"(^(head|proj_g|proj_h)\.weight$)")))
      total += 2 * numel;
  }
  if (c.imf.filter_path) total += c.depth * 2 * (2 * K * L * d);
  return total;
}

TEST(FlopCount, AgreesWithTheParameterShapesOfTheBuiltModel) {
  std::vector<ModelConfig> configs;
  for (const char* name : {"nano", "tiny"}) {
    ModelConfig c;
    ASSERT_TRUE(apply_preset(name, c));
    if (std::string(name) == "tiny") {  // patch 16: 32x32 images, 4 tokens; one block is enough
      c.image_size = 32;
      c.depth = 1;
    }
    configs.push_back(c);
  }
  configs.push_back(tiny());
  for (int i = 0; i < 7; ++i) {
    ModelConfig c = tiny();
    if (i == 0) c.imf.filter_path = false;
    if (i == 1) c.imf.ssm_path = false;
    if (i == 2) c.imf.ssm_path = c.imf.filter_path = false;
    if (i == 3) c.bidirectional = false;
    if (i == 4) c.filter.static_assign = true;
    if (i == 5) c.filter.no_mix = true;
    if (i == 6) c.imf.inject = false;
    configs.push_back(c);
  }
  for (const ModelConfig& c : configs)
    EXPECT_EQ(forward_flops_per_sample(c), count_from_built_model(c))
        << "d=" << c.d_model << " ssm=" << c.imf.ssm_path << " filter=" << c.imf.filter_path
        << " bidir=" << c.bidirectional << " static=" << c.filter.static_assign
        << " no_mix=" << c.filter.no_mix << " inject=" << c.imf.inject;
}

// Everything that shapes an InfoMamba model and its losses (docs/MODEL.md). Filled from
// the [model] and [loss] tables of a run config (launch/), with defaults from MODEL.md.
#pragma once

#include <cstdint>
#include <string>

namespace im::layers {

// MODEL.md §2 ablation switches (config table model.filter).
struct FilterSwitches {
  bool static_assign = false;
  bool no_mix = false;
  bool hash = true;
  bool budget = true;
};

// MODEL.md §4 ablation switches (config table model.imf).
struct ImfSwitches {
  bool inject = true;
  bool ssm_path = true;
  bool filter_path = true;
};

struct ModelConfig {
  std::string preset = "nano";  // nano | tiny | small | base (MODEL.md §6)
  // Input: images C×H×W with a p×p patch embedding, or token sequences.
  std::string modality = "image";  // image | text
  int64_t channels = 1;
  int64_t image_size = 28;
  int64_t patch = 4;
  int64_t vocab_size = 0;  // text only
  int64_t max_len = 0;     // text only: sequence length
  int64_t pad_id = -1;     // text only: -1 = no padding
  int64_t num_classes = 10;

  int64_t d_model = 64;
  int64_t depth = 4;
  int64_t expand = 2;        // E = expand * d
  int64_t d_state = 8;       // N
  int64_t conv_kernel = 4;   // causal depthwise conv width
  int64_t num_concepts = 16; // K
  int64_t num_buckets = 8;   // H
  int64_t top_r = 2;         // buckets kept per token
  int64_t k_min = 4;
  int64_t k_max = 16;
  double tau = 1.0;          // assignment temperature
  int64_t d_proj = 128;      // d_p of the InfoNCE / redundancy projections
  bool bidirectional = true;
  double drop_path = 0.0;    // maximum rate, linearly increasing over depth
  FilterSwitches filter;
  ImfSwitches imf;
};

struct LossConfig {
  double label_smoothing = 0.1;
  double lambda_nce = 0.1;
  double lambda_red = 0.01;
  double lambda_hash = 0.01;
  double tau_nce = 0.1;
};

// Applies a preset's sizes (MODEL.md §6) to `cfg`; returns false for an unknown name.
bool apply_preset(const std::string& name, ModelConfig& cfg);

}  // namespace im::layers

// Cross-key rules of a run config (launch/config_rules.h).
#include "launch/config_rules.h"

#include <string>

#include "launch/config_value.h"

namespace im::launch {

namespace {
std::string show(const std::string& key, int64_t value) {
  return key + " = " + std::to_string(value);
}
std::string show(const std::string& key, double value) {
  return key + " = " + format_float(value);
}
}  // namespace

std::optional<RuleViolation> check_config_rules(const RunConfig& cfg) {
  const layers::ModelConfig& m = cfg.model;
  // The budget interpolates from k_min up to k_max (MODEL.md §2.4).
  if (m.k_min > m.k_max) {
    return RuleViolation{
        {"model.k_min", "model.k_max"},
        show("model.k_min", m.k_min) + " is greater than " + show("model.k_max", m.k_max)};
  }
  // A token cannot keep more buckets than there are (MODEL.md §2.3).
  if (m.top_r > m.num_buckets) {
    return RuleViolation{{"model.top_r", "model.num_buckets"},
                         show("model.top_r", m.top_r) + " is greater than " +
                             show("model.num_buckets", m.num_buckets)};
  }
  if (m.modality == "image" && m.image_size % m.patch != 0) {
    // The p×p, stride-p patch embedding must tile the image exactly (MODEL.md §1).
    return RuleViolation{{"model.image_size", "model.patch"},
                         show("model.image_size", m.image_size) + " is not a multiple of " +
                             show("model.patch", m.patch)};
  }
  if (m.modality == "text") {
    if (m.vocab_size < 1) {
      return RuleViolation{{"model.vocab_size", "model.modality"},
                           "model.modality = \"text\" needs model.vocab_size of at least 1"};
    }
    if (m.max_len < 1) {
      return RuleViolation{{"model.max_len", "model.modality"},
                           "model.modality = \"text\" needs model.max_len of at least 1"};
    }
    if (m.pad_id >= m.vocab_size) {
      return RuleViolation{{"model.pad_id", "model.vocab_size"},
                           show("model.pad_id", m.pad_id) + " is not a token id below " +
                               show("model.vocab_size", m.vocab_size)};
    }
  }
  // The cosine schedule decays from optim.lr down to train.min_lr.
  if (cfg.train.min_lr > cfg.optim.lr) {
    return RuleViolation{{"train.min_lr", "optim.lr"},
                         show("train.min_lr", cfg.train.min_lr) + " is greater than " +
                             show("optim.lr", cfg.optim.lr)};
  }
  return std::nullopt;
}

}  // namespace im::launch

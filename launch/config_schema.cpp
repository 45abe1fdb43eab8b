// The table of every run-config key (launch/config_schema.h). Defaults repeat the struct
// defaults on purpose: the table is what docs/CONFIG.md shows, and a test checks that the
// two agree, so neither can change without the other.
#include "launch/config_schema.h"

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "launch/config_value.h"

namespace im::launch {

std::string ConfigKey::table() const {
  return path.substr(0, path.rfind('.'));
}
std::string ConfigKey::name() const {
  return path.substr(path.rfind('.') + 1);
}

namespace {

struct Bounds {
  std::optional<double> min, max;
  bool min_exclusive = false, max_exclusive = false;
};
Bounds between(double lo, double hi) {
  return {lo, hi, false, false};
}
Bounds at_least(double lo) {
  return {lo, std::nullopt, false, false};
}
Bounds above(double lo) {
  return {lo, std::nullopt, true, false};
}
Bounds below_one() {
  return {0.0, 1.0, false, true};
}  // [0, 1): rates and betas

constexpr double kMaxVocab = 16777216;  // 2^24: far above any real vocabulary or class count

// Wires a key to one RunConfig member, converting between ConfigValue and the member's type.
// `field` is a generic lambda returning the member, so it serves const and non-const configs.
template <typename Field>
ConfigKey make_key(std::string path, ValueType type, ConfigValue def, std::string doc,
                   Field field) {
  using T = std::remove_reference_t<std::invoke_result_t<Field, RunConfig&>>;
  constexpr bool kIsBool = std::is_same_v<T, bool>;
  constexpr bool kIsInt = std::is_integral_v<T> && !kIsBool;
  static_assert(kIsBool || kIsInt || std::is_same_v<T, double> || std::is_same_v<T, std::string>,
                "config fields are bool, an integer type, double or std::string");
  ConfigKey key;
  key.path = std::move(path);
  key.type = type;
  key.default_value = std::move(def);
  key.doc = std::move(doc);
  key.set = [field](RunConfig& c, const ConfigValue& v) {
    if constexpr (kIsInt) {
      field(c) = static_cast<T>(std::get<int64_t>(v));
    } else {
      field(c) = std::get<T>(v);
    }
  };
  key.get = [field](const RunConfig& c) -> ConfigValue {
    if constexpr (kIsInt) {
      return static_cast<int64_t>(field(c));
    } else {
      return field(c);
    }
  };
  return key;
}

template <typename Field>
ConfigKey flag(std::string path, Field field, bool def, std::string doc) {
  static_assert(std::is_same_v<std::invoke_result_t<Field, RunConfig&>, bool&>);
  return make_key(std::move(path), ValueType::Bool, def, std::move(doc), field);
}

template <typename Field>
ConfigKey integer(std::string path, Field field, int64_t def, Bounds b, std::string doc) {
  ConfigKey key = make_key(std::move(path), ValueType::Int, def, std::move(doc), field);
  key.min = b.min;
  key.max = b.max;
  key.min_exclusive = b.min_exclusive;
  key.max_exclusive = b.max_exclusive;
  return key;
}

template <typename Field>
ConfigKey real(std::string path, Field field, double def, Bounds b, std::string doc) {
  static_assert(std::is_same_v<std::invoke_result_t<Field, RunConfig&>, double&>);
  ConfigKey key = make_key(std::move(path), ValueType::Float, def, std::move(doc), field);
  key.min = b.min;
  key.max = b.max;
  key.min_exclusive = b.min_exclusive;
  key.max_exclusive = b.max_exclusive;
  return key;
}

// Free text that must not be empty (names, directories, split names).
template <typename Field>
ConfigKey text(std::string path, Field field, std::string def, std::string doc) {
  ConfigKey key =
      make_key(std::move(path), ValueType::String, std::move(def), std::move(doc), field);
  key.non_empty = true;
  return key;
}

template <typename Field>
ConfigKey choice(std::string path, Field field, std::string def, std::vector<std::string> choices,
                 std::string doc) {
  ConfigKey key =
      make_key(std::move(path), ValueType::String, std::move(def), std::move(doc), field);
  key.choices = std::move(choices);
  return key;
}

// Marks a model size that model.preset sets (layers::apply_preset).
ConfigKey sized_by_preset(ConfigKey key) {
  key.from_preset = true;
  return key;
}

// A generic accessor for the member `m` of a RunConfig: [](auto& c) -> auto& { ... }.
#define IM_FIELD(m)      \
  [](auto& c) -> auto& { \
    return c.m;          \
  }

std::vector<ConfigKey> build_schema() {
  std::vector<ConfigKey> s;
  // [run]
  s.push_back(text("run.name", IM_FIELD(name), "run", "name of the run, used in logs and run.dir"));
  ConfigKey dir = text("run.dir", IM_FIELD(run_dir), "runs/run",
                       "run directory: checkpoints, metrics and the resolved config.toml");
  dir.default_note = "`runs/<run.name>`";
  s.push_back(std::move(dir));
  s.push_back(integer("run.seed", IM_FIELD(seed), 0, at_least(0),
                      "seed of every random stream (init, dropout, sampler, augmentation)"));
  s.push_back(flag("run.rank_logs", IM_FIELD(rank_logs), false,
                   "every rank also writes its own log, run.dir/logs/rank_NNNNN.log"));

  // [data]
  s.push_back(text("data.dir", IM_FIELD(data.dir), "datasets/fashion-mnist",
                   "dataset directory holding manifest.pb and the shard files"));
  s.push_back(text("data.train_split", IM_FIELD(data.train_split), "train", "split to train on"));
  s.push_back(text("data.test_split", IM_FIELD(data.test_split), "test", "split to evaluate on"));
  s.push_back(flag("data.normalize", IM_FIELD(data.normalize), true,
                   "normalise each channel by the training split's mean and std (manifest)"));
  s.push_back(integer("data.augment_crop_pad", IM_FIELD(data.augment_crop_pad), 0, between(0, 16),
                      "random crop after zero padding by this many pixels; 0 = off"));
  s.push_back(
      flag("data.augment_flip", IM_FIELD(data.augment_flip), false, "random horizontal flip"));
  s.push_back(integer("data.workers", IM_FIELD(data.workers), 2, between(0, 64),
                      "background threads assembling batches"));
  s.push_back(integer("data.prefetch", IM_FIELD(data.prefetch), 4, between(1, 64),
                      "batches kept ready ahead of the training step"));
  s.push_back(integer("data.train_subset", IM_FIELD(data.train_subset), 0, at_least(0),
                      "train on the first N samples only; 0 = all"));
  s.push_back(integer("data.test_subset", IM_FIELD(data.test_subset), 0, at_least(0),
                      "evaluate on the first N samples only; 0 = all"));

  // [model]
  s.push_back(choice("model.preset", IM_FIELD(model.preset), "nano",
                     {"nano", "tiny", "small", "base"},
                     "size preset (MODEL.md §6); sets the keys marked 'preset' unless given"));
  s.push_back(choice("model.modality", IM_FIELD(model.modality), "image", {"image", "text"},
                     "input kind: images (patch embedding) or token sequences"));
  s.push_back(
      integer("model.channels", IM_FIELD(model.channels), 1, between(1, 4096), "image channels C"));
  s.push_back(integer("model.image_size", IM_FIELD(model.image_size), 28, between(1, 65536),
                      "image height and width in pixels; a multiple of model.patch"));
  s.push_back(sized_by_preset(integer("model.patch", IM_FIELD(model.patch), 4, between(1, 4096),
                                      "patch size p of the p×p patch embedding")));
  s.push_back(integer("model.vocab_size", IM_FIELD(model.vocab_size), 0, between(0, kMaxVocab),
                      "token vocabulary size (text: required)"));
  s.push_back(integer("model.max_len", IM_FIELD(model.max_len), 0, between(0, kMaxVocab),
                      "sequence length in tokens (text: required)"));
  s.push_back(integer("model.pad_id", IM_FIELD(model.pad_id), -1, between(-1, kMaxVocab - 1),
                      "padding token id, masked out (text); -1 = no padding"));
  s.push_back(integer("model.num_classes", IM_FIELD(model.num_classes), 10, between(2, kMaxVocab),
                      "classes of the classification head"));
  s.push_back(sized_by_preset(
      integer("model.d_model", IM_FIELD(model.d_model), 64, between(1, 65536), "model width d")));
  s.push_back(sized_by_preset(
      integer("model.depth", IM_FIELD(model.depth), 4, between(1, 1024), "number of blocks")));
  s.push_back(integer("model.expand", IM_FIELD(model.expand), 2, between(1, 64),
                      "SSM inner width E = expand · d_model"));
  s.push_back(sized_by_preset(
      integer("model.d_state", IM_FIELD(model.d_state), 8, between(1, 1024), "SSM state size N")));
  s.push_back(integer("model.conv_kernel", IM_FIELD(model.conv_kernel), 4, between(1, 64),
                      "width of the SSM's causal depthwise convolution"));
  s.push_back(sized_by_preset(integer("model.num_concepts", IM_FIELD(model.num_concepts), 16,
                                      between(1, 65536), "concept pool size K")));
  s.push_back(integer("model.num_buckets", IM_FIELD(model.num_buckets), 8, between(1, 65536),
                      "hash buckets H"));
  s.push_back(integer("model.top_r", IM_FIELD(model.top_r), 2, between(1, 65536),
                      "buckets kept per token r (at most model.num_buckets)"));
  s.push_back(integer("model.k_min", IM_FIELD(model.k_min), 4, between(1, 65536),
                      "smallest per-token concept budget (at most model.k_max)"));
  s.push_back(integer("model.k_max", IM_FIELD(model.k_max), 16, between(1, 65536),
                      "largest per-token concept budget"));
  s.push_back(real("model.tau", IM_FIELD(model.tau), 1.0, above(0), "assignment temperature τ"));
  s.push_back(integer("model.d_proj", IM_FIELD(model.d_proj), 128, between(1, 65536),
                      "width d_p of the InfoNCE and redundancy projections"));
  s.push_back(flag("model.bidirectional", IM_FIELD(model.bidirectional), true,
                   "scan both directions and average them"));
  s.push_back(real("model.drop_path", IM_FIELD(model.drop_path), 0.0, below_one(),
                   "largest drop-path rate, rising linearly over depth"));

  // [model.filter]: ablations of MODEL.md §2
  s.push_back(flag("model.filter.static_assign", IM_FIELD(model.filter.static_assign), false,
                   "input-agnostic learnable assignment (no hash, no budget)"));
  s.push_back(flag("model.filter.no_mix", IM_FIELD(model.filter.no_mix), false,
                   "drop the concept-mixing step"));
  s.push_back(flag("model.filter.hash", IM_FIELD(model.filter.hash), true,
                   "MI-driven hash bucketing of concepts"));
  s.push_back(flag("model.filter.budget", IM_FIELD(model.filter.budget), true,
                   "token-wise concept budget"));

  // [model.imf]: ablations of MODEL.md §4
  s.push_back(flag("model.imf.inject", IM_FIELD(model.imf.inject), true,
                   "inject the global feature into the scan"));
  s.push_back(
      flag("model.imf.ssm_path", IM_FIELD(model.imf.ssm_path), true, "keep the local SSM stream"));
  s.push_back(flag("model.imf.filter_path", IM_FIELD(model.imf.filter_path), true,
                   "keep the global concept-filter stream"));

  // [loss]: MODEL.md §5
  s.push_back(real("loss.label_smoothing", IM_FIELD(loss.label_smoothing), 0.1, below_one(),
                   "label smoothing of the cross-entropy"));
  s.push_back(real("loss.lambda_nce", IM_FIELD(loss.lambda_nce), 0.1, at_least(0),
                   "weight of the InfoNCE loss; 0 removes it"));
  s.push_back(real("loss.lambda_red", IM_FIELD(loss.lambda_red), 0.01, at_least(0),
                   "weight of the redundancy-reduction loss; 0 removes it"));
  s.push_back(real("loss.lambda_hash", IM_FIELD(loss.lambda_hash), 0.01, at_least(0),
                   "weight of the hash InfoMax loss; 0 removes it"));
  s.push_back(
      real("loss.tau_nce", IM_FIELD(loss.tau_nce), 0.1, above(0), "InfoNCE temperature τ_n"));

  // [optim]: AdamW
  s.push_back(real("optim.lr", IM_FIELD(optim.lr), 2e-3, above(0), "peak learning rate"));
  s.push_back(real("optim.beta1", IM_FIELD(optim.beta1), 0.9, below_one(), "AdamW β1"));
  s.push_back(real("optim.beta2", IM_FIELD(optim.beta2), 0.999, below_one(), "AdamW β2"));
  s.push_back(real("optim.eps", IM_FIELD(optim.eps), 1e-8, above(0), "AdamW ε"));
  s.push_back(real("optim.weight_decay", IM_FIELD(optim.weight_decay), 0.05, at_least(0),
                   "decoupled weight decay"));
  s.push_back(real("optim.grad_clip", IM_FIELD(optim.grad_clip), 1.0, at_least(0),
                   "clip the global gradient norm to this; 0 = no clipping"));

  // [train]
  s.push_back(integer("train.epochs", IM_FIELD(train.epochs), 1, at_least(1),
                      "passes over the training split"));
  s.push_back(integer("train.max_steps", IM_FIELD(train.max_steps), 0, at_least(0),
                      "stop after this many steps; 0 = run all epochs"));
  s.push_back(integer("train.batch_size", IM_FIELD(train.batch_size), 64, between(1, 65536),
                      "global batch size, summed over all ranks"));
  s.push_back(real("train.warmup_epochs", IM_FIELD(train.warmup_epochs), 0.0, at_least(0),
                   "linear warm-up length in epochs (fractions allowed)"));
  s.push_back(choice("train.schedule", IM_FIELD(train.schedule), "cosine", {"cosine", "constant"},
                     "learning-rate schedule after warm-up"));
  s.push_back(real("train.min_lr", IM_FIELD(train.min_lr), 0.0, at_least(0),
                   "learning rate the cosine schedule ends at (at most optim.lr)"));
  s.push_back(integer("train.eval_every", IM_FIELD(train.eval_every), 0, at_least(0),
                      "steps between evaluations; 0 = at the end of each epoch"));
  s.push_back(integer("train.log_every", IM_FIELD(train.log_every), 50, at_least(1),
                      "steps between progress lines"));
  s.push_back(choice("train.precision", IM_FIELD(train.precision), "fp32", {"fp32", "bf16"},
                     "compute precision"));
  s.push_back(choice("train.device", IM_FIELD(train.device), "cpu", {"cpu", "cuda", "auto"},
                     "device to train on; auto = a GPU when there is one, else the CPU"));
  s.push_back(flag("train.tf32", IM_FIELD(train.tf32), true,
                   "TF32 tensor cores for float32 matrix products on a GPU (about 1e-3 "
                   "relative error per product)"));
  s.push_back(flag("train.cuda_graph", IM_FIELD(train.cuda_graph), true,
                   "on one GPU, replay the training step as one captured CUDA graph after 2 "
                   "eager steps (not with several ranks or drop-path)"));
  s.push_back(
      real("train.max_wall_minutes", IM_FIELD(train.max_wall_minutes), 0.0, at_least(0),
           "save a checkpoint and exit 75 (requeue) after this many minutes; 0 = no limit"));

  // [checkpoint]
  s.push_back(integer("checkpoint.every", IM_FIELD(checkpoint.every), 500, at_least(0),
                      "steps between checkpoints; 0 = only at the end of training"));
  s.push_back(integer("checkpoint.keep", IM_FIELD(checkpoint.keep), 3, at_least(1),
                      "newest checkpoints kept; older ones are deleted"));

  // [dist]
  s.push_back(integer("dist.bucket_mb", IM_FIELD(dist.bucket_mb), 25, between(1, 4096),
                      "gradient all-reduce bucket size in MiB"));
  s.push_back(real("dist.timeout_s", IM_FIELD(dist.timeout_s), 300.0, at_least(0),
                   "a rank waiting longer than this in one collective (a peer rank or node "
                   "stopped responding) ends the run, exit 1; 0 = wait forever"));
  return s;
}

#undef IM_FIELD

}  // namespace

const std::vector<ConfigKey>& config_schema() {
  static const std::vector<ConfigKey> schema = build_schema();
  return schema;
}

const ConfigKey* find_config_key(std::string_view path) {
  for (const ConfigKey& key : config_schema())
    if (key.path == path) return &key;
  return nullptr;
}

const std::vector<std::string>& config_tables() {
  static const std::vector<std::string> tables = [] {
    std::vector<std::string> out;
    for (const ConfigKey& key : config_schema()) {
      // Every prefix is a table: "model.filter.hash" gives "model" and "model.filter".
      for (size_t dot = key.path.find('.'); dot != std::string::npos;
           dot = key.path.find('.', dot + 1)) {
        std::string table = key.path.substr(0, dot);
        bool seen = false;
        for (const std::string& t : out) seen = seen || t == table;
        if (!seen) out.push_back(std::move(table));
      }
    }
    return out;
  }();
  return tables;
}

bool is_config_table(std::string_view path) {
  for (const std::string& t : config_tables())
    if (t == path) return true;
  return false;
}

std::string type_phrase(ValueType type) {
  switch (type) {
    case ValueType::Bool:
      return "a boolean";
    case ValueType::Int:
      return "an integer";
    case ValueType::Float:
      return "a float";
    case ValueType::String:
      return "a string";
  }
  return "a value";
}

std::string type_name(ValueType type) {
  switch (type) {
    case ValueType::Bool:
      return "bool";
    case ValueType::Int:
      return "int";
    case ValueType::Float:
      return "float";
    case ValueType::String:
      return "string";
  }
  return "value";
}

namespace {
// Bounds read as plain numbers ("0 to less than 1", not "0.0 to less than 1.0").
std::string bound_text(double bound) {
  if (bound == std::floor(bound) && std::fabs(bound) < 1e15)
    return std::to_string(static_cast<int64_t>(bound));
  return format_float(bound);
}
}  // namespace

std::string range_text(const ConfigKey& key) {
  if (key.type != ValueType::Int && key.type != ValueType::Float) return "";
  if (key.min && key.max) {
    return (key.min_exclusive ? "more than " : "") + bound_text(*key.min) + " to " +
           (key.max_exclusive ? "less than " : "") + bound_text(*key.max);
  }
  if (key.min) return (key.min_exclusive ? "greater than " : "at least ") + bound_text(*key.min);
  if (key.max) return (key.max_exclusive ? "less than " : "at most ") + bound_text(*key.max);
  return "";
}

bool in_range(const ConfigKey& key, const ConfigValue& value) {
  double v = 0;
  if (const int64_t* i = std::get_if<int64_t>(&value)) {
    v = static_cast<double>(*i);
  } else if (const double* d = std::get_if<double>(&value)) {
    if (!std::isfinite(*d)) return false;  // inf and nan are never a meaningful setting
    v = *d;
  } else {
    return true;
  }
  if (key.min && (key.min_exclusive ? v <= *key.min : v < *key.min)) return false;
  if (key.max && (key.max_exclusive ? v >= *key.max : v > *key.max)) return false;
  return true;
}

}  // namespace im::launch

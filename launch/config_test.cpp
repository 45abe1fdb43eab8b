// Loading run configs: values, defaults, presets, overrides, every error message shape, and the
// resolved config.toml round trip.
#include "launch/config.h"

#include <gtest/gtest.h>
#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "launch/config_schema.h"
#include "launch/config_test_support.h"

namespace im::launch {
namespace {

using testing::ConfigDirTest;
using testing::expect_same_settings;

// Every key of the schema, none at its default (ConfigFile.EveryKeyDiffersFromItsDefault
// keeps it that way when keys are added).
const char* const kFull = R"(# a config that sets everything
[run]
name = "full"
dir = "/scratch/full-run"
seed = 1234
rank_logs = true

[data]
dir = "data/cifar10"
train_split = "train_a"
test_split = "test_b"
normalize = false
augment_crop_pad = 4
augment_flip = true
workers = 8
prefetch = 16
train_subset = 1000
test_subset = 500

[model]
preset = "tiny"
modality = "text"
channels = 3
image_size = 32
patch = 8
vocab_size = 1000
max_len = 256
pad_id = 0
num_classes = 100
d_model = 96
depth = 6
expand = 3
d_state = 12
conv_kernel = 3
num_concepts = 24
num_buckets = 6
top_r = 3
k_min = 2
k_max = 20
tau = 0.5
d_proj = 64
bidirectional = false
drop_path = 0.2

[model.filter]
static_assign = true
no_mix = true
hash = false
budget = false

[model.imf]
inject = false
ssm_path = false
filter_path = false

[loss]
label_smoothing = 0.05
lambda_nce = 0.5
lambda_red = 0.02
lambda_hash = 0.03
tau_nce = 0.2

[optim]
lr = 5e-4
beta1 = 0.85
beta2 = 0.98
eps = 1e-6
weight_decay = 0.1
grad_clip = 2.5

[train]
epochs = 30
max_steps = 5000
batch_size = 256
warmup_epochs = 2.5
schedule = "constant"
min_lr = 1e-5
eval_every = 200
log_every = 10
precision = "bf16"
device = "cuda"
tf32 = false
cuda_graph = false
max_wall_minutes = 230.5

[checkpoint]
every = 250
keep = 5

[dist]
bucket_mb = 50
timeout_s = 45.5
)";

using ConfigFile = ConfigDirTest;

TEST_F(ConfigFile, LoadsEveryKey) {
  const std::string path = write("full.toml", kFull);
  const RunConfig c = load_run_config(path, {});
  EXPECT_EQ(c.source_file, path);
  EXPECT_TRUE(c.overrides.empty());
  EXPECT_EQ(c.name, "full");
  EXPECT_EQ(c.run_dir, "/scratch/full-run");
  EXPECT_EQ(c.seed, 1234u);
  EXPECT_EQ(c.data.dir, "data/cifar10");
  EXPECT_EQ(c.data.train_split, "train_a");
  EXPECT_EQ(c.data.test_split, "test_b");
  EXPECT_FALSE(c.data.normalize);
  EXPECT_EQ(c.data.augment_crop_pad, 4);
  EXPECT_TRUE(c.data.augment_flip);
  EXPECT_EQ(c.data.workers, 8);
  EXPECT_EQ(c.data.prefetch, 16);
  EXPECT_EQ(c.data.train_subset, 1000);
  EXPECT_EQ(c.data.test_subset, 500);
  EXPECT_EQ(c.model.preset, "tiny");
  EXPECT_EQ(c.model.modality, "text");
  EXPECT_EQ(c.model.channels, 3);
  EXPECT_EQ(c.model.image_size, 32);
  EXPECT_EQ(c.model.patch, 8);
  EXPECT_EQ(c.model.vocab_size, 1000);
  EXPECT_EQ(c.model.max_len, 256);
  EXPECT_EQ(c.model.pad_id, 0);
  EXPECT_EQ(c.model.num_classes, 100);
  EXPECT_EQ(c.model.d_model, 96);
  EXPECT_EQ(c.model.depth, 6);
  EXPECT_EQ(c.model.expand, 3);
  EXPECT_EQ(c.model.d_state, 12);
  EXPECT_EQ(c.model.conv_kernel, 3);
  EXPECT_EQ(c.model.num_concepts, 24);
  EXPECT_EQ(c.model.num_buckets, 6);
  EXPECT_EQ(c.model.top_r, 3);
  EXPECT_EQ(c.model.k_min, 2);
  EXPECT_EQ(c.model.k_max, 20);
  EXPECT_EQ(c.model.tau, 0.5);
  EXPECT_EQ(c.model.d_proj, 64);
  EXPECT_FALSE(c.model.bidirectional);
  EXPECT_EQ(c.model.drop_path, 0.2);
  EXPECT_TRUE(c.model.filter.static_assign);
  EXPECT_TRUE(c.model.filter.no_mix);
  EXPECT_FALSE(c.model.filter.hash);
  EXPECT_FALSE(c.model.filter.budget);
  EXPECT_FALSE(c.model.imf.inject);
  EXPECT_FALSE(c.model.imf.ssm_path);
  EXPECT_FALSE(c.model.imf.filter_path);
  EXPECT_EQ(c.loss.label_smoothing, 0.05);
  EXPECT_EQ(c.loss.lambda_nce, 0.5);
  EXPECT_EQ(c.loss.lambda_red, 0.02);
  EXPECT_EQ(c.loss.lambda_hash, 0.03);
  EXPECT_EQ(c.loss.tau_nce, 0.2);
  EXPECT_EQ(c.optim.lr, 5e-4);
  EXPECT_EQ(c.optim.beta1, 0.85);
  EXPECT_EQ(c.optim.beta2, 0.98);
  EXPECT_EQ(c.optim.eps, 1e-6);
  EXPECT_EQ(c.optim.weight_decay, 0.1);
  EXPECT_EQ(c.optim.grad_clip, 2.5);
  EXPECT_EQ(c.train.epochs, 30);
  EXPECT_EQ(c.train.max_steps, 5000);
  EXPECT_EQ(c.train.batch_size, 256);
  EXPECT_EQ(c.train.warmup_epochs, 2.5);
  EXPECT_EQ(c.train.schedule, "constant");
  EXPECT_EQ(c.train.min_lr, 1e-5);
  EXPECT_EQ(c.train.eval_every, 200);
  EXPECT_EQ(c.train.log_every, 10);
  EXPECT_EQ(c.train.precision, "bf16");
  EXPECT_EQ(c.train.device, "cuda");
  EXPECT_FALSE(c.train.tf32);
  EXPECT_FALSE(c.train.cuda_graph);
  EXPECT_TRUE(c.rank_logs);
  EXPECT_EQ(c.train.max_wall_minutes, 230.5);
  EXPECT_EQ(c.checkpoint.every, 250);
  EXPECT_EQ(c.checkpoint.keep, 5);
  EXPECT_EQ(c.dist.bucket_mb, 50);
  EXPECT_EQ(c.dist.timeout_s, 45.5);
}

TEST_F(ConfigFile, EveryKeyDiffersFromItsDefault) {
  // Otherwise LoadsEveryKey and the round trip could pass with a key that is never read.
  const RunConfig c = load_run_config(write("full.toml", kFull), {});
  for (const ConfigKey& key : config_schema())
    EXPECT_NE(key.get(c), key.default_value) << key.path << " is missing from kFull";
}

TEST_F(ConfigFile, AbsentKeysTakeTheStructDefaults) {
  const RunConfig c = load_run_config(write("empty.toml", "# nothing set\n"), {});
  expect_same_settings(c, RunConfig{});
  EXPECT_EQ(c.run_dir, "runs/run");
}

TEST_F(ConfigFile, RunDirDefaultsToTheRunName) {
  EXPECT_EQ(load_run_config(write("a.toml", "[run]\nname = \"exp7\"\n"), {}).run_dir, "runs/exp7");
  EXPECT_EQ(
      load_run_config(write("b.toml", "[run]\nname = \"exp7\"\ndir = \"/tmp/elsewhere\"\n"), {})
          .run_dir,
      "/tmp/elsewhere");
}

TEST_F(ConfigFile, IntegersAreAcceptedForFloats) {
  const RunConfig c = load_run_config(write("a.toml", "[optim]\nlr = 1\n"), {});
  EXPECT_EQ(c.optim.lr, 1.0);
}

TEST_F(ConfigFile, DottedKeysAndInlineTablesWork) {
  const RunConfig c = load_run_config(
      write("a.toml", "train.epochs = 3\nmodel = { filter = { hash = false }, depth = 2 }\n"), {});
  EXPECT_EQ(c.train.epochs, 3);
  EXPECT_FALSE(c.model.filter.hash);
  EXPECT_EQ(c.model.depth, 2);
}

using ConfigPreset = ConfigDirTest;

TEST_F(ConfigPreset, SetsSizesItDoesNotOverride) {
  const RunConfig c =
      load_run_config(write("a.toml", "[model]\npreset = \"small\"\nimage_size = 224\n"), {});
  EXPECT_EQ(c.model.preset, "small");
  EXPECT_EQ(c.model.d_model, 384);
  EXPECT_EQ(c.model.depth, 12);
  EXPECT_EQ(c.model.num_concepts, 64);
  EXPECT_EQ(c.model.d_state, 16);
  EXPECT_EQ(c.model.patch, 16);
  EXPECT_EQ(c.model.k_max, 16);  // not a preset key: stays at its default
}

TEST_F(ConfigPreset, ExplicitKeysWinWhateverTheOrder) {
  const char* const after = "[model]\npreset = \"base\"\nd_model = 100\nimage_size = 32\n";
  const char* const before = "[model]\nd_model = 100\nimage_size = 32\npreset = \"base\"\n";
  for (const char* text : {after, before}) {
    const RunConfig c = load_run_config(write("a.toml", text), {});
    EXPECT_EQ(c.model.d_model, 100) << text;
    EXPECT_EQ(c.model.depth, 12) << text;  // from the preset
    EXPECT_EQ(c.model.patch, 16) << text;
  }
}

TEST_F(ConfigPreset, OverriddenPresetKeepsTheFilesExplicitSizes) {
  const RunConfig c = load_run_config(write("a.toml", "[model]\nd_model = 100\nimage_size = 32\n"),
                                      {"model.preset=tiny"});
  EXPECT_EQ(c.model.preset, "tiny");
  EXPECT_EQ(c.model.d_model, 100);
  EXPECT_EQ(c.model.depth, 12);
  EXPECT_EQ(c.model.num_concepts, 32);
}

using ConfigOverride = ConfigDirTest;

TEST_F(ConfigOverride, SetsEachType) {
  const std::string path = write("a.toml", "[train]\nbatch_size = 32\n");
  const std::vector<std::string> sets = {
      "train.batch_size=128",    "optim.lr=1e-3",        "loss.tau_nce=1",
      "data.augment_flip=true",  "run.name=\"my run\"",  "model.preset=tiny",
      "model.image_size = 32",   "data.dir=/data/set-1", "train.schedule=constant",
      "model.filter.hash=false",
  };
  const RunConfig c = load_run_config(path, sets);
  EXPECT_EQ(c.train.batch_size, 128);
  EXPECT_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.loss.tau_nce, 1.0);
  EXPECT_TRUE(c.data.augment_flip);
  EXPECT_EQ(c.name, "my run");
  EXPECT_EQ(c.run_dir, "runs/my run");
  EXPECT_EQ(c.model.preset, "tiny");
  EXPECT_EQ(c.model.d_model, 192);
  EXPECT_EQ(c.model.image_size, 32);
  EXPECT_EQ(c.data.dir, "/data/set-1");
  EXPECT_EQ(c.train.schedule, "constant");
  EXPECT_FALSE(c.model.filter.hash);
  EXPECT_EQ(c.overrides, sets);
}

TEST_F(ConfigOverride, LaterOverridesWin) {
  const RunConfig c = load_run_config(write("a.toml", "[train]\nepochs = 5\n"),
                                      {"train.epochs=6", "train.epochs=7"});
  EXPECT_EQ(c.train.epochs, 7);
}

TEST_F(ConfigOverride, QuotedStringsMayHoldAnything) {
  const RunConfig c = load_run_config(write("a.toml", ""), {"run.name=\"a=b \\\"c\\\"\""});
  EXPECT_EQ(c.name, "a=b \"c\"");
}

using ConfigErrors = ConfigDirTest;

TEST_F(ConfigErrors, MissingFile) {
  const std::string path = dir_ + "/nope.toml";
  try {
    load_run_config(path, {});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "config file '" + path + "' not found");
  }
}

TEST_F(ConfigErrors, IsAnImError) {
  EXPECT_THROW(load_run_config(dir_ + "/nope.toml", {}), im::Error);
}

TEST_F(ConfigErrors, TomlSyntaxNamesLineAndColumn) {
  const std::string err = error_of("[train]\nepochs = 2\nbatch_size = = 3\n");
  const std::string prefix = x() + ":3:14: TOML syntax error: ";
  ASSERT_EQ(err.substr(0, prefix.size()), prefix) << err;
  EXPECT_GT(err.size(), prefix.size() + 5) << "the description from toml++ is missing";
}

TEST_F(ConfigErrors, UnknownKeySuggestsTheNearestKey) {
  EXPECT_EQ(error_of("[train]\nepochs = 2\nbatch_sise = 3\n"),
            x() + ":3: unknown key 'train.batch_sise' (did you mean 'train.batch_size'?)");
}

TEST_F(ConfigErrors, UnknownKeySuggestsTheSameNameInAnotherTable) {
  EXPECT_EQ(error_of("[train]\n\nlr = 0.1\n"),
            x() + ":3: unknown key 'train.lr' (did you mean 'optim.lr'?)");
  EXPECT_EQ(error_of("seed = 3\n"), x() + ":1: unknown key 'seed' (did you mean 'run.seed'?)");
}

TEST_F(ConfigErrors, UnknownKeyWithNothingCloseHasNoSuggestion) {
  EXPECT_EQ(error_of("[train]\nfrobnicate = 1\n"), x() + ":2: unknown key 'train.frobnicate'");
}

TEST_F(ConfigErrors, UnknownTableSuggestsTheNearestTable) {
  EXPECT_EQ(error_of("[run]\nseed = 1\n[trian]\nepochs = 2\n"),
            x() + ":3: unknown table 'trian' (did you mean 'train'?)");
  EXPECT_EQ(error_of("[model.filtr]\nhash = false\n"),
            x() + ":1: unknown table 'model.filtr' (did you mean 'model.filter'?)");
  EXPECT_EQ(error_of("[zzzzzz]\n"), x() + ":1: unknown table 'zzzzzz'");
}

TEST_F(ConfigErrors, FirstProblemInFileOrder) {
  // toml++ keeps keys sorted; the report must follow the file (zeta at line 2, not alpha).
  EXPECT_EQ(error_of("[train]\nzeta = 1\nalpha = 2\n"), x() + ":2: unknown key 'train.zeta'");
}

TEST_F(ConfigErrors, WrongType) {
  EXPECT_EQ(error_of("[run]\nname = \"a\"\n\n\n\n[train]\nbatch_size = \"64\"\n"),
            x() + ":7: train.batch_size: expected an integer, got a string (\"64\")");
  EXPECT_EQ(error_of("[train]\nepochs = 2.5\n"),
            x() + ":2: train.epochs: expected an integer, got a float (2.5)");
  EXPECT_EQ(error_of("[optim]\nlr = true\n"),
            x() + ":2: optim.lr: expected a float, got a boolean (true)");
  EXPECT_EQ(error_of("[data]\nnormalize = 1\n"),
            x() + ":2: data.normalize: expected a boolean, got an integer (1)");
  EXPECT_EQ(error_of("[run]\nname = [1, 2]\n"),
            x() + ":2: run.name: expected a string, got an array");
  EXPECT_EQ(error_of("model = 3\n"), x() + ":1: model: expected a table, got an integer (3)");
}

TEST_F(ConfigErrors, OutOfRange) {
  EXPECT_EQ(error_of("[train]\nbatch_size = 0\n"),
            x() + ":2: train.batch_size = 0 is out of range (1 to 65536)");
  EXPECT_EQ(error_of("[data]\nworkers = -1\n"),
            x() + ":2: data.workers = -1 is out of range (0 to 64)");
  EXPECT_EQ(error_of("[optim]\nlr = 0\n"),
            x() + ":2: optim.lr = 0.0 is out of range (greater than 0)");
  EXPECT_EQ(error_of("[model]\ndrop_path = 1.0\n"),
            x() + ":2: model.drop_path = 1.0 is out of range (0 to less than 1)");
  EXPECT_EQ(error_of("[optim]\nweight_decay = -0.5\n"),
            x() + ":2: optim.weight_decay = -0.5 is out of range (at least 0)");
  EXPECT_EQ(error_of("[optim]\nlr = nan\n"),
            x() + ":2: optim.lr = nan is out of range (greater than 0)");
}

TEST_F(ConfigErrors, NotOneOfTheChoices) {
  EXPECT_EQ(error_of("[train]\n\n\n\n\n\n\n\nschedule = \"linear\"\n"),
            x() + ":9: train.schedule = \"linear\" is not one of: cosine, constant");
  EXPECT_EQ(error_of("[model]\npreset = \"huge\"\n"),
            x() + ":2: model.preset = \"huge\" is not one of: nano, tiny, small, base");
}

TEST_F(ConfigErrors, EmptyName) {
  EXPECT_EQ(error_of("[run]\nname = \"\"\n"), x() + ":2: run.name must not be empty");
}

TEST_F(ConfigErrors, KMinAboveKMax) {
  EXPECT_EQ(error_of("[model]\nk_max = 8\nk_min = 9\n"),
            x() + ":3: model.k_min = 9 is greater than model.k_max = 8");
  // Blames the setting that broke the rule: here the override.
  EXPECT_EQ(error_of("[model]\nk_min = 6\n", {"model.k_max=5"}),
            "--set model.k_max=5: model.k_min = 6 is greater than model.k_max = 5");
}

TEST_F(ConfigErrors, OtherCrossKeyRules) {
  EXPECT_EQ(error_of("[model]\nnum_buckets = 2\ntop_r = 3\n"),
            x() + ":3: model.top_r = 3 is greater than model.num_buckets = 2");
  // The preset's patch (16) does not tile the default 28×28 image; the preset line is blamed.
  EXPECT_EQ(error_of("[model]\n\npreset = \"tiny\"\n"),
            x() + ":3: model.image_size = 28 is not a multiple of model.patch = 16");
  EXPECT_EQ(error_of("[model]\nmodality = \"text\"\nmax_len = 64\n"),
            x() + ":2: model.modality = \"text\" needs model.vocab_size of at least 1");
  EXPECT_EQ(error_of("[model]\nmodality = \"text\"\nvocab_size = 10\nmax_len = 8\npad_id = 10\n"),
            x() + ":5: model.pad_id = 10 is not a token id below model.vocab_size = 10");
  EXPECT_EQ(error_of("[train]\nmin_lr = 0.1\n"),
            x() + ":2: train.min_lr = 0.1 is greater than optim.lr = 0.002");
}

TEST_F(ConfigErrors, OverrideErrorsNameTheOverride) {
  EXPECT_EQ(error_of("", {"optim.lr=abc"}),
            "--set optim.lr=abc: expected a float, got a string (\"abc\")");
  EXPECT_EQ(error_of("", {"trian.epochs=1"}),
            "--set trian.epochs=1: unknown key 'trian.epochs' (did you mean 'train.epochs'?)");
  EXPECT_EQ(error_of("", {"train.lr=1"}),
            "--set train.lr=1: unknown key 'train.lr' (did you mean 'optim.lr'?)");
  EXPECT_EQ(error_of("", {"foo"}), "--set foo: expected key=value");
  EXPECT_EQ(error_of("", {"=3"}), "--set =3: expected key=value");
  EXPECT_EQ(error_of("", {"train.batch_size=0"}),
            "--set train.batch_size=0: train.batch_size = 0 is out of range (1 to 65536)");
  EXPECT_EQ(error_of("", {"train.device=tpu"}),
            "--set train.device=tpu: train.device = \"tpu\" is not one of: cpu, cuda, auto");
  EXPECT_EQ(error_of("", {"run.name=2024"}),
            "--set run.name=2024: expected a string, got an integer (2024)");
  EXPECT_EQ(error_of("", {"model.filter=1"}),
            "--set model.filter=1: 'model.filter' is a table, not a key "
            "(its keys: static_assign, no_mix, hash, budget)");
  EXPECT_EQ(error_of("", {"run.name=\xff"}), "--set run.name=\xff: the value is not valid UTF-8");
}

TEST_F(ConfigErrors, MessagesAreOneLine) {
  const std::string err = error_of("[run]\nname = 5\n", {});
  EXPECT_EQ(err.find('\n'), std::string::npos);
  const std::string bad = error_of("", {"optim.lr=1\nx"});
  EXPECT_EQ(bad, "--set optim.lr=1\\nx: expected a float, got a string (\"1\\nx\")");
}

using ConfigResolved = ConfigDirTest;

TEST_F(ConfigResolved, RoundTripsEveryField) {
  const std::string path = write("full.toml", kFull);
  const RunConfig original =
      load_run_config(path, {"optim.lr=3e-4", "run.name=\"q\\\"uote\\\\ and \\n newline é\""});
  write_resolved_config(original, dir_ + "/out/run");
  const std::string written = dir_ + "/out/run/config.toml";
  ASSERT_TRUE(std::filesystem::exists(written));
  const RunConfig reloaded = load_run_config(written, {});
  expect_same_settings(original, reloaded);
  EXPECT_EQ(reloaded.name, "q\"uote\\ and \n newline é");
  EXPECT_EQ(reloaded.optim.lr, 3e-4);
}

TEST_F(ConfigResolved, RoundTripsDefaultsAndAwkwardFloats) {
  const RunConfig original = load_run_config(
      write("a.toml", "[optim]\nlr = 0.1\neps = 3.0e-300\nbeta1 = 0.3333333333333333\n"), {});
  write_resolved_config(original, dir_ + "/r");
  expect_same_settings(original, load_run_config(dir_ + "/r/config.toml", {}));
}

TEST_F(ConfigResolved, HeaderNamesSourceAndOverridesAndEveryKeyIsWritten) {
  const std::string path = write("a.toml", "");
  const std::string text = resolved_config_toml(load_run_config(path, {"train.epochs=3"}));
  const std::string header =
      "# Resolved config of " + path + " with overrides: --set train.epochs=3\n";
  EXPECT_EQ(text.substr(0, header.size()), header);
  EXPECT_NE(text.find("\n[model.filter]\nstatic_assign = false\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n[train]\nepochs = 3\n"), std::string::npos) << text;
  const toml::table parsed = toml::parse(text);
  for (const ConfigKey& key : config_schema())
    EXPECT_TRUE(parsed.at_path(key.path).is_value()) << key.path << " is not written";
  EXPECT_NE(resolved_config_toml(load_run_config(path, {})).find(" (no overrides)\n"),
            std::string::npos);
}

TEST_F(ConfigResolved, WriteReplacesAnOlderFile) {
  write_resolved_config(load_run_config(write("a.toml", "[train]\nepochs = 2\n"), {}), dir_);
  write_resolved_config(load_run_config(write("b.toml", "[train]\nepochs = 9\n"), {}), dir_);
  EXPECT_EQ(load_run_config(dir_ + "/config.toml", {}).train.epochs, 9);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/config.toml.tmp"));
}

using ConfigText = ConfigDirTest;

// What a checkpoint's stored config is loaded as (launch/export_command.cpp).
const char* const kOrigin = "run/checkpoints/step_00000003/manifest.pb:config_toml";

TEST_F(ConfigText, LoadsLikeTheSameFile) {
  const RunConfig from_file = load_run_config(write("full.toml", kFull), {"optim.lr=3e-4"});
  const RunConfig from_text = load_run_config_text(kFull, kOrigin, {"optim.lr=3e-4"});
  expect_same_settings(from_file, from_text);
  EXPECT_EQ(from_text.source_file, kOrigin);
  EXPECT_EQ(from_text.overrides, std::vector<std::string>{"optim.lr=3e-4"});
  EXPECT_EQ(from_text.optim.lr, 3e-4);
}

TEST_F(ConfigText, RoundTripsAResolvedConfig) {
  const RunConfig original = load_run_config(write("full.toml", kFull), {"train.epochs=7"});
  expect_same_settings(original, load_run_config_text(resolved_config_toml(original), kOrigin, {}));
}

TEST_F(ConfigText, ErrorsNameTheOriginAndLine) {
  auto error_of_text = [](const std::string& text) {
    try {
      load_run_config_text(text, kOrigin, {});
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  const std::string origin = kOrigin;
  EXPECT_EQ(error_of_text("[train]\nepochs = 2\nbatch_sise = 3\n"),
            origin + ":3: unknown key 'train.batch_sise' (did you mean 'train.batch_size'?)");
  EXPECT_EQ(error_of_text("[train]\nepochs = 2\nbatch_size = = 3\n")
                .rfind(origin + ":3:14: TOML syntax error: ", 0),
            0u);
  EXPECT_EQ(error_of_text("[model]\nk_min = 9\nk_max = 3\n"),
            origin + ":3: model.k_min = 9 is greater than model.k_max = 3");
}

}  // namespace
}  // namespace im::launch

#include "launch/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/autograd.h"
#include "data/loader.h"
#include "dist/checkpoint.h"
#include "launch/config.h"
#include "launch/progress.h"

namespace im::launch {

namespace fs = std::filesystem;

namespace {
enum Stream : uint64_t { kInitStream = 1, kTrainStream = 2, kDataStream = 3 };

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Failures while opening data or building the model come from what the user gave us.
template <typename F>
auto as_setup_error(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const SetupError&) {
    throw;
  } catch (const std::exception& e) {
    throw SetupError(e.what());
  }
}
}  // namespace

uint64_t stream_seed(uint64_t run_seed, uint64_t stream) {
  // SplitMix64 of (seed, stream): distinct, well-mixed Philox keys per stream.
  uint64_t z = run_seed * 0x9E3779B97F4A7C15ull + stream * 0xBF58476D1CE4E5B9ull + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void fit_model_to_dataset(layers::ModelConfig& model, const data::Dataset& dataset) {
  model.num_classes = dataset.num_classes();
  model.modality = dataset.modality();
  const Shape& s = dataset.sample_shape();
  if (dataset.is_image()) {
    IM_CHECK(s.size() == 3 && s[1] == s[2], "dataset '", dataset.name(),
             "' has images of shape ", shape_str(s), "; only square C x H x W images are supported");
    model.channels = s[0];
    model.image_size = s[1];
    IM_CHECK(model.image_size % model.patch == 0, "model.patch = ", model.patch,
             " does not tile the dataset's ", model.image_size, "x", model.image_size, " images");
  } else {
    model.max_len = s[0];
  }
}

Trainer::Trainer(RunConfig cfg)
    : cfg_(std::move(cfg)),
      init_gen_(stream_seed(cfg_.seed, kInitStream)),
      train_gen_(stream_seed(cfg_.seed, kTrainStream)) {
  if (cfg_.train.device != "cpu")
    throw SetupError("train.device = \"" + cfg_.train.device +
                     "\": only the CPU backend trains so far (the CUDA backend is issue 6)");
  if (cfg_.train.precision != "fp32")
    throw SetupError("train.precision = \"" + cfg_.train.precision +
                     "\": bf16 training arrives with the CUDA backend; use \"fp32\"");
  train_set_ = as_setup_error([&] {
    return data::Dataset::open(cfg_.data.dir, cfg_.data.train_split, cfg_.data.train_subset);
  });
  test_set_ = as_setup_error([&] {
    return data::Dataset::open(cfg_.data.dir, cfg_.data.test_split, cfg_.data.test_subset);
  });
  as_setup_error([&] {
    fit_model_to_dataset(cfg_.model, *train_set_);
    model_ = std::make_unique<layers::InfoMamba>(cfg_.model, init_gen_);
  });
  store_ = std::make_unique<layers::ParameterStore>(*model_, DType::Float32);
  optimizer_ = std::make_unique<layers::AdamW>(*store_, cfg_.optim);
}

EvalResult evaluate_model(layers::InfoMamba& model, const data::Dataset& dataset,
                          const data::DataConfig& data_cfg, const layers::LossConfig& loss_cfg,
                          int64_t batch_size) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  data::Loader loader(dataset, data::LoaderOptions::for_evaluation(data_cfg, batch_size));
  EvalResult r;
  int64_t top1 = 0, top5 = 0, batches = 0;
  layers::ForwardContext ctx;
  while (auto batch = loader.next()) {
    const layers::ModelOutput out = model.forward(batch->inputs, ctx);
    const layers::LossTerms terms = layers::compute_losses(out, model.prototypes(), batch->labels,
                                                           loss_cfg);
    const layers::Accuracy acc = layers::count_correct(out.logits, batch->labels);
    top1 += acc.top1;
    top5 += acc.top5;
    r.samples += acc.count;
    r.loss += terms.total.item();
    r.ce += terms.ce;
    r.nce += terms.nce;
    r.red += terms.red;
    r.hash += terms.hash;
    ++batches;
  }
  model.train(was_training);
  if (batches) {
    r.loss /= batches;
    r.ce /= batches;
    r.nce /= batches;
    r.red /= batches;
    r.hash /= batches;
  }
  if (r.samples) {
    r.top1 = static_cast<double>(top1) / r.samples;
    r.top5 = static_cast<double>(top5) / r.samples;
  }
  return r;
}

EvalResult Trainer::evaluate() {
  return evaluate_model(*model_, *test_set_, cfg_.data, cfg_.loss, cfg_.train.batch_size);
}

namespace {
MetricsRecord eval_record(const EvalResult& e, int64_t step, int64_t epoch) {
  MetricsRecord r("eval");
  r.add("step", step).add("epoch", epoch).add("top1", e.top1).add("top5", e.top5);
  r.add("loss", e.loss).add("ce", e.ce).add("nce", e.nce).add("red", e.red).add("hash", e.hash);
  r.add("samples", e.samples);
  return r;
}

void print_eval(const EvalResult& e, int64_t step, int64_t epoch) {
  std::printf(
      "eval  step %lld | epoch %lld | test top-1 %.2f%% | top-5 %.2f%% | loss %.4f (ce %.4f, "
      "nce %.4f, red %.4f, hash %.4f) | %lld samples\n",
      static_cast<long long>(step), static_cast<long long>(epoch), 100 * e.top1, 100 * e.top5,
      e.loss, e.ce, e.nce, e.red, e.hash, static_cast<long long>(e.samples));
  std::fflush(stdout);
}
}  // namespace

EvalResult Trainer::run() {
  fs::create_directories(cfg_.run_dir);
  write_resolved_config(cfg_, cfg_.run_dir);
  MetricsLog metrics((fs::path(cfg_.run_dir) / "metrics.jsonl").string());

  data::Loader loader(*train_set_, data::LoaderOptions::for_training(
                                       cfg_.data, cfg_.train.batch_size,
                                       stream_seed(cfg_.seed, kDataStream)));
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  int64_t total_steps = steps_per_epoch * cfg_.train.epochs;
  if (cfg_.train.max_steps > 0) total_steps = std::min(total_steps, cfg_.train.max_steps);
  layers::ScheduleConfig schedule;
  schedule.kind = cfg_.train.schedule;
  schedule.warmup_steps =
      static_cast<int64_t>(std::llround(cfg_.train.warmup_epochs * steps_per_epoch));
  schedule.total_steps = total_steps;
  schedule.min_lr = cfg_.train.min_lr;

  std::printf("train %s: %lld parameters | %lld train / %lld test samples | %lld steps "
              "(%lld per epoch) | run dir %s\n",
              cfg_.name.c_str(), static_cast<long long>(model_->num_parameters()),
              static_cast<long long>(train_set_->num_samples()),
              static_cast<long long>(test_set_->num_samples()),
              static_cast<long long>(total_steps), static_cast<long long>(steps_per_epoch),
              cfg_.run_dir.c_str());
  std::fflush(stdout);

  model_->train();
  const auto start = Clock::now();
  auto window_start = start;
  double window_loss = 0;
  int64_t window_correct = 0, window_samples = 0, window_steps = 0;
  int64_t epoch = 0, step = 0;
  std::optional<EvalResult> last_eval;
  layers::ForwardContext ctx{&train_gen_, Tensor()};

  while (step < total_steps) {
    std::optional<data::Batch> batch = loader.next();
    if (!batch) {  // end of an epoch
      if (cfg_.train.eval_every == 0) {
        last_eval = evaluate();
        metrics.write(eval_record(*last_eval, step, epoch + 1));
        print_eval(*last_eval, step, epoch + 1);
      }
      ++epoch;
      continue;
    }
    const double lr = layers::learning_rate(schedule, cfg_.optim.lr, step);
    store_->zero_grad();
    const layers::ModelOutput out = model_->forward(batch->inputs, ctx);
    const layers::LossTerms terms =
        layers::compute_losses(out, model_->prototypes(), batch->labels, cfg_.loss);
    terms.total.backward();
    const double grad_norm = layers::clip_grad_norm(*store_, cfg_.optim.grad_clip);
    optimizer_->step(lr);
    ++step;

    const layers::Accuracy acc = layers::count_correct(out.logits, batch->labels);
    const double loss = terms.total.item();
    loss_history_.push_back(loss);
    window_loss += loss;
    window_correct += acc.top1;
    window_samples += acc.count;
    ++window_steps;
    IM_CHECK(std::isfinite(loss), "training diverged: loss is ", loss, " at step ", step);

    if (step % cfg_.train.log_every == 0 || step == total_steps) {
      const double elapsed = seconds_since(window_start);
      ProgressState p;
      p.step = step;
      p.total_steps = total_steps;
      p.epoch = epoch + 1;
      p.total_epochs = (total_steps + steps_per_epoch - 1) / steps_per_epoch;
      p.loss = window_loss / window_steps;
      p.accuracy = static_cast<double>(window_correct) / window_samples;
      p.lr = lr;
      p.samples_per_second = window_samples / std::max(elapsed, 1e-9);
      p.eta_seconds = seconds_since(start) / step * (total_steps - step);
      std::printf("%s\n", format_progress(p).c_str());
      std::fflush(stdout);
      MetricsRecord r("train");
      r.add("step", step).add("epoch", epoch + 1).add("loss", p.loss).add("ce", terms.ce);
      r.add("nce", terms.nce).add("red", terms.red).add("hash", terms.hash);
      r.add("acc", p.accuracy).add("lr", lr).add("grad_norm", grad_norm);
      r.add("samples_per_s", p.samples_per_second);
      metrics.write(r);
      window_start = Clock::now();
      window_loss = 0;
      window_correct = window_samples = window_steps = 0;
    }
    if (cfg_.train.eval_every > 0 && step % cfg_.train.eval_every == 0 && step < total_steps) {
      last_eval = evaluate();
      metrics.write(eval_record(*last_eval, step, epoch + 1));
      print_eval(*last_eval, step, epoch + 1);
    }
  }
  // The final evaluation. (An epoch's end is noticed when its loader runs dry at the
  // next step, so the last epoch's evaluation is this one.)
  last_eval = evaluate();
  metrics.write(eval_record(*last_eval, step, epoch + 1));
  print_eval(*last_eval, step, epoch + 1);

  dist::TrainingState state;
  state.step = step;
  state.epoch = epoch;
  state.cursor = loader.cursor();
  state.rng = {{"init", init_gen_.state()}, {"train", train_gen_.state()}};
  state.config_toml = resolved_config_toml(cfg_);
  const std::string ckpt = dist::save_checkpoint(cfg_.run_dir, *store_, optimizer_.get(), state);
  std::printf("done in %s | test accuracy %.2f%% (top-5 %.2f%%) | checkpoint %s\n",
              format_duration(seconds_since(start)).c_str(), 100 * last_eval->top1,
              100 * last_eval->top5, ckpt.c_str());
  return *last_eval;
}

}  // namespace im::launch

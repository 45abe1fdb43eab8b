#include "launch/trainer.h"

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/autograd.h"
#include "data/crc32c.h"
#include "data/loader.h"
#include "dist/checkpoint.h"
#include "dist/stop_signal.h"
#include "launch/config.h"
#include "launch/device_choice.h"
#include "launch/progress.h"
#include "layers/batch_reduce.h"

namespace im::launch {

namespace fs = std::filesystem;

namespace {
// Stop reasons besides signal numbers: train.max_wall_minutes, and the stop file.
constexpr int64_t kWallTimeStop = 1000;
constexpr int64_t kStopFileStop = 1001;

std::string stop_reason_name(int64_t reason, const std::string& stop_file) {
  if (reason == kWallTimeStop) return "train.max_wall_minutes";
  if (reason == kStopFileStop) return "the stop file " + stop_file;
  if (reason == SIGUSR1) return "SIGUSR1";
  if (reason == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(reason);
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Fault injection for the failure-handling tests (docs/CHECKPOINT.md):
// Whether a fault-injection spec, "RANK:STEP" (a variable's value, read once by the caller
// rather than on every step), names this rank and step.
bool fault_requested(const char* spec, int rank, int64_t step) {
  long long r = -1, s = -1;
  return spec && std::sscanf(spec, "%lld:%lld", &r, &s) == 2 && r == rank && s == step;
}

// For the failure tests (docs/CHECKPOINT.md), after finishing a step:
// INFOMAMBA_FAULT_THROW_AT_STEP="RANK:STEP" makes that rank throw, as a rank that hits a bug
// or a hardware error alone would; INFOMAMBA_FAULT_HANG_AT_STEP="RANK:STEP" makes it stop
// responding without dying, as a hung rank or an unreachable node does.
void maybe_inject_failure(int rank, int64_t step) {
  static const char* const throw_spec = std::getenv("INFOMAMBA_FAULT_THROW_AT_STEP");
  static const char* const hang_spec = std::getenv("INFOMAMBA_FAULT_HANG_AT_STEP");
  if (fault_requested(throw_spec, rank, step))
    throw Error("injected failure at step " + std::to_string(step) +
                " (INFOMAMBA_FAULT_THROW_AT_STEP)");
  if (fault_requested(hang_spec, rank, step))
    for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
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
    IM_CHECK(s.size() == 3 && s[1] == s[2], "dataset '", dataset.name(), "' has images of shape ",
             shape_str(s), "; only square C x H x W images are supported");
    model.channels = s[0];
    model.image_size = s[1];
    IM_CHECK(model.image_size % model.patch == 0, "model.patch = ", model.patch,
             " does not tile the dataset's ", model.image_size, "x", model.image_size, " images");
  } else {
    model.max_len = s[0];
  }
}

void check_trainable(const RunConfig& cfg, int world) {
  if (cfg.train.batch_size < world)
    throw SetupError("train.batch_size = " + std::to_string(cfg.train.batch_size) +
                     " is the global batch and is smaller than the " + std::to_string(world) +
                     " ranks: every rank needs at least one sample per step");
}

data::LoaderOptions training_loader_options(const RunConfig& cfg, int rank, int world) {
  data::LoaderOptions o = data::LoaderOptions::for_training(cfg.data, cfg.train.batch_size,
                                                            stream_seed(cfg.seed, kDataStream));
  o.rank = rank;
  o.world_size = world;
  o.pin_memory = true;  // takes effect once a GPU run has enabled pinning (activate_device)
  return o;
}

data::Dataset open_training_split(const RunConfig& cfg, int rank, int world) {
  return as_setup_error([&] {
    // A rank reads only the training shards its columns of the batches draw from.
    std::vector<int> shards;
    if (world > 1)
      shards = data::shards_for_rank(
          data::Dataset::shard_sizes(cfg.data.dir, cfg.data.train_split, cfg.data.train_subset),
          training_loader_options(cfg, rank, world));
    return data::Dataset::open(cfg.data.dir, cfg.data.train_split, cfg.data.train_subset, shards);
  });
}

Trainer::Trainer(RunConfig cfg, dist::Communicator* comm, const std::string& resume)
    : cfg_(std::move(cfg)),
      comm_(comm),
      log_(comm ? comm->rank() : 0, comm ? comm->size() : 1),
      init_gen_(stream_seed(cfg_.seed, kInitStream)),
      train_gen_(stream_seed(cfg_.seed, kTrainStream)) {
  const int world = comm_ ? comm_->size() : 1;
  check_trainable(cfg_, world);
  train_set_ = open_training_split(cfg_, comm_ ? comm_->rank() : 0, world);
  test_set_ = as_setup_error([&] {
    return data::Dataset::open(cfg_.data.dir, cfg_.data.test_split, cfg_.data.test_subset);
  });
  as_setup_error([&] {
    fit_model_to_dataset(cfg_.model, *train_set_);
    model_ = std::make_unique<layers::InfoMamba>(cfg_.model, init_gen_);
  });
  const DeviceChoice device = choose_device(cfg_, local_rank_of(comm_), world);
  activate_device(device, cfg_);
  if (!device.note.empty()) log_.info(device.note);
  store_ = std::make_unique<layers::ParameterStore>(*model_, device.dtype, device.device);
  optimizer_ = std::make_unique<layers::AdamW>(*store_, cfg_.optim);
  if (cfg_.rank_logs) as_setup_error([&] { log_.open_file(cfg_.run_dir); });

  if (resume == "auto") {
    // Every rank scans the same (shared) directory; rank 0 reports what it skips.
    resume_ = dist::newest_valid_checkpoint(cfg_.run_dir, true,
                                            [&](const std::string& w) { log_.warn(w); });
    if (!resume_)
      log_.info("resume auto: no checkpoint in " + cfg_.run_dir +
                "/checkpoints; starting from step 0");
  } else if (!resume.empty()) {
    resume_ = as_setup_error(
        [&] { return dist::read_checkpoint(dist::resolve_checkpoint(resume), true); });
  }
  if (resume_)
    as_setup_error([&] {
      // Checks names, shapes and offsets against this model before anything is trained.
      dist::load_checkpoint(*resume_, *store_, optimizer_.get());
    });
}

Trainer::~Trainer() = default;

void Trainer::synchronise_initial_parameters() {
  // Every rank built the model from the same seed; broadcasting rank 0's values makes
  // that a guarantee rather than an assumption, and the hash check proves it.
  Tensor& flat = store_->master_params();
  comm_->broadcast(flat, 0);
  store_->refresh_model_params();
  if (resume_) {  // moments and step are part of the state every rank must share
    comm_->broadcast(optimizer_->exp_avg(), 0);
    comm_->broadcast(optimizer_->exp_avg_sq(), 0);
  }
  const Tensor host = flat.device().is_cpu() ? flat : flat.to(Device::cpu());
  const auto crc = static_cast<int64_t>(
      data::crc32c(host.data_ptr(), static_cast<size_t>(host.numel()) * dtype_size(host.dtype())));
  const Tensor all = comm_->all_gather(Tensor::from_vector<int64_t>({crc}, {1}));
  for (int r = 0; r < comm_->size(); ++r)
    IM_CHECK(all.data<int64_t>()[r] == crc, "parameters differ between rank ", comm_->rank(),
             " and rank ", r, " after the broadcast from rank 0 (hash ", crc, " vs ",
             all.data<int64_t>()[r], ")");
}

EvalResult evaluate_model(layers::InfoMamba& model, const data::Dataset& dataset,
                          const data::DataConfig& data_cfg, const layers::LossConfig& loss_cfg,
                          int64_t batch_size, dist::Communicator* comm) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  data::LoaderOptions options = data::LoaderOptions::for_evaluation(data_cfg, batch_size);
  options.pin_memory = true;  // as for training: pinned only on a GPU run
  layers::BatchReduce reduce;
  const bool parallel = comm && comm->size() > 1;
  if (parallel) {
    options.rank = comm->rank();
    options.world_size = comm->size();
    reduce.reduce = [comm](Tensor& t) { comm->all_reduce(t, dist::ReduceOp::Sum); };
  }
  data::Loader loader(dataset, options);
  EvalResult r;
  int64_t top1 = 0, top5 = 0, samples = 0, batches = 0;
  layers::ForwardContext ctx;
  if (parallel) ctx.batch = &reduce;
  const Device device = model.prototypes().device();
  while (auto next = loader.next()) {
    const std::optional<data::Batch> batch = on_device(*next, device);
    reduce.offset = batch->global_offset;
    reduce.global_size = batch->global_size;
    const layers::ModelOutput out = model.forward(batch->inputs, ctx);
    const layers::LossTerms terms =
        layers::compute_losses(out, model.prototypes(), batch->labels, loss_cfg, ctx.batch);
    const layers::Accuracy acc = layers::count_correct(out.logits, batch->labels);
    top1 += acc.top1;
    top5 += acc.top5;
    samples += acc.count;
    r.loss += terms.total.item();  // global values: the same on every rank
    r.ce += terms.ce;
    r.nce += terms.nce;
    r.red += terms.red;
    r.hash += terms.hash;
    ++batches;
  }
  model.train(was_training);
  if (parallel) {
    Tensor counts = Tensor::from_vector<int64_t>({top1, top5, samples}, {3});
    comm->all_reduce(counts, dist::ReduceOp::Sum);
    top1 = counts.data<int64_t>()[0];
    top5 = counts.data<int64_t>()[1];
    samples = counts.data<int64_t>()[2];
  }
  r.samples = samples;
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
  return evaluate_model(*model_, *test_set_, cfg_.data, cfg_.loss, cfg_.train.batch_size, comm_);
}

namespace {
MetricsRecord eval_record(const EvalResult& e, int64_t step, int64_t epoch) {
  MetricsRecord r("eval");
  r.add("step", step).add("epoch", epoch).add("top1", e.top1).add("top5", e.top5);
  r.add("loss", e.loss).add("ce", e.ce).add("nce", e.nce).add("red", e.red).add("hash", e.hash);
  r.add("samples", e.samples);
  return r;
}

std::string eval_line(const EvalResult& e, int64_t step, int64_t epoch) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "eval  step %lld | epoch %lld | test top-1 %.2f%% | top-5 %.2f%% | loss %.4f (ce "
                "%.4f, nce %.4f, red %.4f, hash %.4f) | %lld samples",
                static_cast<long long>(step), static_cast<long long>(epoch), 100 * e.top1,
                100 * e.top5, e.loss, e.ce, e.nce, e.red, e.hash,
                static_cast<long long>(e.samples));
  return buf;
}
}  // namespace

dist::TrainingState Trainer::training_state(int64_t step, int64_t epoch,
                                            const data::SamplerCursor& cursor) const {
  dist::TrainingState state;
  state.step = step;
  state.epoch = epoch;
  state.cursor = cursor;
  state.rng = {{"init", init_gen_.state()}, {"train", train_gen_.state()}};
  state.config_toml = resolved_config_toml(cfg_);
  state.world_size = comm_ ? comm_->size() : 1;
  return state;
}

EvalResult Trainer::run() {
  const int rank = comm_ ? comm_->rank() : 0, world = comm_ ? comm_->size() : 1;
  const bool root = rank == 0;
  std::optional<MetricsLog> metrics;
  if (root) {
    fs::create_directories(cfg_.run_dir);
    write_resolved_config(cfg_, cfg_.run_dir);
    metrics.emplace((fs::path(cfg_.run_dir) / "metrics.jsonl").string());
  }
  auto write_metrics = [&](const MetricsRecord& r) {
    if (metrics) metrics->write(r);
  };

  // Collective setup: same parameters everywhere, the same checkpoint resumed everywhere,
  // then the step (a separate communicator for the losses' batch statistics, the reducer).
  if (distributed()) {
    Tensor step =
        Tensor::scalar(resume_ ? static_cast<double>(resume_->state.step) : -1.0, DType::Float64);
    Tensor lowest = step.clone();
    comm_->all_reduce(step, dist::ReduceOp::Max);
    comm_->all_reduce(lowest, dist::ReduceOp::Min);
    IM_CHECK(step.item() == lowest.item(),
             "the ranks found different checkpoints to resume from "
             "(steps ",
             lowest.item(), " and ", step.item(), "): is run.dir on a shared filesystem?");
    // GPU ranks talk through NCCL from here on (CPU tensors still through MPI).
    gpu_comm_ = gpu_communicator(comm_, store_->device(), cfg_.dist.timeout_s);
    if (gpu_comm_) comm_ = gpu_comm_.get();
    synchronise_initial_parameters();
  }
  TrainStep train_step(*model_, *store_, *optimizer_, cfg_, comm_, train_gen_);

  int64_t step = 0, epoch = 0;
  data::SamplerCursor start;
  if (resume_) {
    const dist::TrainingState& s = resume_->state;
    step = s.step;
    epoch = s.epoch;
    start = s.cursor;
    for (const auto& [name, state] : s.rng) {
      if (name == "train") train_gen_.set_state(state);
      if (name == "init") init_gen_.set_state(state);
    }
    std::string note = "resuming from " + resume_->dir + " (step " + std::to_string(step) + ")";
    if (s.world_size != world)
      note += ", written by " + std::to_string(s.world_size) + " ranks, resharded onto " +
              std::to_string(world);
    log_.info(note);
  }

  data::Loader loader(*train_set_, training_loader_options(cfg_, rank, world), start);
  const int64_t steps_per_epoch = loader.batches_per_epoch();
  int64_t total_steps = steps_per_epoch * cfg_.train.epochs;
  if (cfg_.train.max_steps > 0) total_steps = std::min(total_steps, cfg_.train.max_steps);
  layers::ScheduleConfig schedule;
  schedule.kind = cfg_.train.schedule;
  schedule.warmup_steps =
      static_cast<int64_t>(std::llround(cfg_.train.warmup_epochs * steps_per_epoch));
  schedule.total_steps = total_steps;
  schedule.min_lr = cfg_.train.min_lr;

  {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "train %s: %lld parameters | %lld train / %lld test samples | %lld steps "
                  "(%lld per epoch) | %d rank%s, %lld samples per step | run dir %s",
                  cfg_.name.c_str(), static_cast<long long>(model_->num_parameters()),
                  static_cast<long long>(train_set_->num_samples()),
                  static_cast<long long>(test_set_->num_samples()),
                  static_cast<long long>(total_steps), static_cast<long long>(steps_per_epoch),
                  world, world == 1 ? "" : "s", static_cast<long long>(cfg_.train.batch_size),
                  cfg_.run_dir.c_str());
    log_.info(buf);
  }

  {
    std::string read;
    const size_t shards = train_set_->shard_sizes().size();
    for (size_t i = 0; i < shards; ++i)
      if (train_set_->shard_loaded(static_cast<int>(i)))
        read += (read.empty() ? "" : ",") + std::to_string(i);
    log_.local("training shards read by this rank: " + read + " (" +
               std::to_string(train_set_->shards_read()) + " of " + std::to_string(shards) + ")");
  }
  model_->train();
  const auto start_time = Clock::now();
  auto last_stop_file_check = start_time - std::chrono::seconds(1);
  const int64_t first_step = step;
  auto window_start = start_time;
  double window_loss = 0;
  int64_t window_correct = 0, window_samples = 0, window_steps = 0;
  int64_t last_saved = resume_ ? step : -1;
  std::optional<EvalResult> last_eval;

  auto run_eval = [&](int64_t at_step, int64_t at_epoch) {
    last_eval = evaluate();
    write_metrics(eval_record(*last_eval, at_step, at_epoch));
    log_.info(eval_line(*last_eval, at_step, at_epoch));
  };
  auto save = [&](int64_t at_step, int64_t at_epoch) {
    const std::string dir = dist::save_checkpoint(
        cfg_.run_dir, *store_, optimizer_.get(), training_state(at_step, at_epoch, loader.cursor()),
        static_cast<int>(cfg_.checkpoint.keep), comm_);
    last_saved = at_step;
    log_.info("checkpoint " + dir);
    return dir;
  };

  while (step < total_steps) {
    std::optional<data::Batch> batch = loader.next();
    if (!batch) {  // end of an epoch
      if (cfg_.train.eval_every == 0) run_eval(step, epoch + 1);
      ++epoch;
      continue;
    }
    const double lr = layers::learning_rate(schedule, cfg_.optim.lr, step);
    const StepResult result = train_step.run(*batch, lr, step);
    const double loss = result.loss, grad_norm = result.grad_norm;
    const layers::LossTerms& terms = result.terms;
    ++step;
    maybe_inject_failure(rank, step);

    const layers::Accuracy acc = layers::count_correct(result.out.logits, batch->labels);
    loss_history_.push_back(loss);
    window_loss += loss;
    window_correct += acc.top1;
    window_samples += acc.count;
    ++window_steps;

    if (step % cfg_.train.log_every == 0 || step == total_steps) {
      if (distributed()) {  // accuracy over the global batches of the window
        Tensor counts = Tensor::from_vector<int64_t>({window_correct, window_samples}, {2});
        comm_->all_reduce(counts, dist::ReduceOp::Sum);
        window_correct = counts.data<int64_t>()[0];
        window_samples = counts.data<int64_t>()[1];
      }
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
      p.eta_seconds = seconds_since(start_time) / (step - first_step) * (total_steps - step);
      log_.info(format_progress(p));
      log_.local("  this rank: " + std::to_string(acc.count) + " samples in its last batch");
      MetricsRecord r("train");
      r.add("step", step).add("epoch", epoch + 1).add("loss", p.loss).add("ce", terms.ce);
      r.add("nce", terms.nce).add("red", terms.red).add("hash", terms.hash);
      r.add("acc", p.accuracy).add("lr", lr).add("grad_norm", grad_norm);
      r.add("samples_per_s", p.samples_per_second);
      write_metrics(r);
      window_start = Clock::now();
      window_loss = 0;
      window_correct = window_samples = window_steps = 0;
    }
    if (cfg_.train.eval_every > 0 && step % cfg_.train.eval_every == 0 && step < total_steps)
      run_eval(step, epoch + 1);
    if (cfg_.checkpoint.every > 0 && step % cfg_.checkpoint.every == 0 && step < total_steps)
      save(step, epoch);

    // Preemption or the time limit: the ranks agree (MAX), then all save and stop.
    int64_t stop = dist::received_stop_signal();
    if (!stop && cfg_.train.max_wall_minutes > 0 &&
        seconds_since(start_time) > 60 * cfg_.train.max_wall_minutes)
      stop = kWallTimeStop;
    // Rank 0 alone looks for the stop file, at most once a second: a stat per step on
    // every rank would load a shared filesystem for nothing.
    if (!stop && !stop_file_.empty() && (!comm_ || comm_->rank() == 0) &&
        seconds_since(last_stop_file_check) >= 1.0) {
      last_stop_file_check = Clock::now();
      std::error_code ec;
      if (fs::exists(stop_file_, ec)) stop = kStopFileStop;
    }
    if (distributed()) {
      Tensor agreed = Tensor::from_vector<int64_t>({stop}, {1});
      comm_->all_reduce(agreed, dist::ReduceOp::Max);
      stop = agreed.data<int64_t>()[0];
    }
    if (stop && step < total_steps) {
      const std::string dir = last_saved == step ? std::string() : save(step, epoch);
      stop_reason_ = static_cast<int>(stop);
      log_.info("stopping at step " + std::to_string(step) + " of " + std::to_string(total_steps) +
                " on " + stop_reason_name(stop, stop_file_) +
                (dir.empty() ? "" : ": checkpoint " + dir) + "; exit " +
                std::to_string(dist::kRequeueExitCode) + " (requeue; --resume auto continues)");
      return last_eval.value_or(EvalResult{});
    }
  }
  // The final evaluation. (An epoch's end is noticed when its loader runs dry at the
  // next step, so the last epoch's evaluation is this one.)
  run_eval(step, epoch + 1);
  const std::string ckpt =
      last_saved == step ? resume_ ? resume_->dir : std::string() : save(step, epoch);
  char buf[512];
  std::snprintf(buf, sizeof buf, "done in %s | test accuracy %.2f%% (top-5 %.2f%%) | checkpoint %s",
                format_duration(seconds_since(start_time)).c_str(), 100 * last_eval->top1,
                100 * last_eval->top5, ckpt.c_str());
  log_.info(buf);
  return *last_eval;
}

}  // namespace im::launch

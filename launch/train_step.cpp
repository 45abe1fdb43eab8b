#include "launch/train_step.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

#include "launch/phase_timer.h"

namespace im::launch {

namespace {
DivergedError diverged(const char* what, double value, int64_t step) {
  // std::to_string prints a NaN's sign bit ("-nan"), which means nothing to a user.
  const std::string shown = std::isnan(value) ? "nan" : std::to_string(value);
  return DivergedError("training diverged: " + std::string(what) + " is " + shown + " at step " +
                       std::to_string(step + 1) + "; nothing was updated with it");
}
}  // namespace

TrainStep::TrainStep(layers::InfoMamba& model, layers::ParameterStore& store,
                     layers::AdamW& optimizer, const RunConfig& cfg, dist::Communicator* comm,
                     Generator& gen)
    : model_(model),
      store_(store),
      optimizer_(optimizer),
      loss_(cfg.loss),
      grad_clip_(cfg.optim.grad_clip),
      num_classes_(cfg.model.num_classes),
      ctx_{&gen, Tensor()} {
  if (comm && comm->size() > 1) {
    // The losses' statistics get their own communicator, so their all-reduces never
    // interleave with the gradient buckets' asynchronous ones.
    stats_comm_ = comm->duplicate();
    dist::Communicator* stats = stats_comm_.get();
    batch_reduce_.reduce = [stats](Tensor& t) { stats->all_reduce(t, dist::ReduceOp::Sum); };
    dist::ReducerOptions reducer_options;
    reducer_options.bucket_bytes = cfg.dist.bucket_mb << 20;
    reducer_ = std::make_unique<dist::GradientReducer>(store_, *comm, reducer_options);
    ctx_.batch = &batch_reduce_;
  }
  // One rank only: the gradient buckets' all-reduces run on their own stream, overlapping
  // backward, which a single-stream capture does not cover. Drop-path draws its masks
  // from host-side generator state that a replay would repeat.
  if (cfg.train.cuda_graph && store_.device().is_cuda() && !reducer_ && cfg.model.drop_path == 0)
    graph_ = std::make_unique<StepGraph>(store_.device());
}

TrainStep::~TrainStep() = default;

data::Batch on_device(const data::Batch& batch, Device device) {
  if (batch.inputs.device() == device) return batch;
  data::Batch moved = batch;
  moved.inputs = batch.inputs.to(device);
  moved.labels = batch.labels.to(device);
  return moved;
}

void TrainStep::queue(const data::Batch& batch, double lr, PhaseTimer& timer, Pending& p) {
  const bool on_gpu = store_.device().is_cuda();
  store_.zero_grad();
  timer.mark(&StepPhases::optimizer);
  batch_reduce_.offset = batch.global_offset;
  batch_reduce_.global_size = batch.global_size;
  p.result.out = model_.forward(batch.inputs, ctx_);
  p.result.terms = layers::compute_losses(p.result.out, model_.prototypes(), batch.labels, loss_,
                                          ctx_.batch, /*defer_read=*/on_gpu);
  timer.mark(&StepPhases::forward);
  // The loss is global (the same on every rank), so every rank stops here together.
  if (!on_gpu && !std::isfinite(p.result.terms.loss))
    throw diverged("the loss", p.result.terms.loss, p.step);
  if (reducer_) reducer_->prepare(true);
  p.result.terms.total.backward();
  timer.mark(&StepPhases::backward);
  if (reducer_) reducer_->finish();
  timer.mark(&StepPhases::comm);
  p.clip = layers::clip_grad_norm_checked(store_, grad_clip_, p.result.terms.total.detach());
  optimizer_.step(lr, &p.clip);
  timer.mark(&StepPhases::optimizer);
  timer.queued();
}

StepResult TrainStep::finish(Pending& p) {
  // The one wait of the step.
  const Tensor status = p.clip.status.to(Device::cpu());
  StepResult r = p.result;
  if (store_.device().is_cuda()) r.terms.read_values();
  r.loss = r.terms.loss;
  r.grad_norm = status.data<double>()[layers::kClipNormField];
  if (status.data<double>()[layers::kClipFiniteField] == 0.0) {
    // Nothing was updated; the step count goes back to the last update's.
    optimizer_.set_steps_taken(optimizer_.steps_taken() - 1);
    if (!std::isfinite(r.loss)) throw diverged("the loss", r.loss, p.step);
    throw diverged("the gradient norm", r.grad_norm, p.step);
  }
  return r;
}

StepResult TrainStep::run(const data::Batch& host_batch, double lr, int64_t step,
                          StepPhases* phases) {
  // A GPU step is queued whole, then read once at its end: the loss and the gradient norm
  // are checked on the device, where AdamW skips the update when either is not finite.
  // Reading them mid-step would leave the GPU idle while the host queues the rest.
  if (graph_ && graph_->wants(host_batch)) {
    if (!graph_->captured()) capture_graph(host_batch, lr);
    if (graph_->captured()) return replay_graph(host_batch, lr, step, phases);
  }
  PhaseTimer timer(phases, store_.device());
  Pending p;
  p.step = step;
  queue(on_device(host_batch, store_.device()), lr, timer, p);
  StepResult r = finish(p);
  timer.finish();
  return r;
}

void TrainStep::capture_graph(const data::Batch& batch, double lr) {
  // The captured step only records: the optimiser's count is put back, and each replay
  // counts its own step (AdamW::prepare_replay).
  const int64_t steps = optimizer_.steps_taken();
  captured_ = Pending();
  const bool ok = graph_->capture(batch, [&](const data::Batch& inputs, PhaseTimer& timer) {
    queue(inputs, lr, timer, captured_);
  });
  optimizer_.set_steps_taken(steps);
  if (!ok) {
    captured_ = Pending();
    std::fprintf(stderr,
                 "note: train.cuda_graph: this step cannot be captured as a CUDA graph (%s); "
                 "training on with kernel-by-kernel launches\n",
                 graph_->failure().c_str());
    return;
  }
  // Only what a step's result needs is kept: the tape is gone, and the rest of the
  // captured tensors live in the graph's pool.
  layers::ModelOutput& out = captured_.result.out;
  for (Tensor* t : {&out.logits, &out.r_g, &out.r_h, &out.hash_loss})
    if (t->defined()) *t = t->detach();
  captured_.result.terms.total = captured_.result.terms.total.detach();
}

StepResult TrainStep::replay_graph(const data::Batch& batch, double lr, int64_t step,
                                   StepPhases* phases) {
  const auto start = std::chrono::steady_clock::now();
  // Inside the graph nothing checks an index against its range (core/ops/indexing.cpp):
  // the labels are checked here, as the eager step's gather would.
  const Tensor labels = batch.labels.to(Device::cpu()).to(DType::Int64);
  for (int64_t i = 0; i < labels.numel(); ++i) {
    const int64_t label = labels.data<int64_t>()[i];
    IM_CHECK(label >= 0 && label < num_classes_, "train step: label ", label, " at position ", i,
             " of the batch is out of range for ", num_classes_, " classes");
  }
  optimizer_.prepare_replay(lr);
  graph_->replay(batch);
  if (phases)
    phases->host_queue +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  captured_.step = step;
  StepResult r = finish(captured_);
  if (phases) graph_->add_phases(*phases);
  return r;
}

}  // namespace im::launch

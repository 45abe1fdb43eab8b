#include "launch/train_step.h"

#include <chrono>
#include <cmath>
#include <string>

namespace im::launch {

namespace {
using Clock = std::chrono::steady_clock;

// Adds the seconds since `mark` to `phase` and moves the mark. The CPU path's work is done
// when its calls return; a GPU's work is queued, so a timed step waits for the stream at
// each mark (which costs a little overlap between phases, and only when timing).
void lap(StepPhases* phases, double StepPhases::*phase, Clock::time_point& mark, Device device) {
  if (!phases) return;
  synchronize(device);
  const Clock::time_point now = Clock::now();
  phases->*phase += std::chrono::duration<double>(now - mark).count();
  mark = now;
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
}

TrainStep::~TrainStep() = default;

data::Batch on_device(const data::Batch& batch, Device device) {
  if (batch.inputs.device() == device) return batch;
  data::Batch moved = batch;
  moved.inputs = batch.inputs.to(device);
  moved.labels = batch.labels.to(device);
  return moved;
}

StepResult TrainStep::run(const data::Batch& host_batch, double lr, int64_t step,
                          StepPhases* phases) {
  const Device device = store_.device();
  Clock::time_point mark = phases ? Clock::now() : Clock::time_point();
  const data::Batch batch = on_device(host_batch, device);
  StepResult r;
  store_.zero_grad();
  lap(phases, &StepPhases::optimizer, mark, device);
  batch_reduce_.offset = batch.global_offset;
  batch_reduce_.global_size = batch.global_size;
  r.out = model_.forward(batch.inputs, ctx_);
  r.terms = layers::compute_losses(r.out, model_.prototypes(), batch.labels, loss_, ctx_.batch);
  // The loss is global (the same on every rank), so every rank stops here together.
  r.loss = r.terms.total.item();
  lap(phases, &StepPhases::forward, mark, device);
  if (!std::isfinite(r.loss))
    throw DivergedError("training diverged: the loss is " + std::to_string(r.loss) + " at step " +
                        std::to_string(step + 1) + "; nothing was updated with it");
  if (reducer_) reducer_->prepare(true);
  r.terms.total.backward();
  lap(phases, &StepPhases::backward, mark, device);
  if (reducer_) reducer_->finish();
  lap(phases, &StepPhases::comm, mark, device);
  r.grad_norm = layers::clip_grad_norm(store_, grad_clip_);
  optimizer_.step(lr);
  lap(phases, &StepPhases::optimizer, mark, device);
  return r;
}

}  // namespace im::launch

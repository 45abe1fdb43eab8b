#include "launch/bench.h"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>

#include "core/allocator.h"
#include "core/autograd.h"
#include "launch/batch_stager.h"
#include "launch/device_choice.h"
#include "launch/setup_error.h"
#include "launch/synthetic_batch.h"
#include "launch/train_step.h"
#include "launch/trainer.h"

#if IM_WITH_CUDA
#include "kernels/cuda/kernel_profiler.h"
#endif

namespace im::launch {

namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// This process's peak resident set so far, in MB (Linux reports ru_maxrss in KiB).
double peak_host_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

constexpr int kFields = 7;  // per step: data, forward, backward, comm, optimizer, queue, total
}  // namespace

Bench::Bench(RunConfig cfg, BenchOptions options, dist::Communicator* comm)
    : cfg_(std::move(cfg)),
      options_(options),
      comm_(comm),
      init_gen_(stream_seed(cfg_.seed, kInitStream)),
      train_gen_(stream_seed(cfg_.seed, kTrainStream)) {
  const int rank = comm_ ? comm_->rank() : 0, world = comm_ ? comm_->size() : 1;
  check_trainable(cfg_, world);
  if (options_.real_data) {
    data::Dataset train_set = open_training_split(cfg_, rank, world);
    as_setup_error([&] {
      fit_model_to_dataset(cfg_.model, train_set);
      loader_ = std::make_unique<data::Loader>(std::move(train_set),
                                               training_loader_options(cfg_, rank, world));
    });
    if (loader_->batches_per_epoch() == 0)
      throw SetupError("data.train_split '" + cfg_.data.train_split + "' in " + cfg_.data.dir +
                       " has fewer samples than one global batch of " +
                       std::to_string(cfg_.train.batch_size));
  }
  // The same model, parameter store and optimiser that `train` builds from this config.
  as_setup_error([&] { model_ = std::make_unique<layers::InfoMamba>(cfg_.model, init_gen_); });
  const DeviceChoice device = choose_device(cfg_, local_rank_of(comm_), world);
  activate_device(device, cfg_);
  if (!device.note.empty() && rank == 0) std::fprintf(stderr, "%s\n", device.note.c_str());
  store_ = std::make_unique<layers::ParameterStore>(*model_, device.dtype, device.device);
  optimizer_ = std::make_unique<layers::AdamW>(*store_, cfg_.optim);
  if (options_.kernel_profile_rows > 0 && !device.device.is_cuda())
    throw SetupError(
        "--kernel-profile times GPU kernels, but this run trains on the CPU (train.device)");
  if (!options_.real_data) {
    synthetic_ = synthetic_batch(cfg_.model, cfg_.train.batch_size, rank, world,
                                 stream_seed(cfg_.seed, kDataStream));
    // As the loader's batches on a GPU run: pinned, so each step's copy is asynchronous.
    synthetic_.inputs = synthetic_.inputs.pinned();
    synthetic_.labels = synthetic_.labels.pinned();
  }
}

Bench::~Bench() = default;

data::Batch Bench::next_batch() {
  if (!loader_) return synthetic_;
  std::optional<data::Batch> batch = loader_->next();
  if (!batch) batch = loader_->next();  // the end of an epoch; the next one starts
  IM_CHECK(batch.has_value(), "bench: the training loader gave no batch after an epoch's end");
  return std::move(*batch);
}

StepTiming Bench::run_inference(const data::Batch& batch) {
  NoGradGuard no_grad;
  model_->eval();
  const Clock::time_point start = Clock::now();
  layers::ForwardContext ctx;
  const layers::ModelOutput out = model_->forward(batch.inputs, ctx);
  synchronize(device());
  StepTiming t;
  t.phases.forward = seconds_since(start);
  model_->train();
  return t;
}

BenchMeasurement Bench::run() {
  // Every rank built the same parameters from the same seed; unlike `train`, nothing here
  // depends on their values being identical, so they are not broadcast.
  // GPU ranks talk through NCCL (CPU tensors still through MPI), as in `train`.
  if (!gpu_comm_) {
    gpu_comm_ = gpu_communicator(comm_, device(), cfg_.dist.timeout_s);
    if (gpu_comm_) comm_ = gpu_comm_.get();
  }
  TrainStep train_step(*model_, *store_, *optimizer_, cfg_, comm_, train_gen_);
  model_->train();
  std::vector<StepTiming> timed;
#if IM_WITH_CUDA
  // Over the timed steps only; records cost the host a little, so the step times of a
  // profiled run read slightly high.
  kernels::cuda::KernelProfiler profiler;
#endif
  // Each step's batch was staged (copied to the GPU on a stream of its own) while the
  // step before it ran, as `train` does.
  BatchStager stager(store_->device());
  stager.stage(next_batch());
  for (int64_t i = 0; i < options_.warmup + options_.steps; ++i) {
#if IM_WITH_CUDA
    if (options_.kernel_profile_rows > 0 && i == options_.warmup) profiler.start();
#endif
    StepTiming t;
    const Clock::time_point start = Clock::now();
    // Data time: the host's time to take this batch and start the next one's copy (a copy
    // still running when the step needs its batch shows in the step's first phase).
    const data::Batch batch = stager.take();
    stager.stage(next_batch());
    t.data = seconds_since(start);
    if (options_.inference) {
      t.phases = run_inference(batch).phases;
    } else {
      // A constant learning rate: the schedule changes nothing that takes time.
      train_step.run(batch, cfg_.optim.lr, i, &t.phases);
    }
    t.total = seconds_since(start);
    if (i >= options_.warmup) timed.push_back(t);
  }
#if IM_WITH_CUDA
  if (options_.kernel_profile_rows > 0)
    kernel_profile_ = kernels::cuda::format_kernel_profile(profiler.stop(), options_.steps,
                                                           options_.kernel_profile_rows);
#endif

  // One MAX all-reduce after the timed loop, so agreeing adds nothing to any step: per step
  // the slowest rank's time in each phase, and the largest peak memory.
  const size_t n = timed.size();
  std::vector<double> flat;
  flat.reserve(kFields * n + 2);
  for (const StepTiming& t : timed)
    for (double v : {t.data, t.phases.forward, t.phases.backward, t.phases.comm, t.phases.optimizer,
                     t.phases.host_queue, t.total})
      flat.push_back(v);
  flat.push_back(peak_host_mb());
  flat.push_back(device().is_cuda()
                     ? static_cast<double>(allocator_for(device()).stats().peak_bytes) / (1 << 20)
                     : 0.0);
  Tensor agreed = Tensor::from_vector<double>(flat, {static_cast<int64_t>(flat.size())});
  if (comm_ && comm_->size() > 1) comm_->all_reduce(agreed, dist::ReduceOp::Max);
  const double* a = agreed.data<double>();
  BenchMeasurement m;
  for (size_t i = 0; i < n; ++i) {
    const double* f = a + kFields * i;
    StepTiming t;
    t.data = f[0];
    t.phases = {f[1], f[2], f[3], f[4], f[5]};
    t.total = f[6];
    m.steps.push_back(t);
  }
  m.peak_host_mb = a[kFields * n];
  m.peak_device_mb = a[kFields * n + 1];
  m.cuda_graph = train_step.graphed();
  return m;
}

}  // namespace im::launch

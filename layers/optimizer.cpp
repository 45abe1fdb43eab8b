#include "layers/optimizer.h"

#include <algorithm>
#include <cmath>

#include "core/device.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "kernels/cpu/adamw.h"

#if IM_WITH_CUDA
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/graph.h"
#include "kernels/cuda/stream.h"
#endif

namespace im::layers {

AdamW::AdamW(ParameterStore& store, const OptimConfig& cfg)
    : store_(store),
      cfg_(cfg),
      exp_avg_(Tensor::zeros({store.numel()}, store.master_params().dtype(),
                             store.master_params().device())),
      exp_avg_sq_(Tensor::zeros({store.numel()}, store.master_params().dtype(),
                                store.master_params().device())) {
#if IM_WITH_CUDA
  // For graph replays (step()): made here, outside any capture's memory pool.
  if (store.master_params().device().is_cuda()) {
    replay_host_ = static_cast<kernels::cpu::AdamWStep*>(
        kernels::cuda::pinned_malloc(sizeof(kernels::cpu::AdamWStep)));
    replay_device_ = Tensor::empty({static_cast<int64_t>(sizeof(kernels::cpu::AdamWStep))},
                                   DType::UInt8, store.master_params().device());
  }
#endif
}

double ClipOutcome::norm() const {
  return status.to(Device::cpu()).data<double>()[kClipNormField];
}

bool ClipOutcome::finite() const {
  return status.to(Device::cpu()).data<double>()[kClipFiniteField] != 0.0;
}

AdamW::~AdamW() {
#if IM_WITH_CUDA
  if (replay_host_) kernels::cuda::pinned_free(replay_host_);
#endif
}

kernels::cpu::AdamWStep AdamW::constants(double lr) const {
  return {lr,
          cfg_.beta1,
          cfg_.beta2,
          cfg_.eps,
          cfg_.weight_decay,
          1.0 - std::pow(cfg_.beta1, static_cast<double>(steps_)),
          1.0 - std::pow(cfg_.beta2, static_cast<double>(steps_))};
}

void AdamW::prepare_replay(double lr) {
  IM_CHECK(replay_host_, "adamw: prepare_replay before a step was captured");
  ++steps_;
  *replay_host_ = constants(lr);  // the previous replay has finished with the buffer
}

void AdamW::step(double lr, const ClipOutcome* clip) {
  ++steps_;
  [[maybe_unused]] const double* status = nullptr;  // the device's verdict, read by the kernel
  if (clip) {
    IM_CHECK(clip->status.numel() == 3 && clip->status.dtype() == DType::Float64 &&
                 clip->status.device() == store_.master_params().device(),
             "adamw: clip status ", clip->status.describe(), " is not a float64[3] on ",
             store_.master_params().device().str());
    if (clip->status.device().is_cpu()) {
      if (!clip->finite()) return;
    } else {
      status = clip->status.data<double>();
    }
  }
  const kernels::cpu::AdamWStep s = constants(lr);
  Tensor& p = store_.master_params();
  [[maybe_unused]] const kernels::cpu::AdamWStep* device_step = nullptr;
#if IM_WITH_CUDA
  if (p.device().is_cuda() && kernels::cuda::stream_capturing(kernels::cuda::current_stream())) {
    *replay_host_ = s;
    kernels::cuda::memcpy_host_to_device_async(replay_device_.data_ptr(), replay_host_, sizeof(s),
                                               kernels::cuda::current_stream());
    device_step = static_cast<const kernels::cpu::AdamWStep*>(replay_device_.data_ptr());
  }
#endif
  const Tensor& g = store_.flat_grads();
  const Tensor& mask = store_.decay_mask();
  // Every buffer is one flat contiguous tensor of the masters' dtype and device (a
  // checkpoint restore copies into exp_avg/exp_avg_sq, so they stay where they were made).
  const Tensor* buffers[] = {&g, &exp_avg_, &exp_avg_sq_, &mask};
  for (const Tensor* t : buffers) {
    IM_CHECK(t->dtype() == p.dtype() && t->device() == p.device() && t->numel() == p.numel() &&
                 t->is_contiguous() && p.is_contiguous(),
             "adamw: ", t->describe(), " does not match the flat parameters ", p.describe());
  }
  if (store_.has_master()) {
    Tensor& model = store_.flat_params();
    IM_CHECK(p.dtype() == DType::Float32 && model.dtype() == DType::BFloat16 &&
                 p.device().is_cuda() && model.is_contiguous(),
             "adamw: mixed precision needs float32 masters and a bfloat16 model on a GPU, got ",
             p.describe(), " and ", model.describe());
#if IM_WITH_CUDA
    kernels::cuda::adamw_mixed(p.data<float>(), model.data<bfloat16>(), g.data<float>(),
                               exp_avg_.data<float>(), exp_avg_sq_.data<float>(),
                               mask.data<float>(), p.numel(), s, status, device_step);
#endif
    return;
  }
  dispatch_float(p.dtype(), "adamw", [&]<typename T>() {
    if (p.device().is_cpu()) {
      kernels::cpu::adamw<T>(p.data<T>(), g.data<T>(), exp_avg_.data<T>(), exp_avg_sq_.data<T>(),
                             mask.data<T>(), p.numel(), s);
      return;
    }
#if IM_WITH_CUDA
    kernels::cuda::adamw<T>(p.data<T>(), g.data<T>(), exp_avg_.data<T>(), exp_avg_sq_.data<T>(),
                            mask.data<T>(), p.numel(), s, status, device_step);
#endif
  });
}

double clip_grad_norm(ParameterStore& store, double max_norm) {
  // The checked clipping with a loss that is always finite: one implementation per device.
  const Tensor finite_loss = Tensor::zeros({1}, DType::Float64, store.flat_grads().device());
  return clip_grad_norm_checked(store, max_norm, finite_loss).norm();
}

ClipOutcome clip_grad_norm_checked(ParameterStore& store, double max_norm, const Tensor& loss) {
  Tensor& g = store.flat_grads();
  IM_CHECK(g.is_contiguous(), "clip_grad_norm: flat gradients ", g.describe(),
           " are not contiguous");
  IM_CHECK(loss.numel() == 1 && loss.device() == g.device(), "clip_grad_norm: loss ",
           loss.describe(), " is not one value on ", g.device().str());
  ClipOutcome out;
  if (g.device().is_cpu()) {
    // On the CPU the norm is at hand; a non-finite one scales nothing (the step is skipped).
    const double loss_value = loss.item();
    double norm = 0, factor = 1;
    bool finite = false;
    dispatch_float(g.dtype(), "clip_grad_norm", [&]<typename T>() {
      norm = std::sqrt(kernels::cpu::sum_of_squares<T>(g.data<T>(), g.numel()));
      finite = std::isfinite(norm) && std::isfinite(loss_value);
      if (max_norm > 0 && norm > max_norm) factor = max_norm / (norm + 1e-6);
      if (finite && factor != 1.0)
        kernels::cpu::scale<T>(g.data<T>(), static_cast<T>(factor), g.numel());
    });
    out.status = Tensor::from_vector<double>({norm, factor, finite ? 1.0 : 0.0}, {3});
    return out;
  }
#if IM_WITH_CUDA
  out.status = Tensor::empty({3}, DType::Float64, g.device());
  const Tensor ws =
      Tensor::empty({static_cast<int64_t>(kernels::cuda::sum_of_squares_workspace_bytes(g.numel()) +
                                          sizeof(double))},
                    DType::UInt8, g.device());
  double* sum_sq = reinterpret_cast<double*>(
      static_cast<char*>(ws.data_ptr()) + kernels::cuda::sum_of_squares_workspace_bytes(g.numel()));
  double* status = out.status.data<double>();
  dispatch_float(g.dtype(), "clip_grad_norm", [&]<typename T>() {
    kernels::cuda::sum_of_squares_to<T>(g.data<T>(), g.numel(), ws.data_ptr(), sum_sq);
    const Tensor l = loss.dtype() == DType::Float64 ? loss : loss.to(DType::Float32);
    if (l.dtype() == DType::Float64)
      kernels::cuda::clip_status<double>(sum_sq, l.data<double>(), max_norm, status);
    else
      kernels::cuda::clip_status<float>(sum_sq, l.data<float>(), max_norm, status);
    kernels::cuda::scale_by_status<T>(g.data<T>(), status, g.numel());
  });
  return out;
#else
  throw Error("clip_grad_norm: " + g.describe() + ": " + cuda_unavailable_reason());
#endif
}

double learning_rate(const ScheduleConfig& schedule, double base_lr, int64_t step) {
  if (step < schedule.warmup_steps)
    return base_lr * static_cast<double>(step + 1) / static_cast<double>(schedule.warmup_steps);
  if (schedule.kind == "constant") return base_lr;
  IM_CHECK(schedule.kind == "cosine", "unknown learning-rate schedule '", schedule.kind, "'");
  const int64_t decay_steps = std::max<int64_t>(1, schedule.total_steps - schedule.warmup_steps);
  const double progress =
      std::clamp(static_cast<double>(step - schedule.warmup_steps) / decay_steps, 0.0, 1.0);
  return schedule.min_lr + (base_lr - schedule.min_lr) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

}  // namespace im::layers

#include "launch/batch_stager.h"

#include "core/error.h"

#if IM_WITH_CUDA
#include "kernels/cuda/stream.h"
#endif

namespace im::launch {

#if IM_WITH_CUDA
namespace {
Tensor empty_like_on(const Tensor& t, Device device) {
  return t.defined() ? Tensor::empty(t.shape(), t.dtype(), device) : Tensor();
}
}  // namespace
#endif

BatchStager::BatchStager(Device device) : device_(device) {
#if IM_WITH_CUDA
  if (device_.is_cuda()) {
    copy_stream_ = kernels::cuda::create_stream();
    compute_done_ = kernels::cuda::create_event();
    copied_ = kernels::cuda::create_event();
  }
#endif
}

BatchStager::~BatchStager() {
#if IM_WITH_CUDA
  if (!copy_stream_) return;
  // A staged copy may still be running into memory the caching allocator will reuse.
  kernels::cuda::stream_synchronize(copy_stream_);
  staged_.reset();
  kernels::cuda::destroy_event(compute_done_);
  kernels::cuda::destroy_event(copied_);
  kernels::cuda::destroy_stream(copy_stream_);
#endif
}

void BatchStager::stage(const data::Batch& host) {
  IM_CHECK(!staged_, "BatchStager: a batch is already staged");
  if (!device_.is_cuda() || host.inputs.device() == device_) {
    staged_ = host;
    return;
  }
#if IM_WITH_CUDA
  data::Batch moved = host;
  moved.inputs = empty_like_on(host.inputs, device_);
  moved.labels = empty_like_on(host.labels, device_);
  kernels::cuda::record_event(compute_done_, kernels::cuda::current_stream());
  kernels::cuda::stream_wait_event(copy_stream_, compute_done_);
  {
    kernels::cuda::StreamGuard on_copy_stream(copy_stream_);
    if (moved.inputs.defined()) moved.inputs.copy_(host.inputs);
    if (moved.labels.defined()) moved.labels.copy_(host.labels);
  }
  kernels::cuda::record_event(copied_, copy_stream_);
  staged_ = std::move(moved);
#endif
}

data::Batch BatchStager::take() {
  IM_CHECK(staged_.has_value(), "BatchStager: no batch is staged");
  data::Batch batch = std::move(*staged_);
  staged_.reset();
#if IM_WITH_CUDA
  if (copy_stream_) kernels::cuda::stream_wait_event(kernels::cuda::current_stream(), copied_);
#endif
  return batch;
}

}  // namespace im::launch

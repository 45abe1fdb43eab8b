#include "launch/step_graph.h"

#include "core/allocator.h"
#include "core/caching_allocator.h"
#include "core/error.h"
#include "launch/train_step.h"

#if IM_WITH_CUDA
#include "kernels/cuda/graph.h"
#include "kernels/cuda/stream.h"
#else
namespace im::kernels::cuda {
class Graph {};  // nothing is ever captured without CUDA
}  // namespace im::kernels::cuda
#endif

namespace im::launch {

namespace {
bool same_layout(const Tensor& a, const Tensor& b) {
  return a.defined() == b.defined() &&
         (!a.defined() || (a.shape() == b.shape() && a.dtype() == b.dtype()));
}

CachingAllocator& device_allocator(Device device) {
  auto* caching = dynamic_cast<CachingAllocator*>(&allocator_for(device));
  IM_CHECK(caching, "StepGraph: ", device.str(), " has no caching allocator");
  return *caching;
}
}  // namespace

StepGraph::StepGraph(Device device) : device_(device) {
  IM_CHECK(device.is_cuda(), "StepGraph: CUDA graphs need a GPU, got ", device.str());
}

StepGraph::~StepGraph() {
  timer_.reset();
#if IM_WITH_CUDA
  // The graph first (a replay may still run: wait for it), then its memory is shared again.
  if (graph_) kernels::cuda::stream_synchronize(kernels::cuda::current_stream());
  graph_.reset();
#endif
  if (pool_) device_allocator(device_).release_pool(pool_);
}

bool StepGraph::captured() const {
#if IM_WITH_CUDA
  return graph_ && graph_->ready();
#else
  return false;
#endif
}

size_t StepGraph::nodes() const {
#if IM_WITH_CUDA
  return graph_ ? graph_->node_count() : 0;
#else
  return 0;
#endif
}

bool StepGraph::wants(const data::Batch& batch) {
  if (!failure_.empty()) return false;
  if (eager_steps_ < kEagerWarmupSteps) {
    ++eager_steps_;
    return false;
  }
  if (!captured()) return true;
  return same_layout(batch.inputs, inputs_.inputs) && same_layout(batch.labels, inputs_.labels) &&
         batch.global_size == inputs_.global_size && batch.global_offset == inputs_.global_offset;
}

bool StepGraph::capture(const data::Batch& batch,
                        const std::function<void(const data::Batch&, PhaseTimer&)>& queue_step) {
#if IM_WITH_CUDA
  // The input buffers belong to the graph but not to its pool: they are written between
  // replays.
  inputs_ = batch;
  inputs_.inputs = Tensor::empty(batch.inputs.shape(), batch.inputs.dtype(), device_);
  inputs_.labels = Tensor::empty(batch.labels.shape(), batch.labels.dtype(), device_);
  CachingAllocator& allocator = device_allocator(device_);
  const kernels::cuda::StreamHandle stream = kernels::cuda::current_stream();
  graph_ = std::make_unique<kernels::cuda::Graph>();
  pool_ = allocator.open_pool();
  try {
    graph_->begin_capture(stream);
    timer_ = std::make_unique<PhaseTimer>(&capture_phases_, device_);
    queue_step(inputs_, *timer_);
    graph_->end_capture(stream);
  } catch (const std::exception& e) {
    graph_->abandon_capture(stream);
    failure_ = e.what();
  }
  allocator.close_pool();
  if (!failure_.empty()) {
    timer_.reset();
    graph_.reset();
    inputs_ = data::Batch();
    allocator.release_pool(pool_);
    pool_ = 0;
    return false;
  }
  return true;
#else
  (void)batch;
  (void)queue_step;
  failure_ = "built without CUDA";
  return false;
#endif
}

void StepGraph::replay([[maybe_unused]] const data::Batch& batch) {
  IM_CHECK(captured(), "StepGraph: replay before a capture");
#if IM_WITH_CUDA
  inputs_.inputs.copy_(batch.inputs);
  inputs_.labels.copy_(batch.labels);
  graph_->launch(kernels::cuda::current_stream());
#endif
}

void StepGraph::add_phases(StepPhases& phases) {
  if (timer_) timer_->finish(&phases);
}

}  // namespace im::launch

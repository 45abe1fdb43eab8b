#include "launch/device_choice.h"

#include "core/pinned_allocator.h"
#include "dist/nccl_communicator.h"
#include "dist/world.h"
#include "launch/setup_error.h"

#if IM_WITH_CUDA
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/runtime.h"
#endif

namespace im::launch {

namespace {

// Where train.device points: the CPU, or this rank's GPU.
DeviceChoice choose_placement(const RunConfig& cfg, int local_rank, int world) {
  const std::string& wanted = cfg.train.device;
  DeviceChoice choice;
  if (wanted == "cpu") return choice;
  const int gpus = cuda_device_count();
  if (gpus == 0) {
    if (wanted == "cuda")
      throw SetupError("train.device = \"cuda\" but " + cuda_unavailable_reason() +
                       "; use train.device = \"cpu\" or \"auto\"");
    choice.note = "train.device = auto: " + cuda_unavailable_reason() + "; training on the CPU";
    return choice;
  }
  if (world > 1 && !dist::nccl_built())
    throw SetupError("train.device = \"" + wanted + "\" with " + std::to_string(world) +
                     " ranks needs NCCL, which this build lacks (rebuild with NCCL installed)");
  choice.device = Device::cuda(local_rank % gpus);
  return choice;
}

}  // namespace

DeviceChoice choose_device(const RunConfig& cfg, int local_rank, int world) {
  DeviceChoice choice = choose_placement(cfg, local_rank, world);
  if (cfg.train.precision == "bf16") {
    // The CPU kernels are the float32/float64 reference; bfloat16 exists for GPU speed.
    if (!choice.device.is_cuda())
      throw SetupError(
          "train.precision = \"bf16\" computes on a GPU, but this run trains on "
          "the CPU (train.device = \"" +
          cfg.train.device + "\"" +
          (choice.note.empty() ? std::string() : ": " + cuda_unavailable_reason()) +
          "); use train.precision = \"fp32\"");
    choice.dtype = DType::BFloat16;
  }
  return choice;
}

int local_rank_of(const dist::Communicator* comm) {
  return comm && comm->size() > 1 ? dist::World::get().local_rank() : 0;
}

std::unique_ptr<dist::Communicator> gpu_communicator(dist::Communicator* comm, Device device,
                                                     double timeout_seconds) {
  if (!comm || comm->size() == 1 || !device.is_cuda()) return nullptr;
  const dist::World& world = dist::World::get();
  const std::string who = "rank " + std::to_string(world.rank()) + " of " +
                          std::to_string(world.size()) + " (" + world.hostname() + ")";
  return dist::make_nccl_communicator(*comm, device, who, timeout_seconds);
}

void activate_device(const DeviceChoice& choice, const RunConfig& cfg) {
#if IM_WITH_CUDA
  if (choice.device.is_cuda()) {
    kernels::cuda::set_device(choice.device.index);
    kernels::cuda::set_tf32_enabled(cfg.train.tf32);
    enable_pinned_memory(choice.device.index);  // batches for it are assembled pinned
  }
#else
  (void)choice;
  (void)cfg;
#endif
}

}  // namespace im::launch

// Which device a run trains on: train.device (cpu | cuda | auto) resolved against the GPUs
// this process can see. `auto` takes a GPU when there is one and otherwise says once, on
// rank 0, that it runs on the CPU; `cuda` without a GPU is a setup error (exit 2). Ranks
// of one node take its GPUs in turn (local rank modulo the GPU count), and on GPUs the
// ranks talk through NCCL. train.precision = "bf16" needs the GPU: its model computes in
// bfloat16 there (float32 masters), and a run on the CPU with it is a setup error.
#pragma once

#include <memory>
#include <string>

#include "core/device.h"
#include "core/dtype.h"
#include "dist/communicator.h"
#include "launch/train_config.h"

namespace im::launch {

struct DeviceChoice {
  Device device;
  DType dtype = DType::Float32;  // the model's: what the parameter store packs it into
  std::string note;  // one line for the log when `auto` fell back to the CPU; else empty
};

// `local_rank` picks the GPU (ranks of one node take GPUs 0, 1, ... in turn). Throws
// SetupError for a device this build or machine cannot provide.
DeviceChoice choose_device(const RunConfig& cfg, int local_rank, int world);

// This rank's index among the ranks of its node (0 without a communicator).
int local_rank_of(const dist::Communicator* comm);

// Collective: for a multi-rank run on GPUs, the NCCL communicator over `comm`'s ranks
// (CPU tensors still go through `comm`); null when `comm` is enough (CPU, one rank).
std::unique_ptr<dist::Communicator> gpu_communicator(dist::Communicator* comm, Device device,
                                                     double timeout_seconds);

// Makes `device` current for this thread and sets the GEMM precision (train.tf32) for it.
void activate_device(const DeviceChoice& choice, const RunConfig& cfg);

}  // namespace im::launch

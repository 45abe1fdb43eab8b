// The NCCL implementation of Communicator, for CUDA tensors (docs/DESIGN.md, dist/).
//
// One GPU per rank; the communicator is built from an existing host communicator (MPI),
// over which rank 0's ncclUniqueId is broadcast. Collectives run on a dedicated NCCL
// stream: each waits (on the GPU, through an event) for the work already queued on the
// compute stream, and the compute stream waits for it in turn when the caller waits, so
// nothing blocks the host: the reducer launches each bucket as soon as backward has
// produced it, and the optimiser's kernels queue behind the all-reduces' events.
// CPU tensors (control flags, counts) go to the host communicator.
//
// A monitor thread watches every collective in flight: one not finished within the
// timeout aborts the NCCL communicator (ncclCommAbort) and ends the process with one line
// naming rank, host and collective, exit code 1, as the MPI watchdog does.
#pragma once

#include <memory>
#include <string>

#include "core/device.h"
#include "dist/communicator.h"

namespace im::dist {

// Whether this build has NCCL (it comes with the CUDA backend).
bool nccl_built();

// Collective over `host`'s ranks. `host` must outlive the result; `device` is this rank's
// GPU; `who` names the rank in the timeout message ("rank 3 of 8 (node07)");
// `timeout_seconds` 0 waits forever.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, Device device,
                                                     const std::string& who,
                                                     double timeout_seconds);

}  // namespace im::dist

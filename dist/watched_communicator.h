// A Communicator whose every blocking wait runs under a CollectiveWatchdog: the same
// collectives, in the same order, on the wrapped communicator (MPI now, NCCL later).
#pragma once

#include <memory>

#include "dist/collective_watchdog.h"
#include "dist/communicator.h"

namespace im::dist {

// `watchdog` is shared with the duplicates made by duplicate().
std::unique_ptr<Communicator> watch_collectives(std::unique_ptr<Communicator> inner,
                                                std::shared_ptr<CollectiveWatchdog> watchdog);

}  // namespace im::dist

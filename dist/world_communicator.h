// The communicator a command runs on: MPI over the whole world, every blocking collective
// under a watchdog that names this rank and host when it fires (dist/collective_watchdog.h).
#pragma once

#include <memory>

#include "dist/collective_watchdog.h"
#include "dist/communicator.h"
#include "dist/world.h"

namespace im::dist {

struct WatchedWorld {
  std::shared_ptr<CollectiveWatchdog> watchdog;  // off (timeout 0) until set_timeout
  std::unique_ptr<Communicator> comm;
};

WatchedWorld watched_world_communicator(const World& world);

}  // namespace im::dist

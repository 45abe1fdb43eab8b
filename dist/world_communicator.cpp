#include "dist/world_communicator.h"

#include <string>

#include "dist/mpi_communicator.h"
#include "dist/watched_communicator.h"

namespace im::dist {

WatchedWorld watched_world_communicator(const World& world) {
  WatchedWorld w;
  w.watchdog = std::make_shared<CollectiveWatchdog>("rank " + std::to_string(world.rank()) +
                                                    " of " + std::to_string(world.size()) + " (" +
                                                    world.hostname() + ")");
  w.comm = watch_collectives(make_mpi_communicator(world.comm()), w.watchdog);
  return w;
}

}  // namespace im::dist

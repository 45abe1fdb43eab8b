// How every sub-command reports failure, so they all read alike to users and scripts: one
// line on stderr, "infomamba_dist CMD: error: ...", and an exit code.
#pragma once

#include <cstdio>
#include <exception>

#include "dist/world.h"
#include "launch/config.h"
#include "launch/trainer.h"

namespace im::launch {

// Runs `body`, turning errors into one line on stderr and an exit code: 2 for bad input
// found before work starts (SetupError, ConfigError), 1 for failures during the run.
template <typename F>
int guarded(const char* command, F&& body) {
  try {
    return body();
  } catch (const SetupError& e) {
    std::fprintf(stderr, "infomamba_dist %s: error: %s\n", command, e.what());
    return 2;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "infomamba_dist %s: error: %s\n", command, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "infomamba_dist %s: error: %s\n", command, e.what());
    return 1;
  }
}

// The part of a multi-rank command after its setup was agreed (launch/setup_agreement.h):
// runs `body` (collective work) and returns its exit code. A divergence is seen by every rank
// at the same step, so rank 0 reports it and all exit 1; any other failure is one rank's
// alone: it reports itself and ends every rank (World::abort), so none waits in a collective.
template <typename F>
int guarded_collective(const char* command, const dist::World& world, F&& body) {
  try {
    return body();
  } catch (const DivergedError& e) {
    if (world.rank() == 0)
      std::fprintf(stderr, "infomamba_dist %s: error: %s\n", command, e.what());
    return 1;
  } catch (const std::exception& e) {
    if (world.size() > 1) world.abort(1, e.what());
    std::fprintf(stderr, "infomamba_dist %s: error: %s\n", command, e.what());
    return 1;
  }
}

}  // namespace im::launch

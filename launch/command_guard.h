// How every sub-command reports failure, so they all read alike to users and scripts: one
// line on stderr, "infomamba_dist CMD: error: ...", and an exit code.
#pragma once

#include <cstdio>
#include <exception>

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

}  // namespace im::launch

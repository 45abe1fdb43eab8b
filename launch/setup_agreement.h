// How a multi-rank command starts (docs/DESIGN.md): setup is local work on every rank, ending
// in one small all-reduce of the outcome, so that a failure seen by one rank is reported once
// and every rank exits with the same code instead of some waiting forever in a collective.
#pragma once

#include <exception>
#include <string>

#include "dist/communicator.h"
#include "launch/config.h"
#include "launch/setup_error.h"

namespace im::launch {

struct SetupStatus {
  int code = 0;  // 0 ready, 2 bad input (SetupError, ConfigError), 1 anything else
  std::string error;
};

// Runs `body` (local work only), catching what it throws.
template <typename F>
SetupStatus try_setup(F&& body) {
  try {
    body();
    return {};
  } catch (const SetupError& e) {
    return {2, e.what()};
  } catch (const ConfigError& e) {
    return {2, e.what()};
  } catch (const std::exception& e) {
    return {1, e.what()};
  }
}

// Collective: returns the worst code over the ranks (0 when every rank is ready). The lowest
// failing rank prints its error as one line, "infomamba_dist COMMAND: error: ...".
int agree_on_setup(dist::Communicator& comm, const std::string& command, const SetupStatus& local);

}  // namespace im::launch

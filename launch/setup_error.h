// Errors in what the user gave us (flags, config, data, checkpoint): every command prints
// them as one line and exits 2, before any training or benchmarking has happened.
#pragma once

#include <exception>
#include <string>

#include "core/error.h"

namespace im::launch {

class SetupError : public Error {
 public:
  explicit SetupError(const std::string& what) : Error(what) {}
};

// Runs `f`, turning any failure into a SetupError: failures while opening data or building
// the model come from what the user gave us.
template <typename F>
auto as_setup_error(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const SetupError&) {
    throw;
  } catch (const std::exception& e) {
    throw SetupError(e.what());
  }
}

}  // namespace im::launch

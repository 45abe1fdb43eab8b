// Command-line flags of the sub-commands: "--name VALUE" or "--name=VALUE", each flag
// from a table; anything else is a SetupError naming the argument, so every command
// rejects a typo the same way.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace im::launch {

struct FlagSpec {
  std::string name;                                // "--config"
  std::function<void(const std::string&)> assign;  // called with the flag's value
};

// Throws SetupError for an unknown argument or a flag without its value.
void parse_flags(int argc, char** argv, const std::vector<FlagSpec>& flags);

}  // namespace im::launch

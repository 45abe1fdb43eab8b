#include "launch/cli_flags.h"

#include "launch/trainer.h"

namespace im::launch {

void parse_flags(int argc, char** argv, const std::vector<FlagSpec>& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const FlagSpec* match = nullptr;
    std::string value;
    for (const FlagSpec& f : flags) {
      if (arg == f.name) {
        if (i + 1 >= argc) throw SetupError(f.name + " needs a value");
        match = &f;
        value = argv[++i];
      } else if (arg.rfind(f.name + "=", 0) == 0) {
        match = &f;
        value = arg.substr(f.name.size() + 1);
      }
      if (match) break;
    }
    if (!match) throw SetupError("unknown argument '" + arg + "'");
    match->assign(value);
  }
}

}  // namespace im::launch

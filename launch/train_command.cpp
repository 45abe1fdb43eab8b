// `infomamba_dist train --config FILE [--set key=value ...]` and
// `infomamba_dist eval --config FILE --checkpoint PATH [--set key=value ...]`.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "dist/checkpoint.h"
#include "launch/command_guard.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/trainer.h"

namespace im::launch {

namespace {

struct CommandArgs {
  std::string config;
  std::string checkpoint;
  std::vector<std::string> overrides;
};

// Throws SetupError naming the bad argument.
CommandArgs parse_args(int argc, char** argv, bool wants_checkpoint) {
  CommandArgs a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw SetupError(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (arg == "--config") {
      a.config = value("--config");
    } else if (arg.rfind("--config=", 0) == 0) {
      a.config = arg.substr(9);
    } else if (arg == "--set") {
      a.overrides.push_back(value("--set"));
    } else if (arg.rfind("--set=", 0) == 0) {
      a.overrides.push_back(arg.substr(6));
    } else if (wants_checkpoint && arg == "--checkpoint") {
      a.checkpoint = value("--checkpoint");
    } else if (wants_checkpoint && arg.rfind("--checkpoint=", 0) == 0) {
      a.checkpoint = arg.substr(13);
    } else {
      throw SetupError("unknown argument '" + arg + "'");
    }
  }
  if (a.config.empty()) throw SetupError("--config FILE is required");
  if (wants_checkpoint && a.checkpoint.empty()) throw SetupError("--checkpoint PATH is required");
  return a;
}

}  // namespace

int run_train(int argc, char** argv) {
  return guarded("train", [&] {
    const CommandArgs args = parse_args(argc, argv, false);
    Trainer trainer(load_run_config(args.config, args.overrides));
    trainer.run();
    return 0;
  });
}

int run_eval(int argc, char** argv) {
  return guarded("eval", [&] {
    const CommandArgs args = parse_args(argc, argv, true);
    Trainer trainer(load_run_config(args.config, args.overrides));
    std::string dir;
    try {
      dir = dist::resolve_checkpoint(args.checkpoint);
      dist::load_checkpoint(dir, trainer.store(), nullptr);
    } catch (const std::exception& e) {
      throw SetupError(e.what());
    }
    const EvalResult r = trainer.evaluate();
    std::printf("eval %s: test top-1 %.2f%% | top-5 %.2f%% | loss %.4f (ce %.4f, nce %.4f, red "
                "%.4f, hash %.4f) | %lld samples\n",
                dir.c_str(), 100 * r.top1, 100 * r.top5, r.loss, r.ce, r.nce, r.red, r.hash,
                static_cast<long long>(r.samples));
    return 0;
  });
}

}  // namespace im::launch

// `infomamba_dist train --config FILE [--set key=value ...] [--resume auto|PATH]
// [--stop-file PATH]` and
// `infomamba_dist eval --config FILE --checkpoint PATH [--set key=value ...]`.
//
// Under mpirun, train is data-parallel over the ranks. Failures follow docs/DESIGN.md:
// problems found while setting up (config, data, checkpoint) are agreed through one small
// all-reduce, reported once and end every rank with exit 2; a rank that fails once training
// has started reports itself and aborts every rank (MPI_Abort), so nobody waits forever in a
// collective.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "dist/checkpoint.h"
#include "dist/stop_signal.h"
#include "dist/world.h"
#include "dist/world_communicator.h"
#include "launch/cli_flags.h"
#include "launch/command_guard.h"
#include "launch/commands.h"
#include "launch/config.h"
#include "launch/setup_agreement.h"
#include "launch/trainer.h"

namespace im::launch {

namespace {

struct CommandArgs {
  std::string config;
  std::string checkpoint;
  std::string resume;     // "", "auto" or a checkpoint path
  std::string stop_file;  // train: stop (save, exit 75) when this file appears
  std::vector<std::string> overrides;
};

// Throws SetupError naming the bad argument.
CommandArgs parse_args(int argc, char** argv, bool wants_checkpoint, bool wants_resume = false) {
  CommandArgs a;
  std::vector<FlagSpec> flags = {
      {"--config", [&](const std::string& v) { a.config = v; }},
      {"--set", [&](const std::string& v) { a.overrides.push_back(v); }},
  };
  if (wants_resume) {
    flags.push_back({"--resume", [&](const std::string& v) { a.resume = v; }});
    flags.push_back({"--stop-file", [&](const std::string& v) { a.stop_file = v; }});
  }
  if (wants_checkpoint)
    flags.push_back({"--checkpoint", [&](const std::string& v) { a.checkpoint = v; }});
  parse_flags(argc, argv, flags);
  if (a.config.empty()) throw SetupError("--config FILE is required");
  if (wants_checkpoint && a.checkpoint.empty()) throw SetupError("--checkpoint PATH is required");
  return a;
}

}  // namespace

int run_train(int argc, char** argv) {
  dist::World& world = dist::World::init(nullptr, nullptr);
  dist::install_stop_handlers();  // after MPI_Init, so these are the handlers in force
  const int rank = world.rank();
  // The watchdog is off until the config is read: setup (opening data, reading a
  // checkpoint to resume) may legitimately keep the other ranks waiting for long.
  const dist::WatchedWorld watched = dist::watched_world_communicator(world);
  const std::unique_ptr<dist::Communicator>& comm = watched.comm;

  // Setup: local work only, so that every rank reaches the agreement below.
  std::unique_ptr<Trainer> trainer;
  const SetupStatus setup = try_setup([&] {
    const CommandArgs args = parse_args(argc, argv, false, true);
    trainer = std::make_unique<Trainer>(load_run_config(args.config, args.overrides), comm.get(),
                                        args.resume);
    trainer->set_stop_file(args.stop_file);
  });
  if (const int code = agree_on_setup(*comm, "train", setup)) return code;

  if (rank == 0 && world.size() > 1) {
    std::printf("world: %d ranks on %d node%s: %s\n", world.size(), world.num_nodes(),
                world.num_nodes() == 1 ? "" : "s", world.node_map().c_str());
    std::fflush(stdout);
  }
  watched.watchdog->set_timeout(trainer->config().dist.timeout_s);
  return guarded_collective("train", world, [&] {
    trainer->run();
    return trainer->stopped_for_requeue() ? dist::kRequeueExitCode : 0;
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
    std::printf(
        "eval %s: test top-1 %.2f%% | top-5 %.2f%% | loss %.4f (ce %.4f, nce %.4f, red "
        "%.4f, hash %.4f) | %lld samples\n",
        dir.c_str(), 100 * r.top1, 100 * r.top5, r.loss, r.ce, r.nce, r.red, r.hash,
        static_cast<long long>(r.samples));
    return 0;
  });
}

}  // namespace im::launch

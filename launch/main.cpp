// infomamba_dist: train, evaluate and benchmark InfoMamba models (docs/DESIGN.md).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "data/data_command.h"
#include "launch/commands.h"

namespace {

void print_usage() {
  std::printf(
      "usage: infomamba_dist <command> [options]\n"
      "\n"
      "commands:\n"
      "  train   train a model: train --config FILE [--set key=value ...]\n"
      "  eval    evaluate a checkpoint: eval --config FILE --checkpoint PATH\n"
      "  export  write a checkpoint's parameters to one HDF5 file (for h5py):\n"
      "          export --checkpoint PATH --out FILE.h5\n"
      "  bench   time training steps: bench --config FILE [--set key=value ...] [--warmup N]\n"
      "          [--steps N] [--data synthetic|real] [--json PATH] [--peak-tflops X]\n"
      "  data    convert a dataset to HDF5 shards: data fashion-mnist --out DIR [--shards N]\n"
      "  diag    show the build, the devices this machine offers, and run a smoke test\n"
      "  help    show this message\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_usage();
    return 2;
  }
  const std::string command = argv[1];
  try {
    if (command == "train") return im::launch::run_train(argc - 1, argv + 1);
    if (command == "eval") return im::launch::run_eval(argc - 1, argv + 1);
    if (command == "export") return im::launch::run_export(argc - 1, argv + 1);
    if (command == "bench") return im::launch::run_bench(argc - 1, argv + 1);
    if (command == "data") return im::data::run_data_command(argc - 1, argv + 1);
    if (command == "diag") return im::launch::run_diag(argc - 1, argv + 1);
    if (command == "help" || command == "--help" || command == "-h") {
      print_usage();
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "infomamba_dist %s: error: %s\n", command.c_str(), e.what());
    return 1;
  }
  std::fprintf(stderr, "infomamba_dist: unknown command '%s' (try 'infomamba_dist help')\n",
               command.c_str());
  return 2;
}

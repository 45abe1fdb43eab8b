// Sub-commands of infomamba_dist. Each returns the process exit code.
#pragma once

namespace im::launch {

int run_diag(int argc, char** argv);
int run_train(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_export(int argc, char** argv);
int run_bench(int argc, char** argv);

}  // namespace im::launch

#include "launch/setup_agreement.h"

#include <cstdio>

#include "core/tensor.h"

namespace im::launch {

int agree_on_setup(dist::Communicator& comm, const std::string& command, const SetupStatus& local) {
  const int rank = comm.rank(), size = comm.size();
  // One MAX all-reduce: the worst code, and (negated) the lowest failing rank, which reports
  // (usually rank 0, and every rank has the same error).
  Tensor verdict = Tensor::from_vector<int64_t>({local.code, local.code ? -rank : -size}, {2});
  comm.all_reduce(verdict, dist::ReduceOp::Max);
  const int64_t worst = verdict.data<int64_t>()[0], first = -verdict.data<int64_t>()[1];
  if (worst != 0 && rank == first) {
    const std::string who = size > 1 && rank > 0 ? "rank " + std::to_string(rank) + ": " : "";
    std::fprintf(stderr, "infomamba_dist %s: error: %s%s\n", command.c_str(), who.c_str(),
                 local.error.c_str());
    std::fflush(stderr);
  }
  return static_cast<int>(worst);
}

}  // namespace im::launch

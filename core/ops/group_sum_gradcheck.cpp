// Gradient check of group_sum with a stand-in for an all-reduce: x -> x + flip(x) is
// linear and self-adjoint (flip is a symmetric permutation), like a sum over replicas.
// An all-reduce itself is checked across real ranks in dist/ (the mpi tests).
#include "tests/gradcheck.h"

using im::Tensor;
using im::testing::gradcheck;
using im::testing::random_input;

namespace {
void fold_with_mirror(Tensor& t) {
  const Tensor mirrored = im::flip(t.detach(), 0);
  t.copy_(im::add(t.detach(), mirrored));
}
}  // namespace

GRADCHECK_CASE(group_sum, "group_sum") {
  Tensor x = random_input({5, 3}, 900);
  // Nonlinear on both sides of the collective, as a batch statistic is.
  EXPECT_TRUE(gradcheck(
      [](const auto& in) {
        const Tensor s = im::group_sum(im::tanh(in[0]), fold_with_mirror);
        return im::mul(s, im::exp(in[0]));
      },
      {x}));
}

// group_sum: a collective (a sum over replicas) as an autograd op. If every replica r
// computes the same loss L from S = sum_r s_r, the adjoint of "S = sum of inputs" is "each
// input's gradient is the sum of every replica's gradient of S", so backward reduces the
// incoming gradient with the same collective. Gradients then summed (or averaged) over
// the replicas' parameters are exactly those of one process holding the whole batch.
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace im {

Tensor group_sum(const Tensor& x, const GroupReduce& reduce) {
  IM_CHECK(x.defined(), "group_sum: x must be defined");
  IM_CHECK(static_cast<bool>(reduce), "group_sum: no reduction given");
  Tensor out = x.detach().contiguous().clone();
  reduce(out);
  record_op("group_sum", {x}, {out}, [reduce](const std::vector<Tensor>& g, const auto&) {
    Tensor grad = g[0].contiguous().clone();
    reduce(grad);
    return std::vector<Tensor>{grad};
  });
  return out;
}

}  // namespace im

#include "layers/batch_reduce.h"

#include "core/autograd.h"
#include "core/error.h"

namespace im::layers {

Tensor global_sum(const Tensor& partial, const BatchReduce* batch) {
  if (!batch || !batch->distributed()) return partial;
  return group_sum(partial, batch->reduce);
}

double global_sum(double partial, const BatchReduce* batch) {
  if (!batch || !batch->distributed()) return partial;
  Tensor t = Tensor::scalar(partial, DType::Float64);
  batch->reduce(t);
  return t.item();
}

int64_t global_batch_size(int64_t local, const BatchReduce* batch) {
  if (!batch || batch->global_size <= 0) return local;
  IM_CHECK(batch->offset >= 0 && batch->offset + local <= batch->global_size, "batch slice [",
           batch->offset, ", ", batch->offset + local, ") does not lie in a global batch of ",
           batch->global_size);
  return batch->global_size;
}

}  // namespace im::layers

// Argument checks shared by op front-ends.
#pragma once

#include "core/error.h"
#include "core/tensor.h"

namespace im::detail {

inline void check_same_dtype_device(const Tensor& a, const Tensor& b, const char* op) {
  IM_CHECK(a.dtype() == b.dtype(), op, ": dtype mismatch, ", a.describe(), " and ", b.describe());
  IM_CHECK(a.device() == b.device(), op, ": device mismatch, ", a.describe(), " and ",
           b.describe());
}

// Ops whose CUDA kernel does not exist yet say so instead of reading device memory.
inline void require_cpu(const Tensor& t, const char* op) {
  IM_CHECK(t.device().is_cpu(), op, ": no CUDA kernel yet for ", t.describe(),
           "; run this op on CPU tensors");
}

}  // namespace im::detail

// CUDA AdamW over the flat parameter buffer (one launch for every parameter) and the two
// halves of global gradient-norm clipping; the semantics of kernels/cpu/adamw.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/bfloat16.h"
#include "kernels/cpu/adamw.h"

namespace im::kernels::cuda {

using AdamWStep = cpu::AdamWStep;

// decay_mask[i] is 1 where weight decay applies, 0 elsewhere. One thread per element,
// grid-stride, the arithmetic of the CPU kernel in T.
template <typename T>
void adamw(T* params, const T* grads, T* exp_avg, T* exp_avg_sq, const T* decay_mask, int64_t n,
           const AdamWStep& s);

// Mixed precision: float32 masters, gradients and moments, as adamw<float>, and the
// bfloat16 model copy rewritten from the new masters in the same launch.
void adamw_mixed(float* master, bfloat16* model, const float* grads, float* exp_avg,
                 float* exp_avg_sq, const float* decay_mask, int64_t n, const AdamWStep& s);

// Device scratch (bytes) sum_of_squares needs for n elements.
size_t sum_of_squares_workspace_bytes(int64_t n);

// Sum of squares accumulated in double: per-block partial sums, then one block adds them in
// a fixed order (deterministic), and the one double comes back to the host (this waits
// for the current stream).
template <typename T>
double sum_of_squares(const T* x, int64_t n, void* workspace);

template <typename T>
void scale(T* x, T factor, int64_t n);

}  // namespace im::kernels::cuda

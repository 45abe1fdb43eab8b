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
// grid-stride, the arithmetic of the CPU kernel in T. With `status` (a clip status, below),
// nothing is updated when its finite flag is 0: the decision never visits the host. With
// `device_step`, the step's constants are read from device memory instead of `s` (a
// captured graph, whose replays change the learning rate and step count there).
template <typename T>
void adamw(T* params, const T* grads, T* exp_avg, T* exp_avg_sq, const T* decay_mask, int64_t n,
           const AdamWStep& s, const double* status = nullptr,
           const AdamWStep* device_step = nullptr);

// Mixed precision: float32 masters, gradients and moments, as adamw<float>, and the
// bfloat16 model copy rewritten from the new masters in the same launch.
void adamw_mixed(float* master, bfloat16* model, const float* grads, float* exp_avg,
                 float* exp_avg_sq, const float* decay_mask, int64_t n, const AdamWStep& s,
                 const double* status = nullptr, const AdamWStep* device_step = nullptr);

// Device scratch (bytes) sum_of_squares needs for n elements.
size_t sum_of_squares_workspace_bytes(int64_t n);

// Sum of squares accumulated in double: per-block partial sums, then one block adds them in
// a fixed order (deterministic), and the one double comes back to the host (this waits
// for the current stream).
template <typename T>
double sum_of_squares(const T* x, int64_t n, void* workspace);

template <typename T>
void scale(T* x, T factor, int64_t n);

// Gradient clipping without a host round trip. A clip status is three doubles on the
// device, written by clip_status: [0] the norm, [1] the factor the gradients are scaled by
// (1, or max_norm / (norm + 1e-6) when max_norm > 0 and norm > max_norm), [2] 1 when the
// norm and *loss are finite, else 0.
enum ClipStatusField : int { kClipNorm = 0, kClipScale = 1, kClipFinite = 2 };

// sum_of_squares, with the sum left on the device at *out.
template <typename T>
void sum_of_squares_to(const T* x, int64_t n, void* workspace, double* out);
// One thread: the status from a device sum of squares and a device loss (L: float or double).
template <typename L>
void clip_status(const double* sum_of_squares, const L* loss, double max_norm, double* status);
// x *= status[kClipScale] where the status is finite (otherwise AdamW skips the step anyway).
template <typename T>
void scale_by_status(T* x, const double* status, int64_t n);

}  // namespace im::kernels::cuda

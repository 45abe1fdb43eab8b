// CUDA elementwise kernels; same signatures and math as kernels/cpu/elementwise.h.
// Pointers are device pointers; kernels go on the current stream (kernels/cuda/stream.h).
// The math kernels also take bfloat16 (GPU only): elements widen to float on load, the
// math runs in float and the result is rounded to bfloat16 once on store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/bfloat16.h"
#include "kernels/elementwise_ops.h"

namespace im::kernels::cuda {

template <typename T>
void unary(UnaryOp op, UnaryParams p, const T* x, T* y, int64_t n);

// dx = g * f'(x). y (the forward output) may be null; ops whose derivative reads it
// (backward_reads_output) then recompute it from x in the compute type.
template <typename T>
void unary_backward(UnaryOp op, UnaryParams p, const T* g, const T* x, const T* y, T* dx,
                    int64_t n);

// out = a op b; a, b and out each read or written through their own strides.
// Up to 8 dimensions.
template <typename T>
void binary(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, const T* b,
            const std::vector<int64_t>& b_strides, T* out, const std::vector<int64_t>& shape);

// out = a op s for a number s (a strided, out contiguous): s enters the math in the
// compute type, so for bfloat16 it keeps float precision instead of being rounded to
// bfloat16 first (1/3 would be off by 2^-9).
template <typename T>
void binary_scalar(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, double s, T* out,
                   const std::vector<int64_t>& shape);

// dst += src widened from bfloat16 to float32 (dst contiguous, src strided): a bf16
// gradient added into its float32 slot under mixed precision, in one pass.
void accumulate_widening(float* dst, const bfloat16* src, const std::vector<int64_t>& src_strides,
                         const std::vector<int64_t>& shape);

// dst = src (same element type of `elem_size` bytes), both strided. Up to 8 dimensions.
void copy_strided(const void* src, const std::vector<int64_t>& src_strides, void* dst,
                  const std::vector<int64_t>& dst_strides, const std::vector<int64_t>& shape,
                  size_t elem_size);

// dst = convert(src) between element types (DType order: float32, float64, bfloat16,
// int32, int64, uint8, given as their index), both strided. Up to 8 dimensions.
void cast_strided(const void* src, int src_type, const std::vector<int64_t>& src_strides, void* dst,
                  int dst_type, const std::vector<int64_t>& dst_strides,
                  const std::vector<int64_t>& shape);

// Sets n elements of `elem_size` bytes to the value at host address `value`.
void fill_bytes(void* dst, const void* value, size_t elem_size, int64_t n);

}  // namespace im::kernels::cuda

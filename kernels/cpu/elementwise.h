// CPU reference kernels for elementwise math and strided copies.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/elementwise_ops.h"

namespace im::kernels::cpu {

// y[i] = f(x[i]) over contiguous buffers.
template <typename T>
void unary(UnaryOp op, UnaryParams p, const T* x, T* y, int64_t n);

// dx[i] = g[i] * f'(x[i]) (y = f(x) where the derivative reads it).
template <typename T>
void unary_backward(UnaryOp op, UnaryParams p, const T* g, const T* x, const T* y, T* dx,
                    int64_t n);

// out (contiguous, `shape`) = a op b, where a and b are read through their own strides
// (0 on broadcast dimensions).
template <typename T>
void binary(BinaryOp op, const T* a, const std::vector<int64_t>& a_strides, const T* b,
            const std::vector<int64_t>& b_strides, T* out, const std::vector<int64_t>& shape);

// dst = src, each read or written through its own strides, converting element type.
template <typename Src, typename Dst>
void copy_strided(const Src* src, const std::vector<int64_t>& src_strides, Dst* dst,
                  const std::vector<int64_t>& dst_strides, const std::vector<int64_t>& shape);

// out[i] += x[i] read through strides (out contiguous); used for gradient accumulation.
template <typename T>
void accumulate(T* out, const T* x, const std::vector<int64_t>& x_strides,
                const std::vector<int64_t>& shape);

template <typename T>
void fill(T* out, T value, int64_t n);

}  // namespace im::kernels::cpu

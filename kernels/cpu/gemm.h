// CPU GEMM through BLAS (OpenBLAS): row-major C = alpha * op(A) op(B) + beta * C.
#pragma once

#include <cstdint>

namespace im::kernels::cpu {

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// Row-major C[m,n] = op(A) op(B) + bias, the bias vector [n] added to every row (null: no
// bias). The reference for kernels/cuda/gemm.h's gemm_bias (same arguments).
template <typename T>
void gemm_bias(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
               const T* b, int64_t ldb, const T* bias, T* c, int64_t ldc);

// Row-major C[m,n] = op(A) op(B) and bias_grad[i] = sum_j op(A)[i, j], summed in double
// (a Linear layer's weight gradient g^T x and bias gradient, with A = g^T).
template <typename T>
void gemm_bias_grad(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a,
                    int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, T* bias_grad);

}  // namespace im::kernels::cpu

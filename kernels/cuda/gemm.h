// GEMM on the GPU: the row-major convention of kernels/cpu/gemm.h, so callers use the
// same arguments on both devices. float32 and bfloat16 go through cuBLASLt (fp32
// accumulation; TF32 tensor cores for float32 when enabled), float64 through cuBLAS.
#pragma once

#include <cstdint>

namespace im::kernels::cuda {

// Row-major C = alpha * op(A) op(B) + beta * C.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// `batch` independent GEMMs; operand i starts at a + i * stride_a (and so on).
template <typename T>
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                          const T* a, int64_t lda, int64_t stride_a, const T* b, int64_t ldb,
                          int64_t stride_b, T beta, T* c, int64_t ldc, int64_t stride_c,
                          int64_t batch);

// Row-major C[m,n] = op(A) op(B) + bias, the bias vector [n] added to every row (null: no
// bias), in one cuBLASLt GEMM (CUBLASLT_EPILOGUE_BIAS) for float32 and bfloat16. A and B
// hold T; C and the bias hold TC: TC = T, or T = bfloat16 with TC = float (bfloat16 inputs,
// fp32 accumulation, float32 output and bias, a layer whose bias is kept in float32).
// float64 runs cuBLAS on C pre-filled with the bias (beta = 1). Where cuBLASLt has no
// algorithm for the bias epilogue (an odd bias address, say), the same pre-fill is used.
template <typename T, typename TC>
void gemm_bias(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
               const T* b, int64_t ldb, const TC* bias, TC* c, int64_t ldc);

// Row-major C[m,n] = op(A) op(B) together with bias_grad[i] = sum_j op(A)[i, j] (row i of
// op(A) summed over k): with A = g^T this is a Linear layer's weight gradient g^T x and
// its bias gradient from one GEMM (CUBLASLT_EPILOGUE_BGRADB: row-major op(A) is cuBLAS's
// B operand). float64, and float32/bfloat16 shapes the epilogue does not support, run the
// plain GEMM and a column (or row) sum kernel of kernels/cuda/reduce.h; that path needs A
// packed (lda == m when trans_a, lda == k otherwise). bias_grad has C's type.
template <typename T>
void gemm_bias_grad(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a,
                    int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, T* bias_grad);

// TF32 tensor cores for float32 GEMMs (10-bit mantissa inputs, fp32 accumulation):
// off by default, so float32 results match the CPU to ~1e-6; training turns it on
// (train.tf32).
void set_tf32_enabled(bool enabled);
bool tf32_enabled();

}  // namespace im::kernels::cuda

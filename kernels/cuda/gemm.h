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

// TF32 tensor cores for float32 GEMMs (10-bit mantissa inputs, fp32 accumulation):
// off by default, so float32 results match the CPU to ~1e-6; training turns it on
// (train.tf32).
void set_tf32_enabled(bool enabled);
bool tf32_enabled();

}  // namespace im::kernels::cuda

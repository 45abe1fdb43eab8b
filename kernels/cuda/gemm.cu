// GEMM through cuBLASLt (float32, bfloat16) and cuBLAS (float64), on the current stream.
//
// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so every call swaps
// the operands and hands cuBLAS the same buffers untouched. Algorithm choice (the Lt
// heuristic) is cached per shape, type, epilogue and operand alignment: a training step
// repeats the same few dozen shapes, and the heuristic costs far more than the descriptors.
//
// The Linear-layer GEMMs fuse their bias work into cuBLASLt epilogues: the bias add of
// the forward (CUBLASLT_EPILOGUE_BIAS) and the bias gradient of the weight-gradient GEMM
// (CUBLASLT_EPILOGUE_BGRADB). A combination cuBLASLt declines is remembered as declined
// and runs unfused (bias pre-filled into C with beta = 1; a column-sum kernel).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "kernels/bfloat16.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.h"

namespace im::kernels::cuda {

namespace {

std::atomic<bool> g_tf32{false};

void check_lt(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": " +
                             cublasGetStatusString(s));
}

constexpr size_t kWorkspaceBytes = 32u << 20;  // what cuBLASLt's fast Hopper kernels ask for

// One cuBLASLt handle, one cuBLAS handle and one workspace per GPU, never destroyed.
struct DeviceBlas {
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  void* workspace = nullptr;
};

DeviceBlas& device_blas() {
  static std::mutex mutex;
  static std::vector<DeviceBlas*> per_device;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(mutex);
  if (per_device.size() <= static_cast<size_t>(device)) per_device.resize(device + 1, nullptr);
  if (!per_device[device]) {
    auto* d = new DeviceBlas;
    check_lt(cublasLtCreate(&d->lt), "cublasLtCreate");
    check_lt(cublasCreate(&d->blas), "cublasCreate");
    check_cuda(cudaMalloc(&d->workspace, kWorkspaceBytes), "cudaMalloc (cuBLASLt workspace)");
    per_device[device] = d;
  }
  return *per_device[device];
}

// Largest power of two (up to 16) dividing the address: cuBLASLt picks vectorised
// kernels only for operands aligned to their width.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 16;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

template <typename T>
struct LtTypes;
template <>
struct LtTypes<float> {
  static constexpr cudaDataType_t data = CUDA_R_32F;
};
template <>
struct LtTypes<bfloat16> {
  static constexpr cudaDataType_t data = CUDA_R_16BF;
};

using AlgoKey =
    std::tuple<int, int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
               int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t, int, int, int, uint32_t>;

struct LtPlan {
  cublasLtMatmulAlgo_t algo{};
  bool found = false;  // false in the cache: cuBLASLt declined this (epilogue) problem
};

// An epilogue and its vector: the bias to add (BIAS) or the bias gradient to write (BGRADB).
struct LtEpilogue {
  cublasLtEpilogue_t kind = CUBLASLT_EPILOGUE_DEFAULT;
  const void* vector = nullptr;
};

// The descriptors of one call, destroyed on every path out.
struct LtDescriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t x = nullptr, y = nullptr, c = nullptr;
  LtDescriptors() = default;
  LtDescriptors(const LtDescriptors&) = delete;
  LtDescriptors& operator=(const LtDescriptors&) = delete;
  ~LtDescriptors() {
    if (x) cublasLtMatrixLayoutDestroy(x);
    if (y) cublasLtMatrixLayoutDestroy(y);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// Column-major problem: C[rows_c, cols_c] = op(X) op(Y) (+ epilogue), X the first cuBLAS
// operand. X and Y hold `ab`, C holds `ct`. With `may_decline`, a problem cuBLASLt has no
// algorithm for returns false having run nothing (and is remembered as declined);
// otherwise that is an error.
bool lt_matmul_typed(cudaDataType_t ab, cudaDataType_t ct, bool tf32, LtEpilogue epilogue,
                     bool may_decline, bool trans_x, bool trans_y, int64_t rows_c, int64_t cols_c,
                     int64_t k, float alpha, const void* x, int64_t ldx, int64_t stride_x,
                     const void* y, int64_t ldy, int64_t stride_y, float beta, void* c, int64_t ldc,
                     int64_t stride_c, int64_t batch) {
  DeviceBlas& blas = device_blas();
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

  LtDescriptors d;
  check_lt(cublasLtMatmulDescCreate(&d.op, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t tx = trans_x ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t ty = trans_y ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &tx, sizeof tx);
  cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &ty, sizeof ty);
  if (epilogue.kind != CUBLASLT_EPILOGUE_DEFAULT) {
    // The vector has C's type (the attribute's default), and its address is part of the
    // problem: the heuristic reads its alignment from here.
    check_lt(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue.kind,
                                            sizeof epilogue.kind),
             "cublasLtMatmulDescSetAttribute (epilogue)");
    check_lt(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                            &epilogue.vector, sizeof epilogue.vector),
             "cublasLtMatmulDescSetAttribute (bias pointer)");
  }

  // Stored shapes (column-major): X is rows_c x k, or k x rows_c when transposed.
  auto layout = [&](cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld, int64_t stride) {
    cublasLtMatrixLayout_t l = nullptr;
    check_lt(cublasLtMatrixLayoutCreate(&l, type, rows, cols, ld), "cublasLtMatrixLayoutCreate");
    if (batch > 1) {
      const int32_t count = static_cast<int32_t>(batch);
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count);
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                       sizeof stride);
    }
    return l;
  };
  d.x = trans_x ? layout(ab, k, rows_c, ldx, stride_x) : layout(ab, rows_c, k, ldx, stride_x);
  d.y = trans_y ? layout(ab, cols_c, k, ldy, stride_y) : layout(ab, k, cols_c, ldy, stride_y);
  d.c = layout(ct, rows_c, cols_c, ldc, stride_c);

  const uint32_t ax = alignment_of(x), ay = alignment_of(y), ac = alignment_of(c);
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  const AlgoKey key{static_cast<int>(ab),
                    static_cast<int>(compute),
                    trans_x,
                    trans_y,
                    rows_c,
                    cols_c,
                    k,
                    ldx,
                    ldy,
                    ldc,
                    stride_x,
                    stride_y,
                    stride_c,
                    batch,
                    ax,
                    ay,
                    ac,
                    device,
                    static_cast<int>(ct),
                    static_cast<int>(epilogue.kind),
                    alignment_of(epilogue.vector)};
  static std::mutex mutex;
  static std::map<AlgoKey, LtPlan> plans;
  LtPlan plan;
  bool known = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = plans.find(key);
    if (it != plans.end()) {
      plan = it->second;
      known = true;
    }
  }
  if (known && !plan.found) {
    if (may_decline) return false;  // declined before: do not ask again
    known = false;                  // a caller that cannot decline gets the error below
  }
  if (!known) {
    cublasLtMatmulPreference_t pref = nullptr;
    check_lt(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
    const uint64_t ws = kWorkspaceBytes;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                         sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &ax,
                                         sizeof ax);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ay,
                                         sizeof ay);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac,
                                         sizeof ac);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac,
                                         sizeof ac);
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(blas.lt, d.op, d.x, d.y, d.c, d.c, pref,
                                                            1, &result, &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || returned == 0) {
      if (may_decline) {
        std::lock_guard<std::mutex> lock(mutex);
        plans[key] = LtPlan{};
        return false;
      }
      throw std::runtime_error("cuBLASLt found no algorithm for a " + std::to_string(rows_c) + "x" +
                               std::to_string(cols_c) + "x" + std::to_string(k) + " GEMM (batch " +
                               std::to_string(batch) + ")");
    }
    plan.algo = result.algo;
    plan.found = true;
    std::lock_guard<std::mutex> lock(mutex);
    plans[key] = plan;
  }
  const cublasStatus_t s =
      cublasLtMatmul(blas.lt, d.op, &alpha, x, d.x, y, d.y, &beta, c, d.c, c, d.c, &plan.algo,
                     blas.workspace, kWorkspaceBytes, stream());
  if (s == CUBLAS_STATUS_NOT_SUPPORTED && may_decline) {
    std::lock_guard<std::mutex> lock(mutex);
    plans[key] = LtPlan{};
    return false;
  }
  check_lt(s, "cublasLtMatmul");
  return true;
}

// The plain product in T (float32 or bfloat16) for gemm_strided_batched.
template <typename T>
void lt_matmul(bool trans_x, bool trans_y, int64_t rows_c, int64_t cols_c, int64_t k, float alpha,
               const T* x, int64_t ldx, int64_t stride_x, const T* y, int64_t ldy, int64_t stride_y,
               float beta, T* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  const bool tf32 = std::is_same_v<T, float> && g_tf32.load(std::memory_order_relaxed);
  lt_matmul_typed(LtTypes<T>::data, LtTypes<T>::data, tf32, LtEpilogue{}, false, trans_x, trans_y,
                  rows_c, cols_c, k, alpha, x, ldx, stride_x, y, ldy, stride_y, beta, c, ldc,
                  stride_c, batch);
}

void dgemm(bool trans_x, bool trans_y, int64_t rows_c, int64_t cols_c, int64_t k, double alpha,
           const double* x, int64_t ldx, int64_t stride_x, const double* y, int64_t ldy,
           int64_t stride_y, double beta, double* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  DeviceBlas& blas = device_blas();
  check_lt(cublasSetStream(blas.blas, stream()), "cublasSetStream");
  check_lt(cublasDgemmStridedBatched(
               blas.blas, trans_x ? CUBLAS_OP_T : CUBLAS_OP_N, trans_y ? CUBLAS_OP_T : CUBLAS_OP_N,
               static_cast<int>(rows_c), static_cast<int>(cols_c), static_cast<int>(k), &alpha, x,
               static_cast<int>(ldx), stride_x, y, static_cast<int>(ldy), stride_y, &beta, c,
               static_cast<int>(ldc), stride_c, static_cast<int>(batch)),
           "cublasDgemmStridedBatched");
}

template <typename T>
float as_float(T v) {
  if constexpr (std::is_same_v<T, bfloat16>)
    return v.to_float();
  else
    return static_cast<float>(v);
}

// c[r, j] = bias[j] (0 where bias is null) for the m x n row-major block at c.
template <typename TC>
__global__ void fill_rows_kernel(const TC* bias, TC* c, int64_t m, int64_t n, int64_t ldc) {
  IM_GRID_STRIDE_LOOP(i, m * n) {
    const int64_t r = i / n, j = i - r * n;
    c[r * ldc + j] = bias ? bias[j] : convert<TC>(0.0f);
  }
}

template <typename TC>
void fill_rows(const TC* bias, TC* c, int64_t m, int64_t n, int64_t ldc) {
  fill_rows_kernel<TC><<<blocks_for(m * n), kThreads, 0, stream()>>>(bias, c, m, n, ldc);
  check_last_launch("gemm fill_rows kernel");
}

// bias_grad[i] = sum_j op(A)[i, j] for a packed A (the unfused bias gradient), with the
// cuBLASLt workspace as the reduction's scratch: both are ordered on the current stream.
template <typename T>
void sum_op_a_rows(bool trans_a, int64_t m, int64_t k, const T* a, int64_t lda, T* bias_grad) {
  if (lda != (trans_a ? m : k)) {
    const std::string sizes =
        "lda " + std::to_string(lda) + ", m " + std::to_string(m) + ", k " + std::to_string(k);
    throw std::invalid_argument("gemm_bias_grad: the unfused bias gradient needs A packed (" +
                                sizes + ")");
  }
  const size_t bytes = trans_a ? sum_cols_workspace_bytes(k, m) : row_reduce_workspace_bytes(m, k);
  if (bytes > kWorkspaceBytes)
    throw std::runtime_error("gemm_bias_grad: the bias-gradient reduction needs " +
                             std::to_string(bytes) + " bytes of scratch, more than the " +
                             std::to_string(kWorkspaceBytes) + " of the GEMM workspace");
  void* ws = device_blas().workspace;
  if (trans_a)
    sum_cols<T>(a, bias_grad, k, m, ws);  // A stored [k, m]: op(A)'s rows are A's columns
  else
    sum_rows<T>(a, bias_grad, m, k, ws);
}

}  // namespace

void set_tf32_enabled(bool enabled) {
  g_tf32.store(enabled);
}
bool tf32_enabled() {
  return g_tf32.load();
}

template <typename T>
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                          const T* a, int64_t lda, int64_t stride_a, const T* b, int64_t ldb,
                          int64_t stride_b, T beta, T* c, int64_t ldc, int64_t stride_c,
                          int64_t batch) {
  if (m == 0 || n == 0 || batch == 0) return;
  // Row-major C[m,n] = op(A) op(B)  <=>  column-major C^T[n,m] = op(B)^T op(A)^T.
  if constexpr (std::is_same_v<T, double>) {
    dgemm(trans_b, trans_a, n, m, k, alpha, b, ldb, stride_b, a, lda, stride_a, beta, c, ldc,
          stride_c, batch);
  } else {
    lt_matmul<T>(trans_b, trans_a, n, m, k, as_float(alpha), b, ldb, stride_b, a, lda, stride_a,
                 as_float(beta), c, ldc, stride_c, batch);
  }
}

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
          int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  gemm_strided_batched<T>(trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0,
                          1);
}

template <typename T, typename TC>
void gemm_bias(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
               const T* b, int64_t ldb, const TC* bias, TC* c, int64_t ldc) {
  static_assert(std::is_same_v<T, TC> || (std::is_same_v<T, bfloat16> && std::is_same_v<TC, float>),
                "gemm_bias: C has the operands' type, or float32 for bfloat16 operands");
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty product: C is the bias alone
    fill_rows<TC>(bias, c, m, n, ldc);
    return;
  }
  // Row-major C[m,n] = op(A) op(B) + bias  <=>  column-major C^T[n,m] = op(B)^T op(A)^T +
  // bias, the bias running down C^T's n rows: cuBLASLt's BIAS epilogue.
  if constexpr (std::is_same_v<T, double>) {
    if (bias) fill_rows<TC>(bias, c, m, n, ldc);
    dgemm(trans_b, trans_a, n, m, k, 1.0, b, ldb, 0, a, lda, 0, bias ? 1.0 : 0.0, c, ldc, 0, 1);
  } else {
    const bool tf32 = std::is_same_v<T, float> && g_tf32.load(std::memory_order_relaxed);
    constexpr cudaDataType_t ab = LtTypes<T>::data, ct = LtTypes<TC>::data;
    if (bias &&
        lt_matmul_typed(ab, ct, tf32, LtEpilogue{CUBLASLT_EPILOGUE_BIAS, bias}, true, trans_b,
                        trans_a, n, m, k, 1.0f, b, ldb, 0, a, lda, 0, 0.0f, c, ldc, 0, 1))
      return;
    if (bias) fill_rows<TC>(bias, c, m, n, ldc);
    lt_matmul_typed(ab, ct, tf32, LtEpilogue{}, false, trans_b, trans_a, n, m, k, 1.0f, b, ldb, 0,
                    a, lda, 0, bias ? 1.0f : 0.0f, c, ldc, 0, 1);
  }
}

template <typename T>
void gemm_bias_grad(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const T* a,
                    int64_t lda, const T* b, int64_t ldb, T* c, int64_t ldc, T* bias_grad) {
  if (m == 0) return;
  if (k == 0) {  // empty sums
    if (n > 0) fill_rows<T>(nullptr, c, m, n, ldc);
    check_cuda(cudaMemsetAsync(bias_grad, 0, static_cast<size_t>(m) * sizeof(T), stream()),
               "cudaMemsetAsync (bias gradient)");
    return;
  }
  if (n > 0) {
    if constexpr (!std::is_same_v<T, double>) {
      // Column-major C^T[n,m] = op(B)^T op(A)^T: row-major op(A) is cuBLAS's B operand,
      // [k, m] after its transpose, and BGRADB sums it over k into a vector of C^T's m
      // columns, which is what row i of op(A) summed is.
      const bool tf32 = std::is_same_v<T, float> && g_tf32.load(std::memory_order_relaxed);
      if (lt_matmul_typed(LtTypes<T>::data, LtTypes<T>::data, tf32,
                          LtEpilogue{CUBLASLT_EPILOGUE_BGRADB, bias_grad}, true, trans_b, trans_a,
                          n, m, k, 1.0f, b, ldb, 0, a, lda, 0, 0.0f, c, ldc, 0, 1))
        return;
    }
    gemm<T>(trans_a, trans_b, m, n, k, convert<T>(1.0f), a, lda, b, ldb, convert<T>(0.0f), c, ldc);
  }
  sum_op_a_rows<T>(trans_a, m, k, a, lda, bias_grad);
}

#define IM_GEMM_INSTANTIATE(T)                                                                 \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, \
                        int64_t, T, T*, int64_t);                                              \
  template void gemm_strided_batched<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*,    \
                                        int64_t, int64_t, const T*, int64_t, int64_t, T, T*,   \
                                        int64_t, int64_t, int64_t);
IM_GEMM_INSTANTIATE(float)
IM_GEMM_INSTANTIATE(double)
IM_GEMM_INSTANTIATE(bfloat16)

#define IM_GEMM_BIAS_INSTANTIATE(T, TC)                                                    \
  template void gemm_bias<T, TC>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, \
                                 const T*, int64_t, const TC*, TC*, int64_t);
IM_GEMM_BIAS_INSTANTIATE(float, float)
IM_GEMM_BIAS_INSTANTIATE(double, double)
IM_GEMM_BIAS_INSTANTIATE(bfloat16, bfloat16)
IM_GEMM_BIAS_INSTANTIATE(bfloat16, float)

#define IM_GEMM_BIAS_GRAD_INSTANTIATE(T)                                                    \
  template void gemm_bias_grad<T>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, \
                                  const T*, int64_t, T*, int64_t, T*);
IM_GEMM_BIAS_GRAD_INSTANTIATE(float)
IM_GEMM_BIAS_GRAD_INSTANTIATE(double)
IM_GEMM_BIAS_GRAD_INSTANTIATE(bfloat16)

}  // namespace im::kernels::cuda

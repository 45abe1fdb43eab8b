// GEMM through cuBLASLt (float32, bfloat16) and cuBLAS (float64), on the current stream.
//
// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T, so every call swaps
// the operands and hands cuBLAS the same buffers untouched. Algorithm choice (the Lt
// heuristic) is cached per shape, type and operand alignment: a training step repeats
// the same few dozen shapes, and the heuristic costs far more than the descriptors.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>

#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/bfloat16.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/launch.cuh"

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
               int64_t, int64_t, int64_t, uint32_t, uint32_t, uint32_t, int>;

struct LtPlan {
  cublasLtMatmulAlgo_t algo{};
  bool found = false;
};

// Column-major problem: C[rows_c, cols_c] = op(X) op(Y), X the first cuBLAS operand.
template <typename T>
void lt_matmul(bool trans_x, bool trans_y, int64_t rows_c, int64_t cols_c, int64_t k, float alpha,
               const T* x, int64_t ldx, int64_t stride_x, const T* y, int64_t ldy, int64_t stride_y,
               float beta, T* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  DeviceBlas& blas = device_blas();
  const cudaDataType_t dt = LtTypes<T>::data;
  const bool tf32 = std::is_same_v<T, float> && g_tf32.load(std::memory_order_relaxed);
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;

  cublasLtMatmulDesc_t op = nullptr;
  check_lt(cublasLtMatmulDescCreate(&op, compute, CUDA_R_32F), "cublasLtMatmulDescCreate");
  const cublasOperation_t tx = trans_x ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t ty = trans_y ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tx, sizeof tx);
  cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &ty, sizeof ty);

  // Stored shapes (column-major): X is rows_c x k, or k x rows_c when transposed.
  auto layout = [&](uint64_t rows, uint64_t cols, int64_t ld, int64_t stride) {
    cublasLtMatrixLayout_t l = nullptr;
    check_lt(cublasLtMatrixLayoutCreate(&l, dt, rows, cols, ld), "cublasLtMatrixLayoutCreate");
    if (batch > 1) {
      const int32_t count = static_cast<int32_t>(batch);
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count);
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                       sizeof stride);
    }
    return l;
  };
  cublasLtMatrixLayout_t lx =
      trans_x ? layout(k, rows_c, ldx, stride_x) : layout(rows_c, k, ldx, stride_x);
  cublasLtMatrixLayout_t ly =
      trans_y ? layout(cols_c, k, ldy, stride_y) : layout(k, cols_c, ldy, stride_y);
  cublasLtMatrixLayout_t lc = layout(rows_c, cols_c, ldc, stride_c);

  const uint32_t ax = alignment_of(x), ay = alignment_of(y), ac = alignment_of(c);
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  const AlgoKey key{static_cast<int>(dt),
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
                    device};
  static std::mutex mutex;
  static std::map<AlgoKey, LtPlan> plans;
  LtPlan plan;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = plans.find(key);
    if (it != plans.end()) plan = it->second;
  }
  if (!plan.found) {
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
    const cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(blas.lt, op, lx, ly, lc, lc, pref, 1, &result, &returned);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s != CUBLAS_STATUS_SUCCESS || returned == 0) {
      cublasLtMatrixLayoutDestroy(lx);
      cublasLtMatrixLayoutDestroy(ly);
      cublasLtMatrixLayoutDestroy(lc);
      cublasLtMatmulDescDestroy(op);
      throw std::runtime_error("cuBLASLt found no algorithm for a " + std::to_string(rows_c) + "x" +
                               std::to_string(cols_c) + "x" + std::to_string(k) + " GEMM (batch " +
                               std::to_string(batch) + ")");
    }
    plan.algo = result.algo;
    plan.found = true;
    std::lock_guard<std::mutex> lock(mutex);
    plans[key] = plan;
  }
  const cublasStatus_t s = cublasLtMatmul(blas.lt, op, &alpha, x, lx, y, ly, &beta, c, lc, c, lc,
                                          &plan.algo, blas.workspace, kWorkspaceBytes, stream());
  cublasLtMatrixLayoutDestroy(lx);
  cublasLtMatrixLayoutDestroy(ly);
  cublasLtMatrixLayoutDestroy(lc);
  cublasLtMatmulDescDestroy(op);
  check_lt(s, "cublasLtMatmul");
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

#define IM_GEMM_INSTANTIATE(T)                                                                 \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, \
                        int64_t, T, T*, int64_t);                                              \
  template void gemm_strided_batched<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*,    \
                                        int64_t, int64_t, const T*, int64_t, int64_t, T, T*,   \
                                        int64_t, int64_t, int64_t);
IM_GEMM_INSTANTIATE(float)
IM_GEMM_INSTANTIATE(double)
IM_GEMM_INSTANTIATE(bfloat16)

}  // namespace im::kernels::cuda

// Op front-ends: check arguments, dispatch to the device's kernel, record backward.
// All ops are out of place. Float ops accept float32 and float64 (both operands the
// same dtype); index arguments are int32 or int64.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace im {

// ---- elementwise (ops/elementwise.cpp) ----------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor abs(const Tensor& x);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);
Tensor gelu_tanh(const Tensor& x);
Tensor gelu_erf(const Tensor& x);
// log(1 + e^(beta x)) / beta; inputs with beta*x above `threshold` pass through.
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator*(const Tensor& a, double b);
Tensor operator*(double a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);

// Shape both operands broadcast to (NumPy rules), or an error naming `op`.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// In-place, outside autograd: dst += src (src broadcast to dst's shape).
// dst may be float32 with src bfloat16 (a gradient slot under mixed precision): src is
// widened as it is added.
void accumulate_into(Tensor& dst, const Tensor& src);

// ---- linear algebra (ops/matmul.cpp) --------------------------------------------------
// a [..., m, k] @ b [..., k, n]; leading dims broadcast; 1-D operands are not promoted.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- linear layer (ops/linear.cpp) ------------------------------------------------------
// x [..., in], weight [out, in], bias [out] or undefined: y = x W^T + b, [..., out], the
// bias fused into the GEMM (and its gradient into the weight-gradient GEMM). bias may be
// float32 with a bfloat16 x and weight; y is then float32.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- reductions (ops/reduce.cpp) -------------------------------------------------------
// An empty `dims` reduces over every dimension.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// correction 1: unbiased (Bessel), 0: biased.
Tensor var(const Tensor& x, const std::vector<int64_t>& dims = {}, int64_t correction = 1,
           bool keepdim = false);

// ---- normalisation and activations over a dim (ops/softmax.cpp, ops/layer_norm.cpp) --
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Normalises over the last dimension; weight and bias are [D] (either may be undefined).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// ---- indexing (ops/indexing.cpp) -------------------------------------------------------
// table [V, D], ids int [...] -> [..., D]; rows of ids equal to padding_idx get zero
// gradient (padding_idx < 0: none).
Tensor embedding(const Tensor& table, const Tensor& ids, int64_t padding_idx = -1);
// out[i][j] = x[i][index[i][j]] along `dim` (torch.gather semantics).
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// base with src added at index along `dim` (torch.scatter_add semantics, out of place).
Tensor scatter_add(const Tensor& base, int64_t dim, const Tensor& index, const Tensor& src);
// cond (uint8, broadcastable) ? a : b
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// x with `value` where mask (uint8, broadcastable to x) is non-zero.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
struct TopK {
  Tensor values;
  Tensor indices;  // int64, no gradient
};
// The k largest along `dim`, sorted descending; ties keep the lower index first.
TopK topk(const Tensor& x, int64_t k, int64_t dim = -1);

// ---- reordering (ops/flip.cpp) -----------------------------------------------------------
// x reversed along `dim` (a copy; the backward direction of a bidirectional scan uses it).
Tensor flip(const Tensor& x, int64_t dim);

// ---- joining and splitting (ops/join.cpp) ---------------------------------------------
Tensor concat(const std::vector<Tensor>& tensors, int64_t dim);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);

// ---- convolution (ops/conv.cpp) ---------------------------------------------------------
// x [B, L, C], weight [C, K], bias [C] or undefined: y_t = sum_j w_j x_{t-K+1+j} + b
// (causal: zero-padded on the left; channels independent). reverse: anti-causal,
// y_t = sum_j w_j x_{t+K-1-j} + b zero-padded on the right (= flip(conv(flip(x, 1)), 1)
// without the copies); silu: y = SiLU(conv + b) in the same pass (the backward recomputes
// the pre-activation from x). x may be a view whose channel dim is contiguous (e.g. half of
// a [B, L, 2C] projection): it is read in place.
struct DepthwiseConv1dOptions {
  bool reverse = false;
  bool silu = false;
};
Tensor causal_depthwise_conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                               const DepthwiseConv1dOptions& opts = {});
// x [B, Cin, H, W], weight [Cout, Cin, kh, kw], bias [Cout] or undefined (im2col + GEMM).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int64_t stride = 1,
              int64_t padding = 0);

// ---- randomness (ops/dropout.cpp) -------------------------------------------------------
// Zeroes each element with probability p and scales the rest by 1/(1-p).
Tensor dropout(const Tensor& x, double p, Generator& gen);
// Zeroes whole samples (dim 0) with probability p, scaling the rest by 1/(1-p).
Tensor drop_path(const Tensor& x, double p, Generator& gen);
// The same for a slice of a larger batch: draws the mask of all `batch_size` samples and
// applies entries [batch_offset, batch_offset + x.size(0)). In data-parallel training
// every rank draws the global batch's mask and keeps its own part, so the run does not
// depend on the number of ranks (and every rank's generator stays in step).
Tensor drop_path(const Tensor& x, double p, Generator& gen, int64_t batch_offset,
                 int64_t batch_size);

// ---- collectives seen by autograd (ops/group_sum.cpp) ------------------------------------
// `reduce` replaces a tensor, in place, by its sum over a group of replicas (in practice an
// all-reduce over the ranks of a data-parallel run). It must be linear and self-adjoint,
// as a sum over ranks is; backward applies the same reduction to the gradient. This is how
// batch statistics over the global batch (MODEL.md 5.3) get exact gradients on every rank.
using GroupReduce = std::function<void(Tensor&)>;
Tensor group_sum(const Tensor& x, const GroupReduce& reduce);

// ---- scans (ops/cumsum.cpp, ops/selective_scan.cpp) ------------------------------------
Tensor cumsum(const Tensor& x, int64_t dim);
// MODEL.md §3, sequential reference. u, delta [B, L, E]; A [E, N]; Bm, Cm [B, L, N];
// D [E]; inject [B, L, E] or undefined. The state is driven by (u + inject):
//   h_t = exp(delta_t A) h_{t-1} + delta_t Bm_t (u_t + inject_t),  y_t = <Cm_t, h_t> + D u_t
// `reverse` scans from t = L-1 down to 0 (the backward direction of a bidirectional
// scan); the result stays in the original time order.
Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const Tensor& inject,
                      bool reverse = false);
// The same with the step size computed inside the scan, as Mamba's kernels do: with
// delta_bias [E] defined the scan uses delta + delta_bias, and with delta_softplus set
// softplus(delta + delta_bias) (β 1, threshold 20, as `softplus`), without those ever being
// a tensor. The gradient goes to the given delta and to delta_bias. delta_bias may be
// float32 for bfloat16 activations, like A and D.
struct SelectiveScanOptions {
  Tensor inject{};      // [B, L, E] or undefined
  Tensor delta_bias{};  // [E] or undefined
  bool delta_softplus = false;
  bool reverse = false;
};
Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                      const Tensor& Cm, const Tensor& D, const SelectiveScanOptions& opts);
// Independent scans (the two directions of a bidirectional scan) as one op: on the GPU one
// kernel launch forward and one backward for all of them. Returns each problem's y. All
// problems share one dtype and device; an input may appear in several problems (its
// gradients add up).
struct ScanProblemArgs {
  Tensor u, delta, A, Bm, Cm, D;
  SelectiveScanOptions opts{};
};
std::vector<Tensor> selective_scan_multi(const std::vector<ScanProblemArgs>& problems);

// ---- fused gates of the InfoMamba mixer (ops/fused_gates.cpp) -----------------------------
// One kernel each way for what the mixer composed from element-wise ops. Activations share
// z's (or pre's) shape [..., E]; they are read in place when their last dim is contiguous
// and their rows evenly spaced (z as the second half of a [..., 2E] tensor), else copied.
// Parameters are [E]; everything shares one dtype and device. Gradients are contiguous; the
// parameter gradients are column sums accumulated in double (float for bfloat16 on the GPU)
// and rounded once.
//
// (alpha_h * mean(ys) + alpha_g * g) * silu(z), evaluated as the unfused
// mul(add(mul(mean, alpha_h), mul(g, alpha_g)), silu(z)) with mean(ys) = ys[0] or
// mul(add(ys[0], ys[1]), 0.5). ys holds 0, 1 or 2 tensors; g may be undefined (its term
// drops out); at least one stream must be given. alpha_h (alpha_g) must be undefined when ys
// is empty (g is undefined); an undefined alpha with its stream present reads as 1, so
// gated_fusion({u}, {}, z, {}, {}) is silu(z) * u.
Tensor gated_fusion(const std::vector<Tensor>& ys, const Tensor& g, const Tensor& z,
                    const Tensor& alpha_h, const Tensor& alpha_g);
// sigmoid(pre + bias) * g; bias [E] (undefined: 0).
Tensor sigmoid_gate(const Tensor& pre, const Tensor& bias, const Tensor& g);

}  // namespace im

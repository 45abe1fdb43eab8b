#include "core/op_registry.h"

namespace im {

const std::vector<OpInfo>& op_registry() {
  static const std::vector<OpInfo> ops = {
      // views and copies
      {"reshape", "view or copy with a new shape"},
      {"permute", "reorder dimensions (view)"},
      {"slice", "strided range along one dimension (view)"},
      {"expand", "broadcast size-1 dimensions (view, stride 0)"},
      {"contiguous", "row-major copy of a strided view"},
      {"clone", "fresh copy"},
      {"cast", "dtype conversion between float types"},
      // elementwise
      {"add", "a + b with broadcasting"},
      {"sub", "a - b with broadcasting"},
      {"mul", "a * b with broadcasting"},
      {"div", "a / b with broadcasting"},
      {"neg", "-x"},
      {"exp", "e^x"},
      {"log", "natural log"},
      {"sqrt", "square root"},
      {"rsqrt", "1 / sqrt(x)"},
      {"pow", "x^p for a scalar exponent"},
      {"abs", "|x|"},
      {"clamp", "clamp to [lo, hi]"},
      {"tanh", "hyperbolic tangent"},
      {"sigmoid", "logistic sigmoid"},
      {"silu", "x * sigmoid(x)"},
      {"gelu_tanh", "GELU, tanh approximation"},
      {"gelu_erf", "GELU, exact erf form"},
      {"softplus", "log(1 + e^x), linear above a threshold"},
      // linear algebra and reductions
      {"matmul", "matrix product, batched and broadcast over leading dims"},
      {"linear", "x W^T + b over the last dim, bias fused into the GEMM"},
      {"sum", "sum over dims"},
      {"mean", "mean over dims"},
      {"max", "max over dims (gradient to the first maximum)"},
      {"var", "variance over dims with a correction"},
      // normalisation, indexing, joining, scans (ops A)
      {"softmax", "softmax along a dim (max-shifted)"},
      {"log_softmax", "log of softmax along a dim"},
      {"layer_norm", "normalise the last dim, optional weight and bias"},
      {"embedding", "rows of a table by id (padding id gets no gradient)"},
      {"gather", "values at index along a dim"},
      {"scatter_add", "base plus src added at index along a dim"},
      {"where", "cond ? a : b with broadcasting"},
      {"masked_fill", "x with a value where a mask is set"},
      {"topk", "k largest along a dim, sorted (gradient to the picks)"},
      {"concat", "join along an existing dim"},
      {"split", "parts along a dim (views); backward joins their gradients in one buffer"},
      {"cumsum", "inclusive cumulative sum along a dim"},
      {"flip", "reverse along a dim (copy)"},
      // convolution, randomness, selective scan (ops B)
      {"causal_depthwise_conv1d", "per-channel causal 1-D convolution over [B, L, C]"},
      {"conv2d", "2-D convolution via im2col + GEMM (patch embedding)"},
      {"dropout", "zero elements with probability p, scale the rest by 1/(1-p)"},
      {"drop_path", "zero whole samples with probability p, scale the rest by 1/(1-p)"},
      {"group_sum", "sum over replicas (all-reduce); backward reduces the gradient the same way"},
      {"selective_scan", "selective SSM scan, forward or reverse in time (MODEL.md 3)"},
      // fused gates of the InfoMamba mixer
      {"gated_fusion", "(alpha_h * mean(ys) + alpha_g * g) * silu(z) in one pass"},
      {"sigmoid_gate", "sigmoid(pre + bias) * g in one pass"},
  };
  return ops;
}

bool op_registry_contains(const std::string& name) {
  for (const OpInfo& op : op_registry())
    if (name == op.name) return true;
  return false;
}

}  // namespace im

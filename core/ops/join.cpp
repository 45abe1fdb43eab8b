// Joining and splitting along a dimension. concat copies each input into a slice of
// the output (the strided copy behind Tensor::copy_) and hands each input its slice of
// the gradient. stack is a composite of recorded views (unsqueeze) and concat. split
// records itself once for all its parts: its backward writes every part's gradient into
// one buffer (a concat), where recording each part as a slice would zero-fill a full-size
// gradient per part and then add them up.
#include "core/autograd.h"
#include "core/ops.h"
#include "core/ops/op_common.h"

namespace im {

Tensor concat(const std::vector<Tensor>& tensors, int64_t dim) {
  IM_CHECK(!tensors.empty(), "concat: needs at least one tensor");
  const Tensor& first = tensors[0];
  IM_CHECK(first.defined(), "concat: tensor 0 is undefined");
  IM_CHECK(first.dim() >= 1, "concat: cannot concatenate 0-d tensors (tensor 0 is ",
           first.describe(), "); use stack");
  dim = wrap_dim(dim, first.dim(), "concat");
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    IM_CHECK(t.defined(), "concat: tensor ", i, " is undefined");
    detail::check_same_dtype_device(first, t, "concat");
    bool same = t.dim() == first.dim();
    for (int64_t d = 0; same && d < t.dim(); ++d) same = d == dim || t.size(d) == first.size(d);
    IM_CHECK(same, "concat: tensor ", i, " ", t.describe(), " does not match tensor 0 ",
             first.describe(), " outside dimension ", dim);
    out_shape[dim] += t.size(dim);
  }

  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  std::vector<int64_t> offsets;
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    offsets.push_back(offset);
    const int64_t n = t.size(dim);
    if (n > 0) out.slice(dim, offset, offset + n).copy_(t.detach());
    offset += n;
  }
  offsets.push_back(offset);

  record_op("concat", tensors, {out},
            [offsets, dim](const std::vector<Tensor>& g, const auto& needs) {
              std::vector<Tensor> grads(needs.size());
              for (size_t i = 0; i < needs.size(); ++i)
                if (needs[i]) grads[i] = g[0].slice(dim, offsets[i], offsets[i + 1]);
              return grads;
            });
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  IM_CHECK(!tensors.empty(), "stack: needs at least one tensor");
  IM_CHECK(tensors[0].defined(), "stack: tensor 0 is undefined");
  dim = wrap_dim(dim, tensors[0].dim() + 1, "stack");
  std::vector<Tensor> expanded;
  expanded.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    IM_CHECK(tensors[i].defined(), "stack: tensor ", i, " is undefined");
    IM_CHECK(tensors[i].shape() == tensors[0].shape(), "stack: tensor ", i, " ",
             tensors[i].describe(), " does not have the shape of tensor 0 ", tensors[0].describe());
    expanded.push_back(tensors[i].unsqueeze(dim));
  }
  return concat(expanded, dim);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  IM_CHECK(x.defined(), "split: input is undefined");
  IM_CHECK(x.dim() >= 1, "split: cannot split a 0-d tensor ", x.describe());
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    IM_CHECK(sizes[i] >= 0, "split: size ", sizes[i], " at position ", i, " is negative");
    total += sizes[i];
  }
  IM_CHECK(total == x.size(dim), "split: sizes sum to ", total, " but dimension ", dim, " of ",
           x.describe(), " has size ", x.size(dim));
  std::vector<Tensor> parts;
  parts.reserve(sizes.size());
  {
    NoGradGuard views_only;  // the parts are views; "split" below records their backward
    int64_t offset = 0;
    for (int64_t n : sizes) {
      parts.push_back(x.slice(dim, offset, offset + n));
      offset += n;
    }
  }
  record_op("split", {x}, parts, [dim](const std::vector<Tensor>& g, const auto&) {
    // Parts without a gradient arrive as zeros from the engine, so the buffer is whole.
    return std::vector<Tensor>{concat(g, dim)};
  });
  return parts;
}

}  // namespace im

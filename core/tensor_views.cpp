// View ops (no copy) and copies, each recorded on the tape with its backward.
#include <algorithm>
#include <numeric>
#include <optional>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "core/tensor_impl.h"

namespace im {

namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl()->storage;
  impl->offset = offset;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// Strides that let `new_shape` view memory laid out as (old_shape, old_strides), or
// nothing when a copy is needed (the algorithm of PyTorch's computeStride).
std::optional<Shape> view_strides(const Shape& old_shape, const Shape& old_strides,
                                  const Shape& new_shape) {
  Shape new_strides(new_shape.size());
  if (old_shape.empty()) {
    std::fill(new_strides.begin(), new_strides.end(), 1);
    return new_strides;
  }
  if (shape_numel(old_shape) == 0) return contiguous_strides(new_shape);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 ||
        (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        new_strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return new_strides;
}

// Resolves one -1 entry from the element count.
Shape infer_shape(const Shape& requested, int64_t numel, const char* op) {
  Shape shape = requested;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      IM_CHECK(infer_at < 0, op, ": more than one -1 in ", shape_str(requested));
      infer_at = static_cast<int64_t>(i);
    } else {
      IM_CHECK(shape[i] >= 0, op, ": invalid size in ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    IM_CHECK(known > 0 && numel % known == 0, op, ": cannot infer -1 in ", shape_str(requested),
             " for ", numel, " elements");
    shape[infer_at] = numel / known;
  }
  IM_CHECK(shape_numel(shape) == numel, op, ": shape ", shape_str(requested), " does not hold ",
           numel, " elements");
  return shape;
}

Tensor reshape_impl(const Tensor& self, const Shape& requested, bool must_view) {
  const Shape shape = infer_shape(requested, self.numel(), must_view ? "view" : "reshape");
  auto strides = view_strides(self.shape(), self.strides(), shape);
  Tensor out;
  if (strides) {
    out = make_view(self, shape, *strides, self.storage_offset());
  } else {
    IM_CHECK(!must_view, "view: ", self.describe(), " with strides ", shape_str(self.strides()),
             " cannot be viewed as ", shape_str(shape), "; use reshape()");
    NoGradGuard no_grad;
    out = self.contiguous().view(shape);
  }
  const Shape in_shape = self.shape();
  record_op("reshape", {self}, {out}, [in_shape](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{g[0].reshape(in_shape)};
  });
  return out;
}

}  // namespace

Tensor Tensor::reshape(const Shape& shape) const {
  return reshape_impl(*this, shape, false);
}
Tensor Tensor::view(const Shape& shape) const {
  return reshape_impl(*this, shape, true);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  const int64_t n = dim();
  IM_CHECK(static_cast<int64_t>(dims.size()) == n, "permute: ", dims.size(), " dims given for a ",
           n, "-d tensor");
  Shape shape(n), strides(n);
  std::vector<int64_t> inverse(n, -1);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t d = wrap_dim(dims[i], n, "permute");
    IM_CHECK(inverse[d] < 0, "permute: dimension ", d, " repeated");
    inverse[d] = i;
    shape[i] = this->shape()[d];
    strides[i] = this->strides()[d];
  }
  Tensor out = make_view(*this, shape, strides, storage_offset());
  record_op("permute", {*this}, {out}, [inverse](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{g[0].permute(inverse)};
  });
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> dims(dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(d0, dim(), "transpose")], dims[wrap_dim(d1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  IM_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t len = size(d);
  if (start < 0) start += len;
  if (end < 0) end += len;
  start = std::clamp<int64_t>(start, 0, len);
  end = std::clamp<int64_t>(end, start, len);
  Shape shape = this->shape(), strides = this->strides();
  shape[d] = (end - start + step - 1) / step;
  strides[d] *= step;
  Tensor out = make_view(*this, shape, strides, storage_offset() + start * this->strides()[d]);
  const Shape in_shape = this->shape();
  record_op("slice", {*this}, {out},
            [in_shape, d, start, end, step](const std::vector<Tensor>& g, const auto&) {
              Tensor grad = Tensor::zeros(in_shape, g[0].dtype(), g[0].device());
              Tensor window = grad.detach().slice(d, start, end, step);
              window.copy_(g[0]);
              return std::vector<Tensor>{grad};
            });
  return out;
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  const int64_t len = size(d);
  IM_CHECK(index >= -len && index < len, "select: index ", index, " out of range for size ", len);
  if (index < 0) index += len;
  return slice(d, index, index + 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& target) const {
  const int64_t n = static_cast<int64_t>(target.size());
  IM_CHECK(n >= dim(), "expand: ", describe(), " to fewer dimensions ", shape_str(target));
  Shape shape(n), strides(n);
  const int64_t lead = n - dim();
  for (int64_t i = 0; i < n; ++i) {
    if (i < lead) {
      IM_CHECK(target[i] >= 0, "expand: size -1 not allowed for a new dimension");
      shape[i] = target[i];
      strides[i] = 0;
      continue;
    }
    const int64_t have = this->shape()[i - lead];
    const int64_t want = target[i] == -1 ? have : target[i];
    IM_CHECK(have == want || have == 1, "expand: ", describe(), " cannot expand to ",
             shape_str(target));
    shape[i] = want;
    strides[i] = have == want ? this->strides()[i - lead] : 0;
  }
  Tensor out = make_view(*this, shape, strides, storage_offset());
  const Shape in_shape = this->shape();
  record_op("expand", {*this}, {out}, [in_shape](const std::vector<Tensor>& g, const auto&) {
    return std::vector<Tensor>{sum_to(g[0], in_shape)};
  });
  return out;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape shape = this->shape();
  shape.insert(shape.begin() + d, 1);
  return reshape(shape);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  IM_CHECK(size(d) == 1, "squeeze: dimension ", d, " of ", describe(), " has size ", size(d));
  Shape shape = this->shape();
  shape.erase(shape.begin() + d);
  return reshape(shape);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim(), "flatten");
  end_dim = wrap_dim(end_dim, dim(), "flatten");
  IM_CHECK(start_dim <= end_dim, "flatten: start_dim after end_dim");
  Shape shape(this->shape().begin(), this->shape().begin() + start_dim);
  int64_t merged = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) merged *= size(d);
  shape.push_back(merged);
  shape.insert(shape.end(), this->shape().begin() + end_dim + 1, this->shape().end());
  return reshape(shape);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  Tensor out = Tensor::empty(shape(), dtype(), device());
  out.copy_(*this);
  record_op("contiguous", {*this}, {out},
            [](const std::vector<Tensor>& g, const auto&) { return std::vector<Tensor>{g[0]}; });
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = Tensor::empty(shape(), dtype(), device());
  out.copy_(*this);
  record_op("clone", {*this}, {out},
            [](const std::vector<Tensor>& g, const auto&) { return std::vector<Tensor>{g[0]}; });
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = Tensor::empty(shape(), target, device());
  out.copy_(*this);
  if (is_floating(dtype()) && is_floating(target)) {
    const DType source = dtype();
    record_op("cast", {*this}, {out}, [source](const std::vector<Tensor>& g, const auto&) {
      return std::vector<Tensor>{g[0].to(source)};
    });
  }
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  IM_CHECK(!any_requires_grad({*this}), "to(", target.str(), "): moving ", describe(),
           " that requires grad between devices is not differentiable yet; detach() first");
  Tensor out = Tensor::empty(shape(), dtype(), target);
  out.copy_(*this);
  return out;
}

}  // namespace im

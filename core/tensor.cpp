#include "core/tensor.h"

#include <cstring>

#include "core/allocator.h"
#include "core/autograd.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/pinned_allocator.h"
#include "core/tensor_impl.h"
#include "kernels/cpu/elementwise.h"

#if IM_WITH_CUDA
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/runtime.h"
#include "kernels/cuda/stream.h"
#endif

namespace im {

// ---- Storage ------------------------------------------------------------------------

Storage::Storage(size_t nbytes, Allocator& allocator)
    : data_(allocator.allocate(nbytes)), nbytes_(nbytes), allocator_(&allocator) {}

Storage::~Storage() {
  allocator_->deallocate(data_, nbytes_);
}

Device Storage::device() const {
  return allocator_->device();
}

// ---- shape helpers ------------------------------------------------------------------

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  const int64_t wrapped = d < 0 ? d + ndim : d;
  IM_CHECK(wrapped >= 0 && wrapped < ndim, op, ": dimension ", d, " out of range for a ", ndim,
           "-d tensor");
  return wrapped;
}

// ---- creation -----------------------------------------------------------------------

namespace {
Tensor empty_from(const Shape& shape, DType dtype, Allocator& allocator) {
  for (int64_t s : shape) IM_CHECK(s >= 0, "negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), allocator);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  return empty_from(shape, dtype, allocator_for(device));
}

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) {
  return empty_from(shape, dtype, pinned_host_allocator());
}

bool Tensor::is_pinned() const {
  return device().is_cpu() && numel() > 0 && is_pinned_pointer(data_ptr());
}

Tensor Tensor::pinned() const {
  IM_CHECK(device().is_cpu(), "pinned(): ", describe(), " is not on the CPU");
  if (is_pinned() || !pinned_memory_enabled()) return *this;
  Tensor out = empty_pinned(shape(), dtype());
  out.copy_(*this);
  return out;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) {
  return full({}, value, dtype);
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  dispatch_all(dtype, [&]<typename T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, bfloat16>) {
        p[i] = bfloat16::from_float(static_cast<float>(i));
      } else {
        p[i] = static_cast<T>(i);
      }
    }
  });
  return t;
}

template <typename T>
Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  IM_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
           "from_vector: ", values.size(), " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>());
  if (!values.empty()) std::memcpy(t.data_ptr(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor Tensor::from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector<bfloat16>(const std::vector<bfloat16>&, const Shape&);
template Tensor Tensor::from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor Tensor::from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);
template Tensor Tensor::from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&);

// ---- metadata -----------------------------------------------------------------------

namespace {
const TensorImpl& checked(const std::shared_ptr<TensorImpl>& impl) {
  IM_CHECK(impl != nullptr, "use of an undefined tensor");
  return *impl;
}
}  // namespace

const Shape& Tensor::shape() const {
  return checked(impl_).shape;
}
const Shape& Tensor::strides() const {
  return checked(impl_).strides;
}
int64_t Tensor::dim() const {
  return static_cast<int64_t>(shape().size());
}
int64_t Tensor::size(int64_t d) const {
  return shape()[wrap_dim(d, dim(), "size")];
}
int64_t Tensor::numel() const {
  return shape_numel(shape());
}
int64_t Tensor::storage_offset() const {
  return checked(impl_).offset;
}
DType Tensor::dtype() const {
  return checked(impl_).dtype;
}
Device Tensor::device() const {
  return checked(impl_).storage->device();
}

bool Tensor::is_contiguous() const {
  const TensorImpl& t = checked(impl_);
  int64_t expected = 1;
  for (int d = static_cast<int>(t.shape.size()) - 1; d >= 0; --d) {
    if (t.shape[d] == 1) continue;  // any stride is fine for a size-1 dimension
    if (t.strides[d] != expected) return false;
    expected *= t.shape[d];
  }
  return true;
}

bool Tensor::shares_storage_with(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined tensor";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " on " + device().str();
}

// ---- data access ----------------------------------------------------------------------

void* Tensor::data_ptr() const {
  const TensorImpl& t = checked(impl_);
  return static_cast<char*>(t.storage->data()) + t.offset * dtype_size(t.dtype);
}

template <typename T>
T* Tensor::data() const {
  IM_CHECK(dtype() == dtype_of<T>(), "data<", dtype_name(dtype_of<T>()), ">() on a ", describe(),
           " tensor");
  return static_cast<T*>(data_ptr());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template bfloat16* Tensor::data<bfloat16>() const;
template int32_t* Tensor::data<int32_t>() const;
template int64_t* Tensor::data<int64_t>() const;
template uint8_t* Tensor::data<uint8_t>() const;

template <typename T>
std::vector<T> Tensor::to_vector() const {
  // Reading values is outside autograd, so a GPU tensor that requires grad reads as well.
  const Tensor d = detach();
  Tensor c = (d.device().is_cpu() ? d : d.to(Device::cpu())).to(dtype_of<T>());
  c = c.contiguous();
  const T* p = c.data<T>();
  return std::vector<T>(p, p + c.numel());
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<bfloat16> Tensor::to_vector<bfloat16>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;

double Tensor::item() const {
  IM_CHECK(numel() == 1, "item() on ", describe(), ": needs exactly one element");
  return to_vector<double>()[0];
}

// ---- copies ------------------------------------------------------------------------------

void Tensor::copy_(const Tensor& src) const {
  IM_CHECK(src.shape() == shape(), "copy_: source ", src.describe(), " into ", describe(),
           " (shapes differ)");
  if (numel() == 0) return;
  if (device().is_cpu() && src.device().is_cpu()) {
    dispatch_all(src.dtype(), [&]<typename S>() {
      dispatch_all(dtype(), [&]<typename D>() {
        kernels::cpu::copy_strided<S, D>(src.data<S>(), src.strides(), data<D>(), strides(),
                                         shape());
      });
    });
    return;
  }
#if IM_WITH_CUDA
  // Across devices: make the source contiguous in the destination's dtype on its own
  // side, then move raw bytes.
  Tensor s = src;
  if (device() == s.device()) {
    if (s.dtype() == dtype())
      kernels::cuda::copy_strided(s.data_ptr(), s.strides(), data_ptr(), strides(), shape(),
                                  dtype_size(dtype()));
    else
      kernels::cuda::cast_strided(s.data_ptr(), static_cast<int>(s.dtype()), s.strides(),
                                  data_ptr(), static_cast<int>(dtype()), strides(), shape());
    return;
  }
  // Convert on the side that has the source (fewer bytes cross when narrowing on the GPU).
  if (s.dtype() != dtype()) s = s.to(dtype());
  IM_CHECK(is_contiguous(), "copy_: a copy across devices needs a contiguous destination, got ",
           describe());
  s = s.contiguous();
  const size_t bytes = numel() * dtype_size(dtype());
  if (device().is_cuda() && s.device().is_cpu() && s.is_pinned()) {
    // Asynchronous on the current stream; the block is not reused before the copy ran.
    kernels::cuda::memcpy_host_to_device_async(data_ptr(), s.data_ptr(), bytes,
                                               kernels::cuda::current_stream());
    record_pinned_use(s.data_ptr());
  } else if (device().is_cuda() && s.device().is_cpu()) {
    kernels::cuda::memcpy_host_to_device(data_ptr(), s.data_ptr(), bytes);
  } else if (device().is_cpu() && s.device().is_cuda()) {
    kernels::cuda::memcpy_device_to_host(data_ptr(), s.data_ptr(), bytes);
  } else {
    kernels::cuda::memcpy_device_to_device(data_ptr(), s.data_ptr(), bytes);
  }
#else
  throw Error("copy_: " + src.describe() + " -> " + describe() + ": " + cuda_unavailable_reason());
#endif
}

void Tensor::fill_(double value) const {
  if (numel() == 0) return;
  IM_CHECK(is_contiguous(), "fill_: ", describe(), " must be contiguous");
  dispatch_all(dtype(), [&]<typename T>() {
    T v;
    if constexpr (std::is_same_v<T, bfloat16>) {
      v = bfloat16::from_float(static_cast<float>(value));
    } else {
      v = static_cast<T>(value);
    }
    if (device().is_cpu()) {
      kernels::cpu::fill<T>(data<T>(), v, numel());
      return;
    }
#if IM_WITH_CUDA
    kernels::cuda::fill_bytes(data_ptr(), &v, sizeof(T), numel());
#endif
  });
}

Tensor Tensor::detach() const {
  const TensorImpl& t = checked(impl_);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = t.storage;
  impl->offset = t.offset;
  impl->shape = t.shape;
  impl->strides = t.strides;
  impl->dtype = t.dtype;
  return Tensor(std::move(impl));
}

// ---- autograd accessors ----------------------------------------------------------------

bool Tensor::requires_grad() const {
  const TensorImpl& t = checked(impl_);
  return t.autograd && (t.autograd->requires_grad || t.autograd->grad_fn);
}

Tensor& Tensor::set_requires_grad(bool value) {
  IM_CHECK(!value || is_floating(dtype()), "set_requires_grad on ", describe(),
           ": only float tensors can require gradients");
  IM_CHECK(is_leaf(), "set_requires_grad on a non-leaf tensor; use detach() first");
  impl_->meta().requires_grad = value;
  return *this;
}

bool Tensor::is_leaf() const {
  const TensorImpl& t = checked(impl_);
  return !t.autograd || !t.autograd->grad_fn;
}

const Tensor& Tensor::grad() const {
  static const Tensor kUndefined;
  const TensorImpl& t = checked(impl_);
  return t.autograd ? t.autograd->grad : kUndefined;
}

void Tensor::set_grad(const Tensor& grad) {
  IM_CHECK(!grad.defined() || grad.shape() == shape(), "set_grad: gradient ", grad.describe(),
           " for ", describe());
  impl_->meta().grad = grad;
}

void Tensor::zero_grad() {
  if (impl_ && impl_->autograd) impl_->autograd->grad = Tensor();
}

void Tensor::retain_grad() {
  IM_CHECK(requires_grad(), "retain_grad on ", describe(), " that does not require grad");
  AutogradMeta& meta = impl_->meta();
  if (!meta.grad_fn || meta.retains_grad) return;  // leaves keep .grad anyway
  meta.retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_;
  meta.grad_fn->output_hooks.emplace_back(meta.output_nr, [weak](const Tensor& g) {
    if (auto self = weak.lock()) {
      Tensor& grad = self->meta().grad;
      if (!grad.defined()) {
        grad = g.clone();
      } else {
        accumulate_into(grad, g);
      }
    }
  });
}

std::shared_ptr<Node> Tensor::grad_fn() const {
  const TensorImpl& t = checked(impl_);
  return t.autograd ? t.autograd->grad_fn : nullptr;
}

void Tensor::backward(const Tensor& grad) const {
  Tensor seed = grad;
  if (!seed.defined()) {
    IM_CHECK(numel() == 1, "backward() without a gradient needs a one-element tensor, got ",
             describe());
    seed = Tensor::ones(shape(), dtype(), device());
  }
  run_backward({*this}, {seed});
}

void Tensor::register_grad_ready_hook(std::function<void(const Tensor&)> hook) {
  IM_CHECK(is_leaf() && requires_grad(), "register_grad_ready_hook needs a leaf that ",
           "requires grad, got ", describe());
  impl_->meta().grad_ready_hooks.push_back(std::move(hook));
}

void Tensor::set_name(const std::string& name) {
  impl_->meta().name = name;
}

const std::string& Tensor::name() const {
  static const std::string kEmpty;
  const TensorImpl& t = checked(impl_);
  return t.autograd ? t.autograd->name : kEmpty;
}

}  // namespace im

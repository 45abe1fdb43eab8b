// Tensor: a typed, shaped, strided view of a Storage, with autograd metadata.
// Copying a Tensor copies a handle (shared ownership), as in PyTorch.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"

namespace im {

using Shape = std::vector<int64_t>;

class Allocator;
class Node;
struct TensorImpl;

// A block of memory on one device, freed through the allocator that made it.
class Storage {
 public:
  Storage(size_t nbytes, Allocator& allocator);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const;

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Allocator* allocator_ = nullptr;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation -------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  // Host memory that copies to a GPU read asynchronously (core/pinned_allocator.h); plain
  // host memory until a run has enabled pinning.
  static Tensor empty_pinned(const Shape& shape, DType dtype = DType::Float32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32,
                      Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::Float32);
  static Tensor arange(int64_t n, DType dtype = DType::Int64);
  template <typename T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  // ---- metadata ---------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  int64_t storage_offset() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  // True when both tensors view the same storage (e.g. a view and its base).
  bool shares_storage_with(const Tensor& other) const;
  std::string describe() const;  // "float32[2, 3] on cpu"

  // ---- data access (the dtype is checked; a CUDA tensor gives a device pointer) ------
  void* data_ptr() const;  // first element of this view
  template <typename T>
  T* data() const;
  template <typename T>
  std::vector<T> to_vector() const;  // contiguous copy in row-major order
  double item() const;               // a one-element tensor as double

  // ---- views (no copy) and copies --------------------------------------------
  // Every view op is differentiable and records itself on the tape.
  Tensor reshape(const Shape& shape) const;  // a view when strides allow, else a copy
  Tensor view(const Shape& shape) const;     // a view, or an error
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // slice + drop the dimension
  Tensor expand(const Shape& shape) const;          // broadcast with stride 0
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;  // itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // A CPU tensor in pinned memory: itself when it already is, else a contiguous copy.
  Tensor pinned() const;
  bool is_pinned() const;
  // A tensor sharing this one's data but outside autograd (no grad_fn, no grad).
  Tensor detach() const;

  // Copies `src` (same shape) into this tensor's memory, converting dtype; no autograd.
  void copy_(const Tensor& src) const;
  void fill_(double value) const;  // no autograd
  void zero_() const { fill_(0.0); }

  // ---- autograd ------------------------------------------------------------------
  bool requires_grad() const;
  Tensor& set_requires_grad(bool value);
  bool is_leaf() const;
  const Tensor& grad() const;  // undefined until a backward reached this tensor
  void set_grad(const Tensor& grad);
  void zero_grad();    // drops the gradient (it is re-created on accumulation)
  void retain_grad();  // keep .grad on a non-leaf
  std::shared_ptr<Node> grad_fn() const;
  // Runs backward from this tensor; `grad` defaults to 1 for a one-element tensor.
  void backward(const Tensor& grad = Tensor()) const;
  // Called once per backward pass, right after this leaf's gradient is complete.
  // The data-parallel reducer uses it to start a bucket's all-reduce early.
  void register_grad_ready_hook(std::function<void(const Tensor& grad)> hook);
  void set_name(const std::string& name);
  const std::string& name() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);
std::string shape_str(const Shape& shape);
int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
// Wraps a possibly negative dimension index into [0, ndim), or throws naming `op`.
int64_t wrap_dim(int64_t d, int64_t ndim, const char* op);

}  // namespace im

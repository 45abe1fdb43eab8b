// Debug printing: header line, then nested rows, eliding the middle of long dims.
#include <iomanip>
#include <ostream>

#include "core/tensor.h"

namespace im {

namespace {

constexpr int64_t kEdgeItems = 3;
constexpr int64_t kElideAbove = 8;

void print_rec(std::ostream& os, const std::vector<double>& v, const Shape& shape,
               const Shape& strides, int64_t dim, int64_t offset, int indent) {
  if (dim == static_cast<int64_t>(shape.size())) {
    os << v[offset];
    return;
  }
  const int64_t n = shape[dim];
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (n > kElideAbove && i == kEdgeItems) {
      os << "...";
      i = n - kEdgeItems - 1;
      os << (dim + 1 == static_cast<int64_t>(shape.size()) ? ", "
                                                           : ",\n" + std::string(indent + 1, ' '));
      continue;
    }
    print_rec(os, v, shape, strides, dim + 1, offset + i * strides[dim], indent + 1);
    if (i + 1 < n)
      os << (dim + 1 == static_cast<int64_t>(shape.size()) ? ", "
                                                           : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor(" << t.describe();
  if (t.requires_grad()) os << ", requires_grad";
  os << ")\n";
  const std::vector<double> values = t.to_vector<double>();
  const auto flags = os.flags();
  os << std::setprecision(6);
  print_rec(os, values, t.shape(), contiguous_strides(t.shape()), 0, 0, 0);
  os.flags(flags);
  return os;
}

}  // namespace im

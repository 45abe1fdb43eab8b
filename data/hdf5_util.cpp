#include "data/hdf5_util.h"

#include <mutex>

namespace im::data::h5 {

void quiet_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] {
    H5open();
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  });
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ >= 0 && closer_ != nullptr) closer_(id_);
  id_ = H5I_INVALID_HID;
}

bool Handle::close() {
  if (id_ < 0) return true;
  const herr_t status = closer_(id_);
  id_ = H5I_INVALID_HID;
  return status >= 0;
}

std::string type_name(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t bytes = H5Tget_size(type);
  switch (cls) {
    case H5T_INTEGER:
      return std::string(H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") +
             std::to_string(bytes * 8);
    case H5T_FLOAT:
      return "float" + std::to_string(bytes * 8);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ARRAY:
      return "array";
    default:
      return "HDF5 type class " + std::to_string(static_cast<int>(cls));
  }
}

namespace {

// Creates attribute `name` of file type `ftype` over `space` and writes `buf` as
// `mtype`.
bool write_attr(hid_t obj, const char* name, hid_t ftype, hid_t space, hid_t mtype,
                const void* buf) {
  Handle attr = attr_handle(H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid()) return false;
  if (H5Awrite(attr.get(), mtype, buf) < 0) return false;
  return attr.close();
}

// Opens attribute `name`, or sets `problem` and returns an invalid handle.
Handle open_attr(hid_t obj, const char* name, std::string& problem) {
  const htri_t exists = H5Aexists(obj, name);
  if (exists <= 0) {
    problem = "is missing";
    return Handle();
  }
  Handle attr = attr_handle(H5Aopen(obj, name, H5P_DEFAULT));
  if (!attr.valid()) problem = "cannot be opened";
  return attr;
}

// Number of elements of an attribute's dataspace, or -1 when it is not simple/scalar.
int64_t attr_points(hid_t attr, int* rank) {
  Handle space = space_handle(H5Aget_space(attr));
  if (!space.valid()) return -1;
  *rank = H5Sget_simple_extent_ndims(space.get());
  return static_cast<int64_t>(H5Sget_simple_extent_npoints(space.get()));
}

}  // namespace

bool write_int_attr(hid_t obj, const char* name, int64_t value) {
  Handle space = space_handle(H5Screate(H5S_SCALAR));
  return space.valid() &&
         write_attr(obj, name, H5T_STD_I64LE, space.get(), H5T_NATIVE_INT64, &value);
}

bool write_string_attr(hid_t obj, const char* name, const std::string& value) {
  // Fixed-length, NUL-terminated ASCII: readable by every HDF5 tool and by h5py.
  Handle type = type_handle(H5Tcopy(H5T_C_S1));
  if (!type.valid() || H5Tset_size(type.get(), value.size() + 1) < 0 ||
      H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0)
    return false;
  Handle space = space_handle(H5Screate(H5S_SCALAR));
  return space.valid() && write_attr(obj, name, type.get(), space.get(), type.get(), value.c_str());
}

bool write_utf8_string_attr(hid_t obj, const char* name, const std::string& value) {
  Handle type = type_handle(H5Tcopy(H5T_C_S1));
  if (!type.valid() || H5Tset_size(type.get(), H5T_VARIABLE) < 0 ||
      H5Tset_cset(type.get(), H5T_CSET_UTF8) < 0)
    return false;
  Handle space = space_handle(H5Screate(H5S_SCALAR));
  const char* data = value.c_str();
  return space.valid() && write_attr(obj, name, type.get(), space.get(), type.get(), &data);
}

bool write_int_array_attr(hid_t obj, const char* name, const std::vector<int64_t>& values) {
  const hsize_t n = values.size();
  Handle space = space_handle(H5Screate_simple(1, &n, nullptr));
  return space.valid() &&
         write_attr(obj, name, H5T_STD_I64LE, space.get(), H5T_NATIVE_INT64, values.data());
}

std::optional<int64_t> read_int_attr(hid_t obj, const char* name, std::string& problem) {
  Handle attr = open_attr(obj, name, problem);
  if (!attr.valid()) return std::nullopt;
  Handle type = type_handle(H5Aget_type(attr.get()));
  if (!type.valid() || H5Tget_class(type.get()) != H5T_INTEGER) {
    problem = "is not an integer (it is " + (type.valid() ? type_name(type.get()) : "?") + ")";
    return std::nullopt;
  }
  int rank = 0;
  if (attr_points(attr.get(), &rank) != 1) {
    problem = "is not a single integer";
    return std::nullopt;
  }
  int64_t value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, &value) < 0) {
    problem = "cannot be read";
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> read_string_attr(hid_t obj, const char* name, std::string& problem) {
  Handle attr = open_attr(obj, name, problem);
  if (!attr.valid()) return std::nullopt;
  Handle ftype = type_handle(H5Aget_type(attr.get()));
  if (!ftype.valid() || H5Tget_class(ftype.get()) != H5T_STRING) {
    problem = "is not a string (it is " + (ftype.valid() ? type_name(ftype.get()) : "?") + ")";
    return std::nullopt;
  }
  int rank = 0;
  if (attr_points(attr.get(), &rank) != 1) {
    problem = "is not a single string";
    return std::nullopt;
  }
  // Same character set as the file (ASCII or UTF-8): HDF5 does not convert between them.
  Handle mtype = type_handle(H5Tcopy(H5T_C_S1));
  if (!mtype.valid() || H5Tset_cset(mtype.get(), H5Tget_cset(ftype.get())) < 0) {
    problem = "cannot be read";
    return std::nullopt;
  }
  // h5py writes variable-length strings by default; accept those as well as ours.
  if (H5Tis_variable_str(ftype.get()) > 0) {
    char* buf = nullptr;
    if (H5Tset_size(mtype.get(), H5T_VARIABLE) < 0 || H5Aread(attr.get(), mtype.get(), &buf) < 0) {
      problem = "cannot be read";
      return std::nullopt;
    }
    std::string out = buf != nullptr ? buf : "";
    H5free_memory(buf);
    return out;
  }
  const size_t size = H5Tget_size(ftype.get());
  std::vector<char> buf(size + 1, '\0');
  if (H5Tset_size(mtype.get(), size) < 0 || H5Aread(attr.get(), mtype.get(), buf.data()) < 0) {
    problem = "cannot be read";
    return std::nullopt;
  }
  return std::string(buf.data());  // stops at the first NUL (NULLTERM or NULLPAD)
}

std::optional<std::vector<int64_t>> read_int_array_attr(hid_t obj, const char* name,
                                                        std::string& problem) {
  Handle attr = open_attr(obj, name, problem);
  if (!attr.valid()) return std::nullopt;
  Handle type = type_handle(H5Aget_type(attr.get()));
  if (!type.valid() || H5Tget_class(type.get()) != H5T_INTEGER) {
    problem =
        "is not an integer array (it is " + (type.valid() ? type_name(type.get()) : "?") + ")";
    return std::nullopt;
  }
  int rank = 0;
  const int64_t n = attr_points(attr.get(), &rank);
  if (n < 0 || rank > 1) {
    problem = "is not a one-dimensional integer array";
    return std::nullopt;
  }
  std::vector<int64_t> values(static_cast<size_t>(n));
  if (n > 0 && H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()) < 0) {
    problem = "cannot be read";
    return std::nullopt;
  }
  return values;
}

}  // namespace im::data::h5

// Small RAII and attribute helpers over the HDF5 C API, shared by the shard writer and
// reader. Callers turn HDF5 failures into one-line im::Errors that name the file; HDF5's
// own error stack printing is switched off (quiet_hdf5) so users see only that line.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace im::data::h5 {

// Switches off HDF5's automatic error-stack printing. Idempotent; call before any
// HDF5 use.
void quiet_hdf5();

// Owns one HDF5 identifier and closes it with the matching H5*close call.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now and reports whether the close succeeded (a file's close flushes it).
  bool close();

 private:
  void reset();
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

inline Handle file_handle(hid_t id) {
  return Handle(id, H5Fclose);
}
inline Handle dataset_handle(hid_t id) {
  return Handle(id, H5Dclose);
}
inline Handle space_handle(hid_t id) {
  return Handle(id, H5Sclose);
}
inline Handle attr_handle(hid_t id) {
  return Handle(id, H5Aclose);
}
inline Handle type_handle(hid_t id) {
  return Handle(id, H5Tclose);
}
inline Handle plist_handle(hid_t id) {
  return Handle(id, H5Pclose);
}

// "uint8", "int32", "float64", "string", ... for messages about unexpected types.
std::string type_name(hid_t type);

// Attribute writers on an object (a file id means its root group). Return false on
// an HDF5 failure.
bool write_int_attr(hid_t obj, const char* name, int64_t value);
bool write_string_attr(hid_t obj, const char* name, const std::string& value);
// Variable-length UTF-8: h5py reads it as a Python str (a fixed-length string comes back as
// bytes), and non-ASCII text is labelled as what it is.
bool write_utf8_string_attr(hid_t obj, const char* name, const std::string& value);
bool write_int_array_attr(hid_t obj, const char* name, const std::vector<int64_t>& values);

// Attribute readers. Each returns nothing and sets `problem` to a short phrase
// ("is missing", "is not an integer", ...) when the attribute cannot be read as asked.
std::optional<int64_t> read_int_attr(hid_t obj, const char* name, std::string& problem);
std::optional<std::string> read_string_attr(hid_t obj, const char* name, std::string& problem);
std::optional<std::vector<int64_t>> read_int_array_attr(hid_t obj, const char* name,
                                                        std::string& problem);

}  // namespace im::data::h5

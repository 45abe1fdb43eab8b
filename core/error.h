// One exception type for user-facing failures, and a check macro that builds its message.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace im {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace im

// IM_CHECK(cond, "what", value, "...") throws im::Error with the pieces joined.
#define IM_CHECK(cond, ...)                                            \
  do {                                                                 \
    if (!(cond)) throw ::im::Error(::im::detail::concat(__VA_ARGS__)); \
  } while (0)

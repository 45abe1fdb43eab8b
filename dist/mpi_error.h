// MPI return codes as exceptions: one line naming the call and MPI's own text.
#pragma once

#include <mpi.h>

#include <string>

#include "core/error.h"

namespace im::dist {

inline void check_mpi(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw Error(std::string(what) + " failed: " + std::string(text, len));
}

}  // namespace im::dist

// The MPI implementation of Communicator for CPU tensors.
#pragma once

#include <mpi.h>

#include <memory>

#include "dist/communicator.h"

namespace im::dist {

std::unique_ptr<Communicator> make_mpi_communicator(MPI_Comm comm);

}  // namespace im::dist

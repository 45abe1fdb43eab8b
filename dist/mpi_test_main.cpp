// main() of the tests that run under mpirun: MPI up first, gtest's report from rank 0
// only, and a failure on any rank fails every rank's exit code.
#include <gtest/gtest.h>
#include <mpi.h>

#include "dist/world.h"

int main(int argc, char** argv) {
  im::dist::World& world = im::dist::World::init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (!world.is_root()) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (world.is_root() && rc != 0) std::fprintf(stderr, "a test failed on at least one rank\n");
  return rc;
}

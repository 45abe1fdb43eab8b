// The MPI world of a run: the one place that owns MPI_Init and MPI_Finalize, and knows
// this process's rank, the node it runs on and its rank within that node.
#pragma once

#include <mpi.h>

#include <string>
#include <vector>

namespace im::dist {

class World {
 public:
  // Initialises MPI (once per process; later calls return the same world). MPI is
  // finalised at process exit. Without mpirun, Open MPI runs this as a world of one.
  static World& init(int* argc, char*** argv);
  // The initialised world; throws im::Error when init() has not run.
  static World& get();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_root() const { return rank_ == 0; }
  // Node index (0..num_nodes-1, in order of each node's lowest rank) and the rank within
  // it, from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED): the GPU a rank uses.
  int node() const { return node_; }
  int num_nodes() const { return num_nodes_; }
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  const std::string& hostname() const { return hostname_; }
  MPI_Comm comm() const { return MPI_COMM_WORLD; }
  // "node 0 (host-a): ranks 0-3; node 1 (host-b): ranks 4-7"
  std::string node_map() const;

  // Reports the rank and reason on stderr, then ends every rank (MPI_Abort): a rank that
  // fails alone must not leave the others waiting in a collective.
  [[noreturn]] void abort(int exit_code, const std::string& reason) const;

 private:
  World() = default;
  int rank_ = 0, size_ = 1, node_ = 0, num_nodes_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string hostname_;
  std::vector<int> node_of_rank_;
  std::vector<std::string> host_of_node_;
};

}  // namespace im::dist

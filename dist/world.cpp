#include "dist/world.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>

#include "core/error.h"
#include "dist/mpi_error.h"

namespace im::dist {

namespace {
World* g_world = nullptr;

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
}  // namespace

World& World::init(int* argc, char*** argv) {
  if (g_world) return *g_world;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // Only the main thread calls MPI; loader threads never do.
    check_mpi(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    std::atexit(finalize_at_exit);
  }
  auto* w = new World();
  MPI_Comm_rank(MPI_COMM_WORLD, &w->rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &w->size_);

  MPI_Comm local;
  check_mpi(
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank_, MPI_INFO_NULL, &local),
      "MPI_Comm_split_type");
  MPI_Comm_rank(local, &w->local_rank_);
  MPI_Comm_size(local, &w->local_size_);
  // A node is named by its lowest world rank; everyone learns every rank's node leader.
  int leader = w->rank_;
  MPI_Allreduce(MPI_IN_PLACE, &leader, 1, MPI_INT, MPI_MIN, local);
  MPI_Comm_free(&local);
  std::vector<int> leaders(w->size_);
  MPI_Allgather(&leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, MPI_COMM_WORLD);
  std::map<int, int> node_index;
  for (int l : leaders) node_index.emplace(l, 0);
  int next = 0;
  for (auto& [l, index] : node_index) index = next++;
  w->num_nodes_ = next;
  w->node_ = node_index[leader];
  for (int l : leaders) w->node_of_rank_.push_back(node_index[l]);

  char host[256] = {};
  gethostname(host, sizeof host - 1);
  w->hostname_ = host;
  std::vector<char> all(static_cast<size_t>(w->size_) * 256);
  MPI_Allgather(host, 256, MPI_CHAR, all.data(), 256, MPI_CHAR, MPI_COMM_WORLD);
  w->host_of_node_.resize(w->num_nodes_);
  for (int r = 0; r < w->size_; ++r)
    if (w->host_of_node_[w->node_of_rank_[r]].empty())
      w->host_of_node_[w->node_of_rank_[r]] = std::string(all.data() + r * 256);
  g_world = w;
  return *w;
}

World& World::get() {
  IM_CHECK(g_world != nullptr, "the MPI world is not initialised (World::init not called)");
  return *g_world;
}

std::string World::node_map() const {
  std::string out;
  for (int n = 0; n < num_nodes_; ++n) {
    std::vector<int> ranks;
    for (int r = 0; r < size_; ++r)
      if (node_of_rank_[r] == n) ranks.push_back(r);
    if (!out.empty()) out.append("; ");
    out.append("node ").append(std::to_string(n)).append(" (").append(host_of_node_[n]);
    out.append("): ranks ");
    // Ranks are usually contiguous per node; print runs as a-b.
    for (size_t i = 0; i < ranks.size();) {
      size_t j = i;
      while (j + 1 < ranks.size() && ranks[j + 1] == ranks[j] + 1) ++j;
      if (i) out.append(",");
      out.append(std::to_string(ranks[i]));
      if (j > i) out.append("-").append(std::to_string(ranks[j]));
      i = j + 1;
    }
  }
  return out;
}

void World::abort(int exit_code, const std::string& reason) const {
  std::fprintf(stderr, "infomamba_dist: rank %d of %d (%s) failed: %s; aborting all ranks\n", rank_,
               size_, hostname_.c_str(), reason.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace im::dist

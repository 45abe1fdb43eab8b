// Rank-aware logging. The console is rank 0's: its progress and results are the run's (they
// are global numbers, the same on every rank), so the other ranks stay quiet there. Any rank
// can also keep its own file, run_dir/logs/rank_NNNNN.log, with what it saw: useful when one
// rank of many is slow or fails.
#pragma once

#include <cstdio>
#include <string>

namespace im::dist {

class RankLog {
 public:
  RankLog(int rank, int world) : rank_(rank), world_(world) {}
  ~RankLog();
  RankLog(const RankLog&) = delete;
  RankLog& operator=(const RankLog&) = delete;

  // Starts this rank's own file (truncating an old one); throws im::Error naming the path.
  void open_file(const std::string& run_dir);
  const std::string& file_path() const { return path_; }

  // A line of the run: stdout on rank 0, and every rank's file.
  void info(const std::string& line);
  // A warning: stderr on rank 0 ("warning: ..."), and every rank's file.
  void warn(const std::string& line);
  // This rank's own observation: its file only.
  void local(const std::string& line);

  bool is_root() const { return rank_ == 0; }

 private:
  void to_file(const std::string& line);

  int rank_, world_;
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace im::dist

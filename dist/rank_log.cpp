#include "dist/rank_log.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>

#include "core/error.h"

namespace im::dist {

namespace fs = std::filesystem;

RankLog::~RankLog() {
  if (file_) std::fclose(file_);
}

void RankLog::open_file(const std::string& run_dir) {
  char name[32];
  std::snprintf(name, sizeof name, "rank_%05d.log", rank_);
  const fs::path dir = fs::path(run_dir) / "logs";
  std::error_code ec;
  fs::create_directories(dir, ec);
  path_ = (dir / name).string();
  file_ = std::fopen(path_.c_str(), "w");
  IM_CHECK(file_ != nullptr, "cannot open the rank log ", path_);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  local("rank " + std::to_string(rank_) + " of " + std::to_string(world_) + " on " + host +
        ", pid " + std::to_string(getpid()));
}

void RankLog::to_file(const std::string& line) {
  if (!file_) return;
  // Wall-clock time on every line, to line up ranks' files afterwards.
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", std::localtime(&now));
  std::fprintf(file_, "[%s] %s\n", stamp, line.c_str());
  std::fflush(file_);
}

void RankLog::info(const std::string& line) {
  if (rank_ == 0) {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  to_file(line);
}

void RankLog::warn(const std::string& line) {
  if (rank_ == 0) {
    std::fprintf(stderr, "warning: %s\n", line.c_str());
    std::fflush(stderr);
  }
  to_file("warning: " + line);
}

void RankLog::local(const std::string& line) {
  to_file(line);
}

}  // namespace im::dist

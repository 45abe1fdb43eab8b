// Metrics appended as JSON lines to run_dir/metrics.jsonl, one object per record, so
// a crash loses at most the line being written and tools can tail the file.
#pragma once

#include <cstdio>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace im::launch {

class MetricsRecord {
 public:
  explicit MetricsRecord(std::string type);
  MetricsRecord& add(const std::string& key, double value);
  MetricsRecord& add(const std::string& key, int64_t value);
  MetricsRecord& add(const std::string& key, const std::string& value);
  std::string json() const;

 private:
  std::vector<std::pair<std::string, std::variant<double, int64_t, std::string>>> fields_;
};

class MetricsLog {
 public:
  // Opens (appending) path; throws im::Error naming it if it cannot.
  explicit MetricsLog(const std::string& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const MetricsRecord& record);  // one line, flushed

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace im::launch

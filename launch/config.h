// Run configs: a TOML file (keys in launch/config_schema.h, documented in docs/CONFIG.md) plus
// `--set key=value` overrides, validated into a RunConfig, and written back fully resolved
// into the run directory so every run can be repeated from its own config.toml.
#pragma once

#include <string>
#include <vector>

#include "core/error.h"
#include "launch/train_config.h"

namespace im::launch {

// Any problem with a config file or an override. what() is one line that names the file and
// line (or the override), the key, and what was expected.
class ConfigError : public Error {
 public:
  explicit ConfigError(const std::string& what) : Error(what) {}
};

// Reads `path`, then applies `overrides` ("key=value", value in TOML syntax, or a bare string
// where it is not valid TOML) in order. model.preset is applied before every other model key,
// wherever it appears, so explicit sizes always win over the preset's. run.dir defaults to
// "runs/<run.name>". Throws ConfigError on the first problem.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides);

// load_run_config for TOML text that is not in a file of its own (the resolved config stored in
// a checkpoint, dist::checkpoint_config_toml). `origin` stands for the file: errors name it and
// its lines, and it becomes cfg.source_file.
RunConfig load_run_config_text(const std::string& toml_text, const std::string& origin,
                               const std::vector<std::string>& overrides);

// Every schema key with its value in `cfg`, as TOML, tables in schema order, headed by a comment
// naming the source file and the overrides. Loading it gives back the same settings.
std::string resolved_config_toml(const RunConfig& cfg);

// Writes resolved_config_toml(cfg) to run_dir/config.toml, creating run_dir as needed. The file
// is written under a temporary name and renamed, so it is never seen half-written.
void write_resolved_config(const RunConfig& cfg, const std::string& run_dir);

}  // namespace im::launch

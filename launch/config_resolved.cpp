// The resolved config: every key with the value a run actually used, written into the run
// directory so `--config run_dir/config.toml` repeats the run exactly (launch/config.h).
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "launch/config.h"
#include "launch/config_schema.h"
#include "launch/config_value.h"

namespace im::launch {

std::string resolved_config_toml(const RunConfig& cfg) {
  std::string out = "# Resolved config of " + one_line(cfg.source_file);
  if (cfg.overrides.empty()) {
    out += " (no overrides)";
  } else {
    out += " with overrides:";
    for (const std::string& o : cfg.overrides) out += " --set " + one_line(o);
  }
  out += "\n# Every key is written out; docs/CONFIG.md explains them.\n";
  for (const std::string& table : config_tables()) {
    std::string body;
    for (const ConfigKey& key : config_schema())
      if (key.table() == table) body += key.name() + " = " + toml_literal(key.get(cfg)) + "\n";
    // Intermediate tables with no keys of their own get no header of their own.
    if (!body.empty()) out += "\n[" + table + "]\n" + body;
  }
  return out;
}

void write_resolved_config(const RunConfig& cfg, const std::string& run_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw ConfigError("cannot create run directory '" + run_dir + "': " + ec.message());
  const fs::path final_path = fs::path(run_dir) / "config.toml";
  const fs::path tmp_path = fs::path(run_dir) / "config.toml.tmp";
  {
    std::ofstream out(tmp_path, std::ios::binary | std::ios::trunc);
    out << resolved_config_toml(cfg);
    out.flush();
    if (!out) {
      throw ConfigError("cannot write '" + tmp_path.string() + "': " + std::strerror(errno));
    }
  }
  fs::rename(tmp_path, final_path, ec);
  if (ec) {
    throw ConfigError("cannot rename '" + tmp_path.string() + "' to '" + final_path.string() +
                      "': " + ec.message());
  }
}

}  // namespace im::launch

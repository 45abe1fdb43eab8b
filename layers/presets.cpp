// Model size presets of docs/MODEL.md §6.
#include "layers/model_config.h"

namespace im::layers {

bool apply_preset(const std::string& name, ModelConfig& cfg) {
  struct Preset {
    const char* name;
    int64_t d, depth, k, n, patch;
  };
  static const Preset kPresets[] = {
      {"nano", 64, 4, 16, 8, 4},
      {"tiny", 192, 12, 32, 16, 16},
      {"small", 384, 12, 64, 16, 16},
      {"base", 768, 12, 64, 16, 16},
  };
  for (const Preset& p : kPresets) {
    if (name != p.name) continue;
    cfg.preset = name;
    cfg.d_model = p.d;
    cfg.depth = p.depth;
    cfg.num_concepts = p.k;
    cfg.d_state = p.n;
    cfg.patch = p.patch;
    return true;
  }
  return false;
}

}  // namespace im::layers

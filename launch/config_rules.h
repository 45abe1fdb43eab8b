// Rules that tie config keys together (k_min <= k_max, ...), checked once every key is set.
// They only judge values; the loader adds where the offending setting came from.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "launch/train_config.h"

namespace im::launch {

struct RuleViolation {
  std::vector<std::string> keys;  // schema paths involved, for locating the setting to blame
  std::string message;            // "model.k_min = 20 is greater than model.k_max = 16"
};

// The first rule `cfg` breaks, or nothing. docs/CONFIG.md lists the rules.
std::optional<RuleViolation> check_config_rules(const RunConfig& cfg);

}  // namespace im::launch

// "Did you mean ...?" for unknown config keys and tables: the closest known path by edit
// distance, or the same name in another table ("lr" under [train] means optim.lr).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace im::launch {

// Levenshtein distance: insertions, deletions and substitutions each cost 1.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate `unknown` was most likely meant to be, or "" when none is close: the nearest
// within edit distance 2 (first in candidate order on ties), else the first candidate whose
// last dotted component equals the unknown's.
std::string suggest_path(std::string_view unknown, const std::vector<std::string>& candidates);

}  // namespace im::launch

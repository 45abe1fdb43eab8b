// Suggestions for misspelt config paths (launch/config_suggest.h).
#include "launch/config_suggest.h"

#include <algorithm>
#include <numeric>

namespace im::launch {

size_t edit_distance(std::string_view a, std::string_view b) {
  // One row of the classic dynamic programme: row[j] = distance(a[0..i), b[0..j)).
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

namespace {
std::string_view last_component(std::string_view path) {
  const size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? path : path.substr(dot + 1);
}
}  // namespace

std::string suggest_path(std::string_view unknown, const std::vector<std::string>& candidates) {
  constexpr size_t kMaxDistance = 2;
  const std::string* best = nullptr;
  size_t best_distance = kMaxDistance + 1;
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(unknown, c);
    if (d < best_distance) {
      best = &c;
      best_distance = d;
    }
  }
  if (best) return *best;
  for (const std::string& c : candidates)
    if (last_component(c) == last_component(unknown)) return c;
  return "";
}

}  // namespace im::launch

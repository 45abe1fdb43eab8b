// The registry of ops that record themselves on the autograd tape. Every entry must
// have a float64 finite-difference gradient check (tests/gradcheck enforces it).
#pragma once

#include <string>
#include <vector>

namespace im {

struct OpInfo {
  const char* name;
  const char* summary;
};

const std::vector<OpInfo>& op_registry();
bool op_registry_contains(const std::string& name);

}  // namespace im
